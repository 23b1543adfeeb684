"""What opens the gate: one seam, three drivers, and the rule that binds them.

:class:`GateOutput` is what a lane drives: ``open(seconds)`` energises the output and
closes it again after ``seconds`` (a later ``open`` extends the time), ``close()``
releases it at once, ``state`` says ``closed``, ``open`` or ``fault``. The drivers:

* ``sim:`` (:class:`SimGate`): keeps its history, can be told to fail; the demo's gate;
* ``serial`` (:mod:`.gate_serial`): a relay board on a serial port, its open and close
  frames configured per board in hex;
* ``gpio`` (:mod:`.gate_gpio`): a line of a Linux GPIO character device
  (``/dev/gpiochipN``) through libgpiod.

:class:`GateController` is the only way a lane uses a gate: it opens for an accepted
presentation only, for the profile's open time, and a gate that fails is reported to
``on_fault`` (a lane fault in status and metrics) and returns; the transaction, already
journaled, is never lost to it. Drivers raise :class:`GateOutputError`; nothing else escapes.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from ..errors import ConfigError, GateOutputError

__all__ = [
    "MAX_OPEN_SECONDS",
    "Decided",
    "GateController",
    "GateOutput",
    "GateOutputError",
    "GateState",
    "SimGate",
    "TimedGate",
    "gate_from_config",
]

_log = logging.getLogger(__name__)

MAX_OPEN_SECONDS = 60.0
"""No gate stays open longer on one presentation, whatever a profile says."""



class GateState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    FAULT = "fault"


class GateOutput(Protocol):
    """What a lane drives; every driver is one."""

    driver: str

    @property
    def state(self) -> GateState: ...

    def open(self, seconds: float) -> None:
        """Energise now and release after ``seconds``; raises :class:`GateOutputError`."""

    def close(self) -> None:
        """Release now; raises :class:`GateOutputError`."""

    def shutdown(self) -> None:
        """Release and free the device (the daemon stops); never raises."""


StateCallback = Callable[[GateState, str | None], None]


class TimedGate:
    """The timing every driver shares: subclasses only energise and release.

    ``on_change(state, fault)`` is called on every change, from the caller's thread or
    the close timer's; a failed timed close turns the gate to ``fault``.
    """

    driver = "abstract"

    def __init__(self, *, on_change: StateCallback | None = None) -> None:
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._state = GateState.CLOSED
        self._fault: str | None = None
        self._listeners: list[StateCallback] = [] if on_change is None else [on_change]

    def add_listener(self, callback: StateCallback) -> None:
        """Also call ``callback(state, fault)`` on every change."""
        self._listeners.append(callback)

    @property
    def state(self) -> GateState:
        return self._state

    @property
    def fault(self) -> str | None:
        return self._fault

    def _energise(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def _free(self) -> None:
        """Free the device (after the last release)."""

    def open(self, seconds: float) -> None:
        if not 0 < seconds <= MAX_OPEN_SECONDS:
            raise ValueError(f"open time must be in (0, {MAX_OPEN_SECONDS:g}] seconds")
        with self._lock:
            self._cancel_timer()
            try:
                self._energise()
            except GateOutputError as exc:
                self._set(GateState.FAULT, str(exc))
                raise
            self._set(GateState.OPEN, None)
            self._timer = threading.Timer(seconds, self._timed_close)
            self._timer.daemon = True
            self._timer.start()

    def close(self) -> None:
        with self._lock:
            self._cancel_timer()
            self._close_locked()

    def shutdown(self) -> None:
        try:
            self.close()
        except GateOutputError as exc:
            _log.warning("gate %s: release at shutdown failed: %s", self.driver, exc)
        finally:
            self._free()

    def _timed_close(self) -> None:
        try:
            self.close()
        except GateOutputError:
            pass  # already reported by _close_locked through on_change

    def _close_locked(self) -> None:
        try:
            self._release()
        except GateOutputError as exc:
            self._set(GateState.FAULT, str(exc))
            raise
        self._set(GateState.CLOSED, None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _set(self, state: GateState, fault: str | None) -> None:
        changed = (state, fault) != (self._state, self._fault)
        self._state, self._fault = state, fault
        if not changed:
            return
        for listener in list(self._listeners):
            try:
                listener(state, fault)
            except Exception:
                _log.exception("gate state callback failed")


class SimGate(TimedGate):
    """A gate in memory: ``history`` holds ``(monotonic time, "open"/"close")``; set
    ``broken`` to a message to make it fail like a dead relay."""

    driver = "sim"

    def __init__(self, *, on_change: StateCallback | None = None) -> None:
        super().__init__(on_change=on_change)
        self.history: list[tuple[float, str]] = []
        self.broken: str | None = None

    def _energise(self) -> None:
        if self.broken:
            raise GateOutputError(self.broken)
        self.history.append((time.monotonic(), "open"))

    def _release(self) -> None:
        if self.broken:
            raise GateOutputError(self.broken)
        self.history.append((time.monotonic(), "close"))


class Decided(Protocol):
    """What the controller needs of a presentation (``Presentation`` and the daemon's
    ``PresentationResult`` are ones)."""

    @property
    def accepted(self) -> bool: ...

    @property
    def transaction_id(self) -> str: ...


FaultCallback = Callable[[str, str], None]
"""``on_fault(lane, message)``: the daemon marks the lane's gate faulted and counts it."""


class GateController:
    """Opens ``gate`` for accepted presentations only, for ``open_seconds`` (the
    profile's open time), and turns a gate failure into a reported lane fault."""

    def __init__(self, gate: GateOutput, *, open_seconds: float, lane: str = "",
                 on_fault: FaultCallback | None = None) -> None:
        if not 0 < open_seconds <= MAX_OPEN_SECONDS:
            raise ConfigError(f"gate open time must be in (0, {MAX_OPEN_SECONDS:g}] s, "
                              f"not {open_seconds!r}")
        self.gate = gate
        self.open_seconds = open_seconds
        self.lane = lane
        self.on_fault = on_fault
        self.faults = 0
        self._opening = False
        add_listener = getattr(gate, "add_listener", None)
        if callable(add_listener):
            # A timed close fails in the timer's thread, after present() returned: it is
            # a lane fault all the same.
            add_listener(self._changed)

    def _changed(self, state: GateState, fault: str | None) -> None:
        if state is GateState.FAULT and self._opening is False:
            self._fault(GateOutputError(fault or "gate fault"), None)

    def present(self, presentation: Decided) -> bool:
        """Open for an accepted presentation; True if the gate opened. Never raises for
        a gate failure and never opens for a refusal or a deferral."""
        if not presentation.accepted:
            return False
        self._opening = True
        try:
            self.gate.open(self.open_seconds)
        except GateOutputError as exc:
            self._fault(exc, presentation.transaction_id)
            return False
        finally:
            self._opening = False
        return True

    def _fault(self, exc: GateOutputError, transaction_id: str | None) -> None:
        self.faults += 1
        lane = self.lane or getattr(self.gate, "driver", "gate")
        if transaction_id is None:
            _log.error("lane %s: gate failed to close: %s", lane, exc)
        else:
            _log.error("lane %s: gate failed to open for transaction %s (journaled; "
                       "the lane goes on): %s", lane, transaction_id, exc)
        if self.on_fault is not None:
            try:
                self.on_fault(lane, str(exc))
            except Exception:
                _log.exception("gate fault callback failed")


def gate_from_config(config: Mapping[str, Any], *, where: str = "gate",
                     on_change: StateCallback | None = None) -> GateOutput:
    """A gate from a lane's ``gate`` table, strictly validated; ``where`` names the
    table in errors (``lanes.gate-1.gate``).

    ``{driver = "sim"}``;
    ``{driver = "serial", port = "/dev/serial/by-id/...", open_frame = "A0 01 01 A2",
    close_frame = "A0 01 00 A1", baudrate = 9600}``;
    ``{driver = "gpio", chip = "/dev/gpiochip0", line = 17, active_low = false}``.
    """
    driver = config.get("driver")
    if driver == "sim":
        _only(config, {"driver"}, where)
        return SimGate(on_change=on_change)
    if driver == "serial":
        from .gate_serial import SerialRelayGate  # noqa: PLC0415 - pyserial when used

        return SerialRelayGate.from_config(config, where=where, on_change=on_change)
    if driver == "gpio":
        from .gate_gpio import GpioGate  # noqa: PLC0415 - libgpiod when used

        return GpioGate.from_config(config, where=where, on_change=on_change)
    raise ConfigError(f"{where}.driver: must be \"sim\", \"serial\" or \"gpio\", "
                      f"not {driver!r}")


def _only(config: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} "
                          f"(allowed: {', '.join(sorted(allowed))})")
