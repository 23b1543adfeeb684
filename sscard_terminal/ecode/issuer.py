"""Issue codes in our format (the central's side; the simulator, tests and benchmarks).

A terminal never issues codes; this lives in the package so a province's issuing service
and the verifier share one definition of the format.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from .algorithms import EDDSA, ES256, Ed25519Algorithm, Es256Algorithm
from .cose import encode_sign1
from .format import encode_text
from .payload import DEFAULT_LIFETIME, ECodePayload

__all__ = ["ECodeIssuer"]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class ECodeIssuer:
    """Signs e-codes with one key of the trust list."""

    kid: bytes
    private_key: PrivateKey

    @property
    def alg(self) -> int:
        return ES256 if isinstance(self.private_key, ec.EllipticCurvePrivateKey) else EDDSA

    def sign(self, message: bytes) -> bytes:
        """The COSE signature of ``message`` under this key."""
        if isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            return Es256Algorithm.sign(self.private_key, message)
        return Ed25519Algorithm.sign(self.private_key, message)

    def issue(self, card_ref: str, region: str, *, now: float | None = None,
              lifetime: int = DEFAULT_LIFETIME, nonce: bytes | None = None) -> str:
        """A fresh code text for the card ``card_ref`` (pseudonymous, never the ID)."""
        issued = int(time.time() if now is None else now)
        payload = ECodePayload(card_ref=card_ref, region=region, issued_at=issued,
                               expires_at=issued + lifetime,
                               nonce=os.urandom(16) if nonce is None else nonce)
        return encode_text(encode_sign1(self.alg, self.kid, payload.to_cbor(), self.sign))
