"""Base45 (RFC 9285), strict.

Our e-codes travel as QR alphanumeric-mode text, which base45 fills densely. The decoder
is strict because its input comes from a camera or scanner held by anyone: characters
outside the alphabet, a length of 1 modulo 3, and chunks worth more than the bytes they
stand for (> 65535 for three characters, > 255 for two) are refused, never repaired.
"""

from __future__ import annotations

from ..errors import MalformedECodeError

__all__ = ["ALPHABET", "b45decode", "b45encode"]

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}


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
    """Decode base45 text; raise :class:`MalformedECodeError` on anything not canonical."""
    if len(text) % 3 == 1:
        raise MalformedECodeError("base45 text has an impossible length", "malformed")
    try:
        values = [_VALUE[ch] for ch in text]
    except KeyError:
        raise MalformedECodeError("a character outside the base45 alphabet", "malformed") from None
    out = bytearray()
    full = len(values) - len(values) % 3
    for i in range(0, full, 3):
        n = values[i] + values[i + 1] * 45 + values[i + 2] * 45 * 45
        if n > 0xFFFF:
            raise MalformedECodeError("a base45 chunk is worth more than two bytes", "malformed")
        out += n.to_bytes(2, "big")
    if full != len(values):
        n = values[full] + values[full + 1] * 45
        if n > 0xFF:
            raise MalformedECodeError("a base45 tail is worth more than one byte", "malformed")
        out.append(n)
    return bytes(out)
