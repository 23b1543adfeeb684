"""Base45 (RFC 9285), strict.

Our e-codes travel as QR alphanumeric-mode text, which base45 fills densely. The decoder
is strict because its input comes from a camera or scanner held by anyone: characters
outside the alphabet, a length of 1 modulo 3, and chunks worth more than the bytes they
stand for (> 65535 for three characters, > 255 for two) are refused, never repaired.
"""

from __future__ import annotations

import functools

from ..errors import MalformedECodeError

__all__ = ["ALPHABET", "b45decode", "b45encode"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_TABLE = bytes(ALPHABET.index(chr(b)) if chr(b) in ALPHABET else 0xFF for b in range(256))


def b45encode(data: bytes) -> str:
    """Encode bytes as base45 text."""
    out: list[str] = []
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, 45 * 45)
        d, c = divmod(rest, 45)
        out.append(ALPHABET[c] + ALPHABET[d] + ALPHABET[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        out.append(ALPHABET[c] + ALPHABET[d])
    return "".join(out)


def b45decode(text: str) -> bytes:
    """Decode base45 text; raise :class:`MalformedECodeError` on anything not canonical.

    Written for speed on the verification hot path (a per-character Python loop cost more
    than the signature check): one ``translate`` maps characters to values (anything else
    to 0xFF); read as one big integer, each 3-character chunk then sits in a 3-byte slot,
    and masking out each column lets a handful of big-integer operations combine every
    chunk at once.
    """
    if len(text) % 3 == 1:
        raise MalformedECodeError("base45 text has an impossible length", "malformed")
    if not text.isascii():
        raise MalformedECodeError("a character outside the base45 alphabet", "malformed")
    values = text.encode("ascii").translate(_TABLE)
    if b"\xff" in values:
        raise MalformedECodeError("a character outside the base45 alphabet", "malformed")
    count = len(values) // 3
    full = 3 * count
    low, high = _slot_masks(count)
    chunks = int.from_bytes(values[:full], "big")
    # Slot k holds (c, d, e) as bytes; its value is c + 45d + 2025e <= 91124 < 2**24,
    # so the three columns add without carrying from slot to slot.
    total = (((chunks >> 16) & low) + 45 * ((chunks >> 8) & low) + 2025 * (chunks & low))
    if total & high:
        raise MalformedECodeError("a base45 chunk is worth more than two bytes", "malformed")
    slotted = total.to_bytes(full, "big")
    out = bytearray(2 * count)
    out[0::2] = slotted[1::3]
    out[1::2] = slotted[2::3]
    if full != len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise MalformedECodeError("a base45 tail is worth more than one byte", "malformed")
        out.append(n)
    return bytes(out)


@functools.lru_cache(maxsize=64)
def _slot_masks(count: int) -> tuple[int, int]:
    """For ``count`` 3-byte slots: the mask of each slot's low byte, and of its high byte."""
    low = int.from_bytes(b"\x00\x00\xff" * count, "big")
    return low, low << 16
