"""Keys, issuers and verifiers shared by the e-code tests (no fixtures: plain functions)."""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sscard_terminal.central.models import card_ref
from sscard_terminal.ecode import (
    ECodeIssuer,
    MemoryReplayCache,
    SignerKey,
    StaticTrustListProvider,
    TrustList,
)
from sscard_terminal.ecode.algorithms import EDDSA, ES256

CARD_REF = card_ref(bytes.fromhex("330100D15600000500A1B2C3D4E5F601"))
REGION = "330100"


def es256_issuer(kid: bytes = b"es-1") -> ECodeIssuer:
    seed = int.from_bytes(hashlib.sha256(b"es256 test key " + kid).digest(), "big")
    key = ec.derive_private_key(seed % (2**255), ec.SECP256R1())
    return ECodeIssuer(kid, key)


def eddsa_issuer(kid: bytes = b"ed-1") -> ECodeIssuer:
    seed = hashlib.sha256(b"ed25519 test key " + kid).digest()
    return ECodeIssuer(kid, ed25519.Ed25519PrivateKey.from_private_bytes(seed))


def signer_key(issuer: ECodeIssuer, *, revoked: bool = False) -> SignerKey:
    private = issuer.private_key
    if isinstance(private, ec.EllipticCurvePrivateKey):
        raw = private.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        return SignerKey(issuer.kid, ES256, raw, revoked)
    raw = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return SignerKey(issuer.kid, EDDSA, raw, revoked)


def trust_provider(*keys: SignerKey) -> StaticTrustListProvider:
    return StaticTrustListProvider(TrustList.build(keys))


def memory_cache() -> MemoryReplayCache:
    return MemoryReplayCache(max_entries=1000)
