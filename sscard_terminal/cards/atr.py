"""ATR decoding (ISO 7816-3) and a small table of social security card ATRs.

pcsc-tools' ATR list has no Chinese social security cards; :data:`KNOWN_ATRS` is our
own, matched on the historical bytes. An entry says only what is known: a vendor
that nobody has confirmed is left as None rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KNOWN_ATRS", "AtrInfo", "KnownAtr", "decode_atr", "identify_atr"]


@dataclass(frozen=True)
class AtrInfo:
    """The fields of an ATR. ``interface_bytes`` maps "TA1", "TB1", ... to their values."""

    raw: bytes
    ts: int
    t0: int
    interface_bytes: dict[str, int]
    protocols: tuple[int, ...]
    historical: bytes
    tck: int | None
    tck_valid: bool | None
    """None when no TCK is due (only T=0 indicated)."""

    @property
    def direct_convention(self) -> bool:
        return self.ts == 0x3B

    @property
    def pseudo_contactless(self) -> bool:
        """PC/SC part 3 pseudo-ATR of a contactless card: 3B 8n 80 01 ... TCK."""
        return (len(self.raw) >= 4 and self.raw[0] == 0x3B and self.raw[1] & 0xF0 == 0x80
                and self.raw[2] == 0x80 and self.raw[3] == 0x01)

    def describe(self) -> list[str]:
        lines = [f"ATR        {self.raw.hex(' ').upper()}",
                 f"TS         {self.ts:02X} ({'direct' if self.direct_convention else 'inverse'}"
                 " convention)",
                 f"T0         {self.t0:02X} ({self.t0 & 0x0F} historical bytes)"]
        lines += [f"{name:<10} {value:02X}" for name, value in self.interface_bytes.items()]
        lines.append("protocols  " + ", ".join(f"T={p}" for p in self.protocols))
        lines.append(f"historical {self.historical.hex(' ').upper() or '-'}")
        if self.tck is not None:
            lines.append(f"TCK        {self.tck:02X} ({'ok' if self.tck_valid else 'WRONG'})")
        if self.pseudo_contactless:
            lines.append("interface  contactless (PC/SC part 3 pseudo-ATR)")
        return lines


def decode_atr(atr: bytes) -> AtrInfo:
    """Decode an ATR; raise ValueError when it is too short or runs past its end."""
    if len(atr) < 2:
        raise ValueError(f"an ATR has at least 2 bytes, got {len(atr)}")
    ts, t0 = atr[0], atr[1]
    if ts not in (0x3B, 0x3F):
        raise ValueError(f"TS {ts:02X} is neither 3B nor 3F")
    pos = 2
    y = t0 >> 4
    level = 1
    interface: dict[str, int] = {}
    protocols: list[int] = []
    while True:
        td: int | None = None
        for bit, letter in ((0x1, "A"), (0x2, "B"), (0x4, "C"), (0x8, "D")):
            if y & bit:
                if pos >= len(atr):
                    raise ValueError(f"ATR ends inside T{letter}{level}")
                interface[f"T{letter}{level}"] = atr[pos]
                if letter == "D":
                    td = atr[pos]
                pos += 1
        if td is None:
            break
        protocols.append(td & 0x0F)
        y = td >> 4
        level += 1
        if level > 8:
            raise ValueError("ATR has more interface levels than ISO 7816-3 allows")
    count = t0 & 0x0F
    if pos + count > len(atr):
        raise ValueError("ATR ends inside its historical bytes")
    historical = atr[pos : pos + count]
    pos += count
    if not protocols:
        protocols = [0]
    needs_tck = any(p != 0 for p in protocols)
    tck: int | None = None
    tck_valid: bool | None = None
    if needs_tck:
        if pos >= len(atr):
            raise ValueError("ATR lacks its TCK")
        tck = atr[pos]
        check = 0
        for byte in atr[1 : pos + 1]:
            check ^= byte
        tck_valid = check == 0
    return AtrInfo(bytes(atr), ts, t0, interface, tuple(dict.fromkeys(protocols)),
                   bytes(historical), tck, tck_valid)


@dataclass(frozen=True)
class KnownAtr:
    historical_prefix: bytes
    description: str
    vendor: str | None
    generation: int | None
    contactless: bool | None


KNOWN_ATRS: tuple[KnownAtr, ...] = (
    KnownAtr(bytes.fromhex("00814E4323869715"),
             "social security card, historical bytes as in the unified interface's example",
             None, None, False),
    KnownAtr(bytes.fromhex("0000000000718100"),
             "UnionPay contactless bank card (sscard-terminal simulator)", None, None, True),
)


def identify_atr(atr: bytes) -> KnownAtr | None:
    """The table entry whose historical-byte prefix matches, or None."""
    try:
        historical = decode_atr(atr).historical
    except ValueError:
        return None
    for entry in KNOWN_ATRS:
        if historical.startswith(entry.historical_prefix):
            return entry
    return None
