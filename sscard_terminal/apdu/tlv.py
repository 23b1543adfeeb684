"""TLV codecs: the card's simple TLV records and BER-TLV (FCI, EMV records).

Parsers treat their input as hostile: a length running past the buffer, an indefinite
length, a tag that never ends, nesting deeper than any real card uses or megabytes of
garbage all raise :class:`MalformedResponseError`, never ``IndexError`` or a hang.
Work is linear in the input length.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from ..errors import MalformedResponseError

__all__ = [
    "MAX_DEPTH",
    "SimpleTlv",
    "Tlv",
    "encode_ber",
    "encode_simple",
    "find",
    "parse_ber",
    "parse_simple",
]

MAX_DEPTH = 8
"""No FCI or EMV template nests deeper than a few levels; deeper input is hostile."""

_MAX_TAG_BYTES = 3
_MAX_LENGTH_BYTES = 3


class SimpleTlv(NamedTuple):
    """One record of the social security files: tag(1) | length(1) | value.

    A named tuple (immutable, built once per record read: see ``ResponseApdu``)."""

    tag: int
    value: bytes


def parse_simple(data: bytes, *, what: str = "record") -> SimpleTlv:
    """Parse one ``tag | length | value`` record.

    Cards answer with the length byte the personalisation wrote; a value shorter than
    the file table says is legal (the caller flags it). A length running past the
    buffer is malformed.
    """
    if len(data) < 2:
        raise MalformedResponseError(f"{what} of {len(data)} byte(s) has no tag and length")
    tag, length = data[0], data[1]
    if length > len(data) - 2:
        raise MalformedResponseError(
            f"{what} tag {tag:02X} claims {length} bytes but only {len(data) - 2} follow"
        )
    return SimpleTlv(tag, bytes(data[2 : 2 + length]))


def encode_simple(tag: int, value: bytes) -> bytes:
    if not 0 <= tag <= 0xFF or len(value) > 0xFF:
        raise ValueError("simple TLV holds a one-byte tag and at most 255 bytes")
    return bytes((tag, len(value))) + value


@dataclass(frozen=True)
class Tlv:
    """A BER-TLV data object; constructed objects carry their parsed children."""

    tag: int
    value: bytes
    children: tuple[Tlv, ...] = field(default=())

    @property
    def constructed(self) -> bool:
        first = self.tag
        while first > 0xFF:
            first >>= 8
        return bool(first & 0x20)

    def walk(self) -> Iterator[Tlv]:
        """This object and all its descendants, depth first."""
        yield self
        for child in self.children:
            yield from child.walk()


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    first = data[pos]
    tag = first
    pos += 1
    if first & 0x1F == 0x1F:
        count = 1
        while True:
            if pos >= len(data):
                raise MalformedResponseError("BER-TLV tag runs past the end of the data")
            byte = data[pos]
            tag = (tag << 8) | byte
            pos += 1
            count += 1
            if count > _MAX_TAG_BYTES:
                raise MalformedResponseError("BER-TLV tag longer than 3 bytes")
            if not byte & 0x80:
                break
    return tag, pos


def _read_length(data: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(data):
        raise MalformedResponseError("BER-TLV length missing at the end of the data")
    first = data[pos]
    pos += 1
    if first < 0x80:
        return first, pos
    count = first & 0x7F
    if count == 0:
        raise MalformedResponseError("BER-TLV indefinite length is not allowed here")
    if count > _MAX_LENGTH_BYTES:
        raise MalformedResponseError(f"BER-TLV length of {count} bytes is not plausible")
    if pos + count > len(data):
        raise MalformedResponseError("BER-TLV length runs past the end of the data")
    return int.from_bytes(data[pos : pos + count], "big"), pos + count


def _parse(data: bytes, depth: int) -> tuple[Tlv, ...]:
    if depth > MAX_DEPTH:
        raise MalformedResponseError(f"BER-TLV nested deeper than {MAX_DEPTH} levels")
    items: list[Tlv] = []
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] in (0x00, 0xFF):  # inter-object padding (ISO 7816-4 §5.2.2.1)
            pos += 1
            continue
        tag, pos = _read_tag(data, pos)
        length, pos = _read_length(data, pos)
        if pos + length > end:
            raise MalformedResponseError(
                f"BER-TLV tag {tag:X} claims {length} bytes but only {end - pos} follow"
            )
        value = bytes(data[pos : pos + length])
        pos += length
        first = tag
        while first > 0xFF:
            first >>= 8
        children = _parse(value, depth + 1) if first & 0x20 else ()
        items.append(Tlv(tag, value, children))
    return tuple(items)


def parse_ber(data: bytes) -> tuple[Tlv, ...]:
    """Parse a sequence of BER-TLV objects, recursing into constructed ones."""
    return _parse(bytes(data), 0)


def find(objects: tuple[Tlv, ...], tag: int) -> Tlv | None:
    """The first object with ``tag`` anywhere in ``objects``, depth first."""
    for obj in objects:
        for item in obj.walk():
            if item.tag == tag:
                return item
    return None


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    raw = length.to_bytes((length.bit_length() + 7) // 8, "big")
    if len(raw) > _MAX_LENGTH_BYTES:
        raise ValueError("BER-TLV value too long")
    return bytes((0x80 | len(raw),)) + raw


def encode_ber(tag: int, value: bytes) -> bytes:
    """Encode one object (tags up to 3 bytes)."""
    tag_bytes = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    return tag_bytes + _encode_length(len(value)) + value
