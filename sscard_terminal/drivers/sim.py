"""The ``sim:`` reader: a virtual card run in-process, no pcscd needed.

Used by fast tests and to run the whole product with no hardware. The virtual cards
themselves live in ``sscard_hardware_sim`` (tests/hardware_sim/); this driver only
wraps one behind the :class:`CardTransport` seam.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import CardRemovedError
from .transport import CardInterface, CardTransport

__all__ = ["SimTransport", "SimulatedDevice"]


class SimulatedDevice(Protocol):
    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def transmit(self, apdu: bytes) -> bytes: ...


class SimTransport(CardTransport):
    """A :class:`CardTransport` over an in-process virtual device."""

    def __init__(
        self,
        device: SimulatedDevice,
        *,
        reader_name: str = "sim:card",
        interface: CardInterface = CardInterface.CONTACT,
    ) -> None:
        self._device = device
        self._reader_name = reader_name
        self._interface = interface
        self._open = True
        device.power_on()

    @property
    def atr(self) -> bytes:
        return self._device.atr

    @property
    def interface(self) -> CardInterface:
        return self._interface

    @property
    def reader_name(self) -> str:
        return self._reader_name

    def transmit(self, apdu: bytes) -> bytes:
        if not self._open:
            raise CardRemovedError(f"{self._reader_name}: the card was released")
        return self._device.transmit(apdu)

    def close(self) -> None:
        if self._open:
            self._open = False
            self._device.power_off()
