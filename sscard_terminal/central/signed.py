"""Ed25519-signed documents: the denylist and the trust list a terminal installs.

The HMAC of a response would only prove that it came through the channel; a terminal
that installs a denylist or a list of e-code signer keys must be able to show later,
offline, that the central produced exactly that content. So the central signs the
document itself with its Ed25519 key and the terminal pins the central's public key
(from its configuration, never from the network).

Envelope: ``{"document": {...}, "alg": "EdDSA", "signature": base64url}`` where the
signature covers the canonical JSON of ``document`` (sorted keys, no spaces, UTF-8).
``document["type"]`` names what it is, so a denylist can never be installed as a trust
list or the reverse.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..errors import CentralProtocolError, ConfigError

__all__ = [
    "canonical_json",
    "load_public_key",
    "public_key_text",
    "sign_document",
    "verify_document",
]


def canonical_json(document: Mapping[str, Any]) -> bytes:
    """The exact bytes that are signed."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_public_key(text: str) -> Ed25519PublicKey:
    """The central's pinned public key: 32 raw bytes, base64url (as terminal-config prints)."""
    try:
        raw = _unb64(text.strip())
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ConfigError(f"central public key is not a base64url Ed25519 key: {exc}") from exc


def public_key_text(key: Ed25519PublicKey) -> str:
    """Inverse of :func:`load_public_key`."""
    return _b64(key.public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign_document(key: Ed25519PrivateKey, document: Mapping[str, Any]) -> dict[str, Any]:
    """Wrap ``document`` in a signed envelope (the simulator side)."""
    return {"document": dict(document), "alg": "EdDSA",
            "signature": _b64(key.sign(canonical_json(document)))}


def verify_document(
    key: Ed25519PublicKey, envelope: object, expected_type: str | tuple[str, ...]
) -> dict[str, Any]:
    """Return the document if the envelope is well-formed, of the expected type (or one
    of the expected types) and signed by ``key``; else raise :class:`CentralProtocolError`
    saying which."""
    expected = (expected_type,) if isinstance(expected_type, str) else expected_type
    if not isinstance(envelope, dict):
        raise CentralProtocolError("signed document: not a JSON object")
    document = envelope.get("document")
    signature = envelope.get("signature")
    if envelope.get("alg") != "EdDSA" or not isinstance(signature, str):
        raise CentralProtocolError("signed document: missing signature or unknown algorithm")
    if not isinstance(document, dict):
        raise CentralProtocolError("signed document: missing document")
    try:
        key.verify(_unb64(signature), canonical_json(document))
    except (InvalidSignature, ValueError) as exc:
        raise CentralProtocolError(
            f"signed {expected[0]}: signature does not verify with the pinned central key"
        ) from exc
    if document.get("type") not in expected:
        raise CentralProtocolError(
            f"signed document is a {document.get('type')!r}, expected "
            f"{' or '.join(repr(t) for t in expected)}"
        )
    return document
