"""The daemon's ``status``: what its technicians ask the local API (issue 18).

:class:`DaemonStatus` is the :class:`~sscard_terminal.local_api.status.StatusProvider`
the daemon mounts: its lanes and their states (from the lane state machines), each lane's
gate, and the runtime's facts (central link and circuit breaker, journal depth and oldest
record, denylist version/size/age, trust list age), with the version and the uptime. It
is asked in a worker thread (the journal's count is a SQLite query) and holds the runtime
like a presentation does, so a reload never closes the journal under it.

Counts, ages, versions and states only: no holder data, no card reference.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from .. import __version__
from ..local_api.status import GateStatus, LaneStatus, TerminalStatus
from .config import DaemonConfig
from .lane import LaneKind, LaneState, LaneStateMachine
from .presenter import Runtime

__all__ = ["DaemonStatus"]


class _Lane(Protocol):
    name: str
    machine: LaneStateMachine


def _faults(counters: Mapping[str, int]) -> int:
    """A lane's faults: each time it was lost, each time its gate failed."""
    return counters.get(f"entered.{LaneState.LOST.value}", 0) + counters.get("gate.faults", 0)


class DaemonStatus:
    """The running daemon's status; every source is a callable, read at each ask."""

    def __init__(self, *, config: Callable[[], DaemonConfig],
                 lanes: Callable[[], Sequence[_Lane]],
                 runtime: Callable[[], AbstractContextManager[Runtime]],
                 gates: Callable[[], Mapping[str, GateStatus]] = dict,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._config = config
        self._lanes = lanes
        self._runtime = runtime
        self._gates = gates
        self._clock = clock
        self._started = clock()

    def status(self) -> TerminalStatus:
        config = self._config()
        devices = {lane.name: lane.target for lane in config.lanes}
        gates = self._gates()
        lanes = []
        for lane in self._lanes():
            machine = lane.machine
            lanes.append(LaneStatus(
                name=lane.name,
                kind="card" if machine.kind is LaneKind.CARD else "code",
                state=machine.state.value,
                device=devices.get(lane.name, ""),
                since_s=round(machine.seconds_in_state(), 3),
                gate=gates.get(lane.name),
                faults=_faults(machine.counters())))
        status = TerminalStatus(terminal_id=config.terminal_id, version=__version__,
                                uptime_s=round(self._clock() - self._started, 3),
                                profile=config.profile.name, lanes=tuple(lanes))
        try:
            with self._runtime() as runtime:
                facts = runtime.facts() if runtime.facts is not None else None
        except RuntimeError:        # no runtime (starting or stopping): the lanes only
            facts = None
        if facts is None:
            return status
        return dataclasses.replace(status, central=facts.central, journal=facts.journal,
                                   denylist=facts.denylist, trust_list=facts.trust_list)
