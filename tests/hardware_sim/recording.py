"""A transport that records what it sends, so a benchmark's baseline can replay exactly
the APDUs our own path sent (card_read, card_auth)."""

from __future__ import annotations

from sscard_terminal.apdu.transport import CardInterface, CardTransport

__all__ = ["RecordingTransport", "Step"]

Step = tuple[str, bytes]
"""(target, command APDU): target names the device ("card", "psam")."""


class RecordingTransport(CardTransport):
    """Passes APDUs through to ``inner`` and appends (target, apdu) to ``log``."""

    def __init__(self, inner: CardTransport, log: list[Step], target: str = "card") -> None:
        self.inner = inner
        self.target = target
        self.log = log

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    @property
    def interface(self) -> CardInterface:
        return self.inner.interface

    @property
    def reader_name(self) -> str:
        return self.inner.reader_name

    def transmit(self, apdu: bytes) -> bytes:
        self.log.append((self.target, apdu))
        return self.inner.transmit(apdu)

    def close(self) -> None:
        self.inner.close()
