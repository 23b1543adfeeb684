"""Plug-ins found through package entry points: simulated devices and extra CLI commands.

The product never names a simulator (or any other optional add-on) by module: a
distribution declares what it adds in its ``pyproject.toml`` and the product discovers it
with :func:`importlib.metadata.entry_points`. Two groups exist:

``sscard_terminal.sim_devices``
    Each entry point loads a :class:`SimDeviceProvider`: an object whose ``kind`` says
    what its devices are (``"card"`` or ``"PSAM"``), whose ``names()`` lists the devices it
    can make (without the ``sim:`` prefix) and whose ``open(name)`` returns a fresh
    :class:`SimulatedDevice` (``KeyError`` for a name it does not know). The ``sim:`` reader
    scheme (:mod:`sscard_terminal.drivers.sim`) serves those devices as in-process readers.
    A device whose card leaves the field raises
    :class:`~sscard_terminal.errors.CardRemovedError` from ``transmit``; it may say its
    ``interface`` (``"contact"`` or ``"contactless"``) as an attribute.

``sscard_terminal.cli_commands``
    Each entry point loads a ``register(subparsers)`` function, called after the CLI's own
    command groups, exactly like theirs (help text and an example for every command).

The simulators (tests/hardware_sim) declare theirs in pyproject.toml, for example::

    [project.entry-points."sscard_terminal.sim_devices"]
    cards = "<simulator package>.sim_devices:CARDS"

A plug-in that fails to load is skipped with a warning in the log (a broken add-on must
not take the terminal's own commands down with it).
"""

from __future__ import annotations

import functools
import logging
from importlib.metadata import entry_points
from typing import Protocol, runtime_checkable

__all__ = [
    "CLI_COMMANDS_GROUP",
    "SIM_DEVICES_GROUP",
    "SimDeviceProvider",
    "SimulatedDevice",
    "load_entry_points",
    "sim_device_providers",
]

SIM_DEVICES_GROUP = "sscard_terminal.sim_devices"
CLI_COMMANDS_GROUP = "sscard_terminal.cli_commands"

_log = logging.getLogger(__name__)


class SimulatedDevice(Protocol):
    """A card (or PSAM) as a reader sees it: power, ATR, one APDU at a time."""

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def transmit(self, apdu: bytes) -> bytes: ...


@runtime_checkable
class SimDeviceProvider(Protocol):
    """What a ``sscard_terminal.sim_devices`` entry point loads."""

    @property
    def kind(self) -> str:
        """What its devices are, for listings and messages: ``"card"`` or ``"PSAM"``."""
        ...

    def names(self) -> list[str]:
        """The devices it can make, without the ``sim:`` prefix (e.g. ``gen3-adult``)."""
        ...

    def open(self, name: str) -> SimulatedDevice:
        """A fresh device called ``name``; ``KeyError`` when there is none by that name."""
        ...


def load_entry_points(group: str) -> list[tuple[str, object]]:
    """``(entry point name, loaded object)`` for every entry point of ``group``, sorted by
    name so the order does not depend on the order distributions were installed in."""
    loaded: list[tuple[str, object]] = []
    for point in sorted(entry_points(group=group), key=lambda p: p.name):
        try:
            loaded.append((point.name, point.load()))
        except Exception as exc:  # any import-time failure of a third-party add-on
            _log.warning("plug-in %s = %s (group %s) failed to load: %s",
                         point.name, point.value, group, exc)
    return loaded


@functools.cache
def sim_device_providers() -> tuple[SimDeviceProvider, ...]:
    """The installed simulated-device providers (loaded once per process)."""
    providers: list[SimDeviceProvider] = []
    for name, obj in load_entry_points(SIM_DEVICES_GROUP):
        if isinstance(obj, SimDeviceProvider):
            providers.append(obj)
        else:
            _log.warning("plug-in %s (group %s) is not a SimDeviceProvider: %r",
                         name, SIM_DEVICES_GROUP, obj)
    return tuple(providers)
