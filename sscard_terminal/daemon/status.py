"""The daemon's answer to the local API's ``status`` and ``health`` functions.

The local API defines what a status is (:class:`~sscard_terminal.local_api.status.
TerminalStatus`); the daemon fills it from what it runs: its lanes (state, device, time in
state, how often each recovered), the central's circuit breaker and the journal's queue.
Called in a worker thread (the journal's status reads SQLite).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

from .. import __version__
from ..local_api.status import CentralStatus, LaneStatus, QueueStatus, TerminalStatus
from .lane import LaneKind, LaneStateMachine
from .presenter import Runtime

__all__ = ["DaemonStatus"]


class _Lane(Protocol):
    name: str
    machine: LaneStateMachine

    @property
    def device(self) -> str: ...


class DaemonStatus:
    """A :class:`~sscard_terminal.local_api.status.StatusProvider` over the daemon."""

    def __init__(self, *, terminal_id: str, profile: Callable[[], str],
                 lanes: Callable[[], Sequence[_Lane]],
                 runtime: Callable[[], Runtime | None]) -> None:
        self._terminal_id = terminal_id
        self._profile = profile
        self._lanes = lanes
        self._runtime = runtime
        self._started = time.monotonic()

    def status(self) -> TerminalStatus:
        lanes = [LaneStatus(name=lane.name,
                            kind="card" if lane.machine.kind is LaneKind.CARD else "code",
                            state=lane.machine.state.value, device=lane.device,
                            since_s=round(lane.machine.seconds_in_state(), 3),
                            faults=lane.machine.counters().get("entered.lost", 0))
                 for lane in self._lanes()]
        runtime = self._runtime()
        central = CentralStatus(link="none", circuit="closed")
        journal = QueueStatus(depth=0, oldest_age_s=None)
        if runtime is not None:
            if runtime.breaker is not None:
                circuit = runtime.breaker.state.value
                central = CentralStatus(link="up" if circuit == "closed" else "down",
                                        circuit=circuit)
            if runtime.journal_status is not None:
                queue = runtime.journal_status()
                journal = QueueStatus(depth=queue.queued, oldest_age_s=queue.oldest_queued_age_s,
                                      full=bool(queue.alarms))
        return TerminalStatus(terminal_id=self._terminal_id, version=__version__,
                              uptime_s=round(time.monotonic() - self._started, 3),
                              profile=self._profile(), lanes=lanes, central=central,
                              journal=journal)
