"""The text of our e-code: ``SC1:`` + base45(COSE_Sign1), optionally zlib-compressed.

Like the EU Digital COVID Certificate, the bytes under base45 are either the COSE
message itself or its zlib stream (told apart by zlib's first byte, 0x78; an untagged or
tagged COSE_Sign1 starts with 0x84 or 0xD2). Our payloads are small and mostly random
bytes (signature, nonce), so the issuer compresses only when that makes the code shorter;
the decoder accepts both, and inflates with a hard output bound so a zlib bomb costs at
most ``MAX_COSE_BYTES``.
"""

from __future__ import annotations

import zlib

from ..errors import MalformedECodeError
from .base45 import b45decode, b45encode

__all__ = ["MAX_COSE_BYTES", "MAX_TEXT_LENGTH", "PREFIX", "decode_text", "encode_text"]

PREFIX = "SC1:"
MAX_TEXT_LENGTH = 1200   # a QR our size (version 10-15) holds far less than this
MAX_COSE_BYTES = 1024
_ZLIB_FIRST_BYTE = 0x78


def encode_text(cose: bytes) -> str:
    """The printable code for a COSE_Sign1 (compressed only when shorter)."""
    packed = zlib.compress(cose, 9)
    return PREFIX + b45encode(packed if len(packed) < len(cose) else cose)


def decode_text(text: str) -> bytes:
    """The COSE bytes inside ``text``; raise :class:`MalformedECodeError` otherwise."""
    if len(text) > MAX_TEXT_LENGTH:
        raise MalformedECodeError(f"code longer than {MAX_TEXT_LENGTH} characters", "malformed")
    if not text.startswith(PREFIX):
        raise MalformedECodeError(f"code does not start with {PREFIX}", "malformed")
    raw = b45decode(text[len(PREFIX):])
    if not raw:
        raise MalformedECodeError("empty code", "malformed")
    if raw[0] != _ZLIB_FIRST_BYTE:
        return raw
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(raw, MAX_COSE_BYTES + 1)
    except zlib.error as exc:
        raise MalformedECodeError("the zlib stream is corrupt", "malformed") from exc
    if len(out) > MAX_COSE_BYTES:
        raise MalformedECodeError("the code inflates beyond its size limit", "malformed")
    if not inflater.eof or inflater.unused_data:
        raise MalformedECodeError("the zlib stream is truncated or has trailing data",
                                  "malformed")
    return out
