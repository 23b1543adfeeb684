"""The central HSM's read-authentication route of the simulated central (task E's part).

NOTE: task B overwrote task E's first version of this module by mistake at 22:19 UTC and
rebuilt it from E's client (``sscard_terminal/cards/authentication/hsm.py``) and tests;
task E owns it.

Contract, wired by :mod:`central_server` into its route table:

``handle_read_auth(store, body, terminal) -> tuple[int, dict]`` (the route; the pure
computation is ``read_auth_key(body)``, which E's in-process tests call)
    Serves ``POST /v1/hsm/read-auth`` (the unified interface's HSM step 1 -> step 2).
    ``body`` is step 1's JSON (region, atr, algorithm, card_identification_code,
    internal_random, external_challenge; hex strings); the answer is
    ``{"key": "<expected internal answer, 32 hex>|<external cryptogram, 32 hex or empty>"}``,
    computed with keys diversified from the public TEST master keys (card_keys).
"""

from __future__ import annotations

from typing import Any

from . import card_keys

__all__ = ["handle_read_auth", "read_auth_key"]


def _hex(body: dict[str, Any], name: str, *, allow_empty: bool = False) -> bytes:
    value = body.get(name)
    if not isinstance(value, str):
        raise ValueError(f"{name} missing")
    data = bytes.fromhex(value)
    if not (len(data) == 16 or (allow_empty and not data)):
        raise ValueError(f"{name} must be 16 bytes")
    return data


def handle_read_auth(store: Any, body: Any, terminal: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    return read_auth_key(body)


def read_auth_key(body: Any) -> tuple[int, dict[str, Any]]:
    if not isinstance(body, dict):
        return 400, {"error": "bad_request", "reason": "body is not a JSON object"}
    try:
        algorithm = int(body.get("algorithm", 0))
        idcode = _hex(body, "card_identification_code")
        internal_random = _hex(body, "internal_random")
        challenge = _hex(body, "external_challenge", allow_empty=True)
        k_int = card_keys.diversify(card_keys.TEST_MK_INT, idcode, algorithm)
        expected = card_keys.encrypt_block(k_int, internal_random, algorithm)
        external = b""
        if challenge:
            k_ext = card_keys.diversify(card_keys.TEST_MK_EXT, idcode, algorithm)
            external = card_keys.encrypt_block(k_ext, challenge, algorithm)
    except (ValueError, TypeError, KeyError) as exc:
        return 400, {"error": "bad_request", "reason": str(exc)}
    return 200, {"key": f"{expected.hex().upper()}|{external.hex().upper()}"}
