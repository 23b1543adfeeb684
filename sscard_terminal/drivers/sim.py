"""The ``sim:`` reader: a virtual card (or PSAM) run in-process, no pcscd needed.

Used by fast tests and to run the whole product with no hardware. The virtual devices
come from plug-ins (the ``sscard_terminal.sim_devices`` entry points, see
:mod:`sscard_terminal.plugins`); this driver only resolves a ``sim:`` name to one and
wraps it behind the :class:`CardTransport` seam. Names resolve like PC/SC reader names:
an exact name, else a unique prefix (``sim:gen2`` is ``sim:gen2-adult``); an ambiguous
or unknown one raises :class:`NoReaderError` listing the candidates or what exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..apdu.transport import CardInterface, CardTransport
from ..errors import CardRemovedError, NoReaderError
from ..plugins import SIM_DEVICES_GROUP, SimDeviceProvider, SimulatedDevice, sim_device_providers

__all__ = ["SIM_PREFIX", "SimReader", "SimTransport", "SimulatedDevice", "is_sim_reader",
           "open_sim_reader", "resolve_sim_reader", "sim_reader_names", "sim_readers"]

SIM_PREFIX = "sim:"


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
        except CardRemovedError as exc:
            # The plug-in protocol: a device whose card left the field raises our
            # CardRemovedError; the link is gone from then on.
            self._open = False
            raise CardRemovedError(f"{self._reader_name}: the card was removed") from exc

    def close(self) -> None:
        if self._open:
            self._open = False
            self._device.power_off()


@dataclass(frozen=True)
class SimReader:
    """One simulated reader: its ``sim:`` name, what it holds (card or PSAM), its maker."""

    name: str
    kind: str
    provider: SimDeviceProvider


def is_sim_reader(name: str | None) -> bool:
    return name is not None and name.startswith(SIM_PREFIX)


def sim_readers() -> list[SimReader]:
    """Every simulated reader the installed plug-ins offer (cards first, then PSAMs, as
    the providers are ordered); a name two providers claim is the first one's."""
    seen: set[str] = set()
    readers = []
    for provider in sim_device_providers():
        for name in provider.names():
            full = SIM_PREFIX + name
            if full not in seen:
                seen.add(full)
                readers.append(SimReader(full, provider.kind, provider))
    return readers


def sim_reader_names() -> list[str]:
    """``sim:<name>`` of every simulated reader, or [] without a simulator plug-in."""
    return [reader.name for reader in sim_readers()]


def _what_exists(readers: list[SimReader]) -> str:
    if not readers:
        return (f"no simulator is installed (no entry point in the group {SIM_DEVICES_GROUP}; "
                "the sscard-terminal distribution ships one)")
    kinds: dict[str, list[str]] = {}
    for reader in readers:
        kinds.setdefault(reader.kind, []).append(reader.name)
    return "; ".join(f"simulated {kind}s: {', '.join(names)}" for kind, names in kinds.items())


def resolve_sim_reader(name: str) -> SimReader:
    """The simulated reader ``name`` means: exact, else the only one it is a prefix of."""
    readers = sim_readers()
    wanted = name if name.startswith(SIM_PREFIX) else SIM_PREFIX + name
    for reader in readers:
        if reader.name == wanted:
            return reader
    matches = [reader for reader in readers if reader.name.startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = tuple(reader.name for reader in matches)
        raise NoReaderError(f"simulated reader {name!r} is ambiguous: it may be "
                            f"{', '.join(names)}", found=names)
    raise NoReaderError(f"no simulated reader {name!r}; {_what_exists(readers)}",
                        found=tuple(reader.name for reader in readers))


def open_sim_reader(name: str) -> SimTransport:
    """A transport to the simulated device ``name`` (``sim:gen3-adult``, ``sim:psam``,
    or a unique prefix such as ``sim:gen2``)."""
    reader = resolve_sim_reader(name)
    try:
        device = reader.provider.open(reader.name[len(SIM_PREFIX):])
    except KeyError as exc:  # the provider listed it but cannot make it
        raise NoReaderError(f"simulated reader {reader.name!r} cannot be opened: {exc}",
                            found=tuple(sim_reader_names())) from exc
    kind = str(getattr(device, "interface", "unknown"))
    interface = CardInterface(kind) if kind in ("contact", "contactless") \
        else CardInterface.UNKNOWN
    return SimTransport(device, reader_name=reader.name, interface=interface)
