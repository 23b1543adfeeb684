"""The table of signature algorithms an e-code may use, keyed by COSE algorithm id.

The table is a value passed to the verifier, not a global registry: a province that adopts
SM2 builds ``DEFAULT_ALGORITHMS | {SM2_ID: its_sm2}`` and hands it in. Keys are loaded once
(when the trust list is loaded) into the objects ``verify`` needs, so the hot path does no
parsing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

__all__ = [
    "DEFAULT_ALGORITHMS",
    "EDDSA",
    "ES256",
    "Ed25519Algorithm",
    "Es256Algorithm",
    "SignatureAlgorithm",
    "VerifyKey",
]

ES256 = -7
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())  # immutable; built once, not per verification
EDDSA = -8


class VerifyKey(Protocol):
    """A public key already loaded by its algorithm (opaque to everyone else)."""


class SignatureAlgorithm(Protocol):
    """One COSE signature algorithm: load a raw public key, verify, and (for issuers) sign."""

    @property
    def cose_id(self) -> int:
        """The COSE algorithm id (RFC 9053), e.g. -7 for ES256."""
        ...

    @property
    def name(self) -> str:
        """The algorithm's name for messages."""
        ...

    def load_public_key(self, raw: bytes) -> VerifyKey:
        """Parse a raw public key; raise ``ValueError`` when it is not one."""
        ...

    def verify(self, key: VerifyKey, signature: bytes, message: bytes) -> bool:
        """Whether ``signature`` (COSE encoding) is valid for ``message`` under ``key``."""
        ...


@dataclass(frozen=True)
class Es256Algorithm:
    """ECDSA on P-256 with SHA-256. COSE carries the signature as raw r||s (RFC 9053 §2.1),
    cryptography wants DER, so it is converted here and only here."""

    cose_id: int = ES256
    name: str = "ES256"

    def load_public_key(self, raw: bytes) -> VerifyKey:
        if len(raw) != 65 or raw[0] != 4:
            raise ValueError("an ES256 public key is a 65-byte uncompressed P-256 point")
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)

    def verify(self, key: VerifyKey, signature: bytes, message: bytes) -> bool:
        if not isinstance(key, ec.EllipticCurvePublicKey) or len(signature) != 64:
            return False
        der = encode_dss_signature(
            int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        )
        try:
            key.verify(der, message, _ECDSA_SHA256)
        except InvalidSignature:
            return False
        return True

    @staticmethod
    def sign(private_key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
        """Sign and return raw r||s (issuers and the simulator)."""
        r, s = decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")


@dataclass(frozen=True)
class Ed25519Algorithm:
    """EdDSA with Ed25519 (COSE -8): 32-byte keys, 64-byte signatures, no conversion."""

    cose_id: int = EDDSA
    name: str = "EdDSA"

    def load_public_key(self, raw: bytes) -> VerifyKey:
        if len(raw) != 32:
            raise ValueError("an Ed25519 public key is 32 bytes")
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)

    def verify(self, key: VerifyKey, signature: bytes, message: bytes) -> bool:
        if not isinstance(key, ed25519.Ed25519PublicKey) or len(signature) != 64:
            return False
        try:
            key.verify(signature, message)
        except InvalidSignature:
            return False
        return True

    @staticmethod
    def sign(private_key: ed25519.Ed25519PrivateKey, message: bytes) -> bytes:
        """Sign (issuers and the simulator)."""
        return private_key.sign(message)


DEFAULT_ALGORITHMS: Mapping[int, SignatureAlgorithm] = {
    ES256: Es256Algorithm(),
    EDDSA: Ed25519Algorithm(),
}
