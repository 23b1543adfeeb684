"""E-code routes of the simulated central: verify codes and issue them.

``handle_verify(store, body, terminal) -> (status, answer)`` serves
``POST /v1/ecodes/verify`` (wired by :mod:`central_server`). The answer is
``{"accepted", "reason", "kind", "card"}`` where ``card`` is exactly the document card
validation returns for the card behind the code (``central_lifecycle.validation_document``),
so a code and a tap of the same card get the same status (卡码同权): a cancelled card's
code is refused because the card is.

Three kinds are understood:

- ``ours``: ``SC1:`` codes, verified with the simulator's signer keys (signature,
  revocation, key validity, the code's validity window with 30 s of skew);
- ``national`` and ``evoucher``: opaque test codes this simulator issued (``ESSC`` or
  ``NHSA`` + 40 hex digits, the shapes in ``sscard_terminal.ecode.SIMULATOR_SHAPES``),
  looked up in a table of this module, ``sim_opaque_codes``, in the store's database.

``issue_code_cli(args)`` serves ``sscard central-sim issue-code CARD_NO --db PATH
[--png FILE] [--kind ours|national|evoucher] [--alg ES256|EdDSA]`` and prints the code.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from typing import Any

import segno

from sscard_terminal.central import models
from sscard_terminal.ecode import (
    DEFAULT_ALGORITHMS,
    SIMULATOR_SHAPES,
    CodeKind,
    ECodeIssuer,
    ECodePayload,
    RecognitionProfile,
    decode_sign1,
    decode_text,
    trust_list_from_central,
)
from sscard_terminal.errors import ConfigError, MalformedECodeError

from .central_lifecycle import validation_document
from .central_store import CardRow, CentralStore

__all__ = ["handle_verify", "issue_code", "issue_code_cli", "issue_opaque_code"]

CLOCK_SKEW_S = 30
OPAQUE_LIFETIME_S = 60
_OPAQUE_PREFIX = {CodeKind.NATIONAL: "ESSC", CodeKind.EVOUCHER: "NHSA"}
_ALG_KIDS = {"ES256": "sim-es256-1", "EdDSA": "sim-ed25519-1"}
_RECOGNITION = RecognitionProfile.from_mapping(SIMULATOR_SHAPES)
_OPAQUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS sim_opaque_codes (
    code TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    card_number TEXT NOT NULL,
    expires_at REAL NOT NULL
)"""


def _answer(accepted: bool, reason: str, kind: CodeKind | None,
            card: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    return 200, {"accepted": accepted, "reason": reason,
                 "kind": kind.value if kind is not None else None, "card": card}


def _card_answer(store: CentralStore, card: CardRow | None, kind: CodeKind,
                 terminal: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Accept only when the card behind the code may be used, as for a tap."""
    if card is None:
        return _answer(False, "unknown_card", kind, {"status": "unknown",
                                                     "reason": "unknown_card"})
    document = validation_document(
        store, card, card_number=card.card_number,
        identity_entitled=bool(terminal.get("identity_entitled")), today=dt.date.today())
    if card.ecode_void:
        return _answer(False, "ecode_void", kind, document)
    accepted = document["status"] == models.CardStatus.NORMAL.value
    return _answer(accepted, "ok" if accepted else str(document["reason"]), kind, document)


def _trust_list(store: CentralStore) -> Any:
    keys = tuple(models.TrustedKey(k["kid"], k["alg"], k["public_der"], k["not_before"],
                                   k["not_after"], k["revoked"]) for k in store.signer_keys())
    return trust_list_from_central(models.TrustList(1, "", keys))


def _verify_ours(store: CentralStore, text: str,
                 terminal: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    kind = CodeKind.OURS
    try:
        sign1 = decode_sign1(decode_text(text))
    except MalformedECodeError as exc:
        return _answer(False, exc.reason, kind)
    try:
        trust = _trust_list(store)
    except ConfigError:
        return 500, {"error": "internal", "reason": "signer keys unusable"}
    signer = trust.keys.get(sign1.kid)
    algorithm = DEFAULT_ALGORITHMS.get(sign1.alg)
    key = trust.loaded.get(sign1.kid)
    if signer is None or algorithm is None or key is None:
        return _answer(False, "unknown_kid", kind)
    if signer.revoked:
        return _answer(False, "revoked_kid", kind)
    if sign1.alg != signer.alg or not algorithm.verify(key, sign1.signature,
                                                       sign1.to_be_signed()):
        return _answer(False, "bad_signature", kind)
    try:
        payload = ECodePayload.from_cbor(sign1.payload)
    except MalformedECodeError as exc:
        return _answer(False, exc.reason, kind)
    if not signer.valid_at(payload.issued_at):
        return _answer(False, "key_out_of_validity", kind)
    now = time.time()
    if now < payload.issued_at - CLOCK_SKEW_S:
        return _answer(False, "not_yet_valid", kind)
    if now > payload.expires_at + CLOCK_SKEW_S:
        return _answer(False, "expired", kind)
    return _card_answer(store, store.card_by_ref(payload.card_ref), kind, terminal)


def _verify_opaque(store: CentralStore, text: str, kind: CodeKind,
                   terminal: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    store.conn.execute(_OPAQUE_SCHEMA)
    row = store.conn.execute(
        "SELECT kind, card_number, expires_at FROM sim_opaque_codes WHERE code = ?",
        (text,)).fetchone()
    if row is None or row[0] != kind.value:
        return _answer(False, "unknown_code", kind)
    if time.time() > float(row[2]) + CLOCK_SKEW_S:
        return _answer(False, "expired", kind)
    return _card_answer(store, store.card_by_number(str(row[1])), kind, terminal)


def handle_verify(store: CentralStore, body: Any,
                  terminal: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """``POST /v1/ecodes/verify`` with ``{"code": text}``."""
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return 400, {"error": "bad_request", "reason": "body must be {\"code\": text}"}
    text = body["code"].strip()
    if len(text) > 4096:
        return 400, {"error": "bad_request", "reason": "code too long"}
    kind = _RECOGNITION.recognise(text)
    if kind is CodeKind.OURS:
        return _verify_ours(store, text, terminal)
    if kind.online_only:
        return _verify_opaque(store, text, kind, terminal)
    return _answer(False, "unknown_kind", None)


def issue_code(store: CentralStore, card_number: str, *, alg: str = "ES256",
               now: float | None = None, lifetime: int = 60) -> str:
    """A signed code of our format for ``card_number`` with the simulator's signer key."""
    card = store.card_by_number(card_number)
    if card is None:
        raise KeyError(f"no card {card_number}")
    kid = _ALG_KIDS[alg]
    issuer = ECodeIssuer(kid.encode("utf-8"), store.signer_private_key(kid))
    return issuer.issue(card.card_ref, card.region, now=now, lifetime=lifetime)


def issue_opaque_code(store: CentralStore, card_number: str, kind: CodeKind,
                      *, lifetime: float = OPAQUE_LIFETIME_S) -> str:
    """A national e-card or e-voucher test code: random, remembered in the database."""
    if store.card_by_number(card_number) is None:
        raise KeyError(f"no card {card_number}")
    code = _OPAQUE_PREFIX[kind] + os.urandom(20).hex().upper()
    with store.atomic() as conn:
        conn.execute(_OPAQUE_SCHEMA)
        conn.execute("INSERT INTO sim_opaque_codes VALUES (?, ?, ?, ?)",
                     (code, kind.value, card_number, time.time() + lifetime))
    return code


def issue_code_cli(args: argparse.Namespace) -> int:
    """``sscard central-sim issue-code``: print the code text (and write the QR PNG)."""
    kind_name = getattr(args, "kind", "ours") or "ours"
    alg = getattr(args, "alg", "ES256") or "ES256"
    if kind_name not in ("ours", "national", "evoucher") or alg not in _ALG_KIDS:
        sys.stderr.write("issue-code: --kind is ours|national|evoucher, --alg ES256|EdDSA\n")
        return 2
    store = CentralStore.open(args.db)
    try:
        kind = CodeKind(kind_name)
        if kind is CodeKind.OURS:
            text = issue_code(store, args.card_number, alg=alg)
        else:
            text = issue_opaque_code(store, args.card_number, kind)
    except KeyError as exc:
        sys.stderr.write(f"issue-code: {exc.args[0]}\n")
        return 1
    finally:
        store.close()
    if getattr(args, "png", None) is not None:
        # Our codes are base45: QR alphanumeric mode, the densest for this alphabet.
        segno.make_qr(text, error="m").save(str(args.png), scale=6, border=4)
    sys.stdout.write(text + "\n")
    return 0
