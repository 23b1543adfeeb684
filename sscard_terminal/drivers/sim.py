"""The ``sim:`` reader: a virtual card run in-process, no pcscd needed.

Used by fast tests and to run the whole product with no hardware. The virtual cards
themselves live in ``sscard_hardware_sim`` (tests/hardware_sim/); this driver only
wraps one behind the :class:`CardTransport` seam.
"""

from __future__ import annotations

import importlib
from typing import Protocol

from ..apdu.transport import CardInterface, CardTransport
from ..errors import CardRemovedError, NoReaderError

__all__ = ["SIM_PREFIX", "SimTransport", "SimulatedDevice", "is_sim_reader", "open_sim_reader",
           "sim_reader_names"]

SIM_PREFIX = "sim:"


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
        try:
            return self._device.transmit(apdu)
        except Exception as exc:
            # The simulator signals "card left the field" with its own exception;
            # match it by name so this module never imports the simulator package.
            if type(exc).__name__ == "CardPulledError":
                self._open = False
                raise CardRemovedError(f"{self._reader_name}: the card was removed") from exc
            raise

    def close(self) -> None:
        if self._open:
            self._open = False
            self._device.power_off()


def is_sim_reader(name: str | None) -> bool:
    return name is not None and name.startswith(SIM_PREFIX)


def sim_reader_names() -> list[str]:
    """``sim:<holder>`` for every synthetic holder, or [] without the simulator package."""
    try:
        simulator = importlib.import_module("sscard_hardware_sim.virtual_card")
    except ImportError:
        return []
    return [SIM_PREFIX + name for name in simulator.holder_names()]


def open_sim_reader(name: str) -> SimTransport:
    """A transport to the virtual card of ``sim:<holder>`` (e.g. ``sim:gen3-adult``)."""
    holder = name[len(SIM_PREFIX):] if name.startswith(SIM_PREFIX) else name
    try:
        simulator = importlib.import_module("sscard_hardware_sim.virtual_card")
    except ImportError as exc:
        raise NoReaderError(f"{name}: the simulator package sscard_hardware_sim is not "
                            "installed") from exc
    try:
        card: SimulatedDevice = simulator.VirtualCard.from_holder(holder)
    except KeyError as exc:
        raise NoReaderError(f"no simulated reader {name!r}",
                            found=tuple(sim_reader_names())) from exc
    kind = str(getattr(card, "interface", "unknown"))
    interface = CardInterface(kind) if kind in ("contact", "contactless") \
        else CardInterface.UNKNOWN
    return SimTransport(card, reader_name=SIM_PREFIX + holder, interface=interface)
