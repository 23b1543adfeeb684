"""What the daemon tells its technicians: ``status``, ``health`` and ``last_decision``.

The daemon implements :class:`StatusProvider` (it knows its lanes, its central link and
circuit breaker, its journal, denylist and trust list); the local API only asks it and
shapes the answer, so nothing here imports the daemon. Until the daemon mounts it,
:class:`ProcessStatus` answers for a bare local API (version and uptime, no lanes).

Everything here is counts, ages, versions and states: no holder data, no card reference.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import __version__

__all__ = [
    "CentralStatus",
    "GateStatus",
    "Health",
    "HealthThresholds",
    "LaneStatus",
    "ListStatus",
    "ProcessStatus",
    "QueueStatus",
    "StatusProvider",
    "TerminalStatus",
    "health_of",
]


class LaneState(enum.StrEnum):
    """A lane's states (issue 17): the daemon's lane state machine reports these."""

    IDLE = "idle"
    CARD_PRESENT = "card_present"
    READING = "reading"
    DECIDING = "deciding"
    SHOWING = "showing"
    WAITING_FOR_REMOVAL = "waiting_for_removal"
    LOST = "lost"
    RECOVERING = "recovering"


DOWN_STATES = frozenset({LaneState.LOST, LaneState.RECOVERING})


@dataclass(frozen=True)
class GateStatus:
    """The lane's gate output: its driver (``serial``, ``gpio``, ``sim``), its state
    (``open``, ``closed``, ``fault``) and, in fault, why (no personal data)."""

    driver: str
    state: str
    fault: str | None = None


@dataclass(frozen=True)
class LaneStatus:
    name: str
    kind: str                       # "card" or "code"
    state: str                      # a LaneState value
    device: str = ""                # reader name or scanner path
    since_s: float = 0.0            # seconds in this state
    gate: GateStatus | None = None
    faults: int = 0                 # failures recovered from since start


@dataclass(frozen=True)
class CentralStatus:
    link: str                       # "up", "down", "unknown", "none" (no central)
    circuit: str                    # "closed", "open", "half_open"
    last_success_age_s: float | None = None
    latency_ms: float | None = None


@dataclass(frozen=True)
class QueueStatus:
    depth: int                      # journaled records not yet delivered
    oldest_age_s: float | None      # age of the oldest of them (None: empty)
    full: bool = False


@dataclass(frozen=True)
class ListStatus:
    """The denylist or the trust list: its version, entry count and age."""

    version: str | None
    age_s: float | None
    size: int | None = None


@dataclass(frozen=True)
class TerminalStatus:
    terminal_id: str
    version: str
    uptime_s: float
    profile: str = ""
    lanes: Sequence[LaneStatus] = ()
    central: CentralStatus = CentralStatus(link="none", circuit="closed")
    journal: QueueStatus = QueueStatus(depth=0, oldest_age_s=None)
    denylist: ListStatus = ListStatus(version=None, age_s=None)
    trust_list: ListStatus = ListStatus(version=None, age_s=None)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class StatusProvider(Protocol):
    """What the daemon implements; called in a worker thread (it may read SQLite)."""

    def status(self) -> TerminalStatus: ...


@dataclass
class ProcessStatus:
    """The status of a bare local API process: no lanes, no central, no journal."""

    terminal_id: str = ""
    started: float = field(default_factory=time.monotonic)
    clock: Callable[[], float] = time.monotonic

    def status(self) -> TerminalStatus:
        return TerminalStatus(terminal_id=self.terminal_id, version=__version__,
                              uptime_s=round(self.clock() - self.started, 3))


@dataclass(frozen=True)
class HealthThresholds:
    """When a part is a problem. Journal age: records not delivered for this long mean
    the forwarder is not draining; list ages: the profile's own limits belong here."""

    journal_oldest_s: float = 3600.0
    denylist_age_s: float = 48 * 3600.0
    trust_list_age_s: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Health:
    """``ok``: everything works; ``degraded``: deciding, but something needs a technician
    (a lane down, the central unreachable, a list too old, the journal not draining);
    ``failing``: no lane can decide."""

    state: str
    problems: Sequence[str] = ()

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "problems": list(self.problems)}


def health_of(status: TerminalStatus, thresholds: HealthThresholds | None = None) -> Health:
    """The health verdict of a status: each problem a short, stable sentence."""
    thresholds = thresholds if thresholds is not None else HealthThresholds()
    problems: list[str] = []
    down = [lane.name for lane in status.lanes if lane.state in DOWN_STATES]
    for name in down:
        problems.append(f"lane {name} is down")
    for lane in status.lanes:
        if lane.gate is not None and lane.gate.state == "fault":
            problems.append(f"lane {lane.name}: gate fault")
    if status.central.link == "down":
        problems.append("central unreachable")
    if status.central.circuit == "open":
        problems.append("central circuit breaker open")
    if status.journal.full:
        problems.append("journal full")
    oldest = status.journal.oldest_age_s
    if oldest is not None and oldest > thresholds.journal_oldest_s:
        problems.append("journal not draining")
    age = status.denylist.age_s
    if age is not None and age > thresholds.denylist_age_s:
        problems.append("denylist too old")
    age = status.trust_list.age_s
    if age is not None and age > thresholds.trust_list_age_s:
        problems.append("trust list too old")
    if status.lanes and len(down) == len(status.lanes):
        return Health("failing", problems)
    return Health("degraded" if problems else "ok", problems)
