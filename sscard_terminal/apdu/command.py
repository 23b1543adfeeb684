"""Command APDUs (ISO 7816-4 §5.1), short and extended length."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import MalformedResponseError

__all__ = ["CommandApdu"]

_SHORT_MAX = 255
_EXTENDED_MAX = 65535


@dataclass(frozen=True)
class CommandApdu:
    """A command. ``le`` None means no response data expected; 0 with short encoding
    asks for up to 256 bytes (encoded as ``00``), as cards expect."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False
    _encoded: bytes = field(init=False, repr=False, compare=False, default=b"")

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} must be one byte, got {value!r}")
        limit = _EXTENDED_MAX if self.extended else _SHORT_MAX
        if len(self.data) > limit:
            raise ValueError(f"command data of {len(self.data)} bytes exceeds {limit}")
        if self.le is not None and not 0 <= self.le <= limit + 1:
            raise ValueError(f"Le {self.le} out of range 0..{limit + 1}")
        # Encoded once: a card read sends the same few commands again and again, and
        # every microsecond between two exchanges shows in the card-read benchmark.
        object.__setattr__(self, "_encoded", self._encode())

    def to_bytes(self) -> bytes:
        """Encode per ISO 7816-4 cases 1 to 4, short or extended."""
        return self._encoded

    def _encode(self) -> bytes:
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        body = b""
        if self.extended:
            if self.data:
                body += b"\x00" + len(self.data).to_bytes(2, "big") + self.data
            if self.le is not None:
                le = self.le & 0xFFFF  # 65536 is encoded as 0000
                body += (b"" if self.data else b"\x00") + le.to_bytes(2, "big")
            return header + body
        if self.data:
            body += bytes((len(self.data),)) + self.data
        if self.le is not None:
            body += bytes((self.le & 0xFF,))  # 256 and 0 are encoded as 00
        return header + body

    def with_le(self, le: int) -> CommandApdu:
        """The same command asking for ``le`` bytes (for 6C XX correction)."""
        return CommandApdu(self.cla, self.ins, self.p1, self.p2, self.data, le, self.extended)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CommandApdu:
        """Parse an encoded command (used by the virtual cards and ``sscard apdu``)."""
        if len(raw) < 4:
            raise MalformedResponseError(f"command APDU of {len(raw)} bytes is shorter than 4")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:
            return cls(cla, ins, p1, p2)
        if len(body) == 1:
            return cls(cla, ins, p1, p2, le=body[0] or 256)
        if body[0] != 0:
            lc = body[0]
            if len(body) == 1 + lc:
                return cls(cla, ins, p1, p2, body[1:])
            if len(body) == 2 + lc:
                return cls(cla, ins, p1, p2, body[1 : 1 + lc], body[1 + lc] or 256)
            raise MalformedResponseError(f"Lc {lc} does not match {len(body) - 1} body bytes")
        # extended: 00 then two length bytes
        if len(body) == 3:
            return cls(cla, ins, p1, p2, le=int.from_bytes(body[1:3], "big") or 65536,
                       extended=True)
        lc = int.from_bytes(body[1:3], "big")
        rest = body[3:]
        if lc == 0 or len(rest) not in (lc, lc + 2):
            raise MalformedResponseError(f"extended Lc {lc} does not match {len(rest)} bytes")
        le = int.from_bytes(rest[lc:], "big") or 65536 if len(rest) == lc + 2 else None
        return cls(cla, ins, p1, p2, rest[:lc], le, extended=True)

    def __str__(self) -> str:
        return self.to_bytes().hex(" ").upper()
