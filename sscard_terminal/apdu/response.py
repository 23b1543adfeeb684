"""Response APDUs: data followed by the two status bytes."""

from __future__ import annotations

from typing import NamedTuple

from ..errors import MalformedResponseError
from .status import describe_sw

__all__ = ["ResponseApdu"]


class ResponseApdu(NamedTuple):
    """What the card answered. ``sw`` is SW1 << 8 | SW2.

    A named tuple (immutable, like the frozen dataclass it was) because one is built per
    exchange, and the time between two exchanges shows in the card-read benchmark.
    """

    data: bytes
    sw: int

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseApdu:
        """Split a raw response; fewer than two bytes is malformed, never IndexError."""
        if len(raw) < 2:
            raise MalformedResponseError(
                f"response of {len(raw)} byte(s) has no status word"
            )
        return cls(bytes(raw[:-2]), (raw[-2] << 8) | raw[-1])

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == 0x9000

    @property
    def meaning(self) -> str:
        return describe_sw(self.sw)

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")
