"""The signed payload of our e-code: a CBOR map with small integer keys.

====  ============  ======  =====================================================
key   name          type    meaning
====  ============  ======  =====================================================
1     version       uint    format version, 1
2     card_ref      tstr    pseudonymous card reference (``central.models.card_ref``)
3     region        tstr    issuing region code, six digits (e.g. ``330100``)
4     issued_at     uint    Unix seconds when the code was generated
5     expires_at    uint    Unix seconds after which it is void (default issued+60)
6     nonce         bstr    8-32 random bytes: makes every code unique (replay key)
====  ============  ======  =====================================================

``card_ref`` is the same key a card tap and the denylist use (卡码同权): never the ID
number, the name or the card number. The map must hold exactly these keys with exactly
these types (``True`` is not an integer here); anything else is refused even when the
signature over it is valid, so a key that signed some other structure cannot be abused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import cbor2

from ..errors import MalformedECodeError
from .cose import int_keyed, strict_cbor_loads

__all__ = ["DEFAULT_LIFETIME", "MAX_LIFETIME", "PAYLOAD_VERSION", "ECodePayload"]

PAYLOAD_VERSION = 1
DEFAULT_LIFETIME = 60
MAX_LIFETIME = 3600  # a "short-lived" code that lives longer than an hour is not ours
_MAX_TIME = 2**40    # far beyond any real date; stops huge integers early
_CARD_REF = re.compile(r"[a-z2-7]{24}")
_REGION = re.compile(r"[0-9]{6}")
_KEYS = {1, 2, 3, 4, 5, 6}
# The canonical CBOR of a version-1 payload (RFC 8949 §4.2, as ``to_cbor`` and every
# issuer we know write it): map(6), keys 1-6 in order, a 24-letter card_ref, a six-digit
# region, both times as 4-byte integers, an 8-32 byte nonce. Matched in one go on the
# verification hot path, where a general decoder was the largest cost after the
# signature; the captured groups still go through every check of ``__post_init__``.
_CANONICAL = re.compile(
    rb"\xa6\x01\x01\x02\x78\x18([a-z2-7]{24})\x03\x66([0-9]{6})"
    rb"\x04\x1a(.{4})\x05\x1a(.{4})\x06(?:([\x48-\x57])|\x58([\x18-\x20]))(.*)",
    re.DOTALL)


def _bad(what: str) -> MalformedECodeError:
    return MalformedECodeError(f"e-code payload: {what}", "bad_payload")


@dataclass(frozen=True)
class ECodePayload:
    """The decoded payload. Its repr holds no personal data (card_ref is a pseudonym)."""

    card_ref: str
    region: str
    issued_at: int
    expires_at: int
    nonce: bytes
    version: int = PAYLOAD_VERSION

    def __post_init__(self) -> None:
        if self.version != PAYLOAD_VERSION:
            raise _bad(f"unsupported version {self.version!r}")
        if type(self.card_ref) is not str or not _CARD_REF.fullmatch(self.card_ref):
            raise _bad("card_ref is not a card reference")
        if type(self.region) is not str or not _REGION.fullmatch(self.region):
            raise _bad("region is not a six-digit region code")
        if type(self.issued_at) is not int or not 0 <= self.issued_at < _MAX_TIME:
            raise _bad("issued_at is not a time")
        if type(self.expires_at) is not int or not 0 <= self.expires_at < _MAX_TIME:
            raise _bad("expires_at is not a time")
        if not 0 < self.expires_at - self.issued_at <= MAX_LIFETIME:
            raise _bad("the validity window is empty or too long")
        if type(self.nonce) is not bytes or not 8 <= len(self.nonce) <= 32:
            raise _bad("nonce must be 8-32 bytes")

    def to_cbor(self) -> bytes:
        """Canonical CBOR of the payload."""
        return cbor2.dumps({1: self.version, 2: self.card_ref, 3: self.region,
                            4: self.issued_at, 5: self.expires_at, 6: self.nonce},
                           canonical=True)

    @classmethod
    def from_cbor(cls, data: bytes) -> ECodePayload:
        """Parse and check; raise :class:`MalformedECodeError` (reason ``bad_payload``).

        The canonical encoding (what issuers write) is read with one pattern match;
        anything else goes through the general decoder, which takes every valid
        encoding. Both end in the same checks (``__post_init__``).
        """
        match = _CANONICAL.fullmatch(data)
        if match is not None:
            short, long, nonce = match[5], match[6], match[7]
            if len(nonce) == (short[0] - 0x40 if short else long[0]):
                return cls(version=1, card_ref=match[1].decode("ascii"),
                           region=match[2].decode("ascii"),
                           issued_at=int.from_bytes(match[3], "big"),
                           expires_at=int.from_bytes(match[4], "big"), nonce=nonce)
        return cls.from_cbor_general(data)

    @classmethod
    def from_cbor_general(cls, data: bytes) -> ECodePayload:
        """:meth:`from_cbor` through the general CBOR decoder (any valid encoding)."""
        obj = strict_cbor_loads(data, "the e-code payload")
        if not int_keyed(obj) or set(obj) != _KEYS:
            raise _bad("the map must hold exactly keys 1-6")
        if type(obj[1]) is not int:
            raise _bad("version is not an integer")
        return cls(version=obj[1], card_ref=obj[2], region=obj[3], issued_at=obj[4],
                   expires_at=obj[5], nonce=obj[6])
