"""The value types of the journal: a stored record, limits, alarms and a status snapshot.

A :class:`JournalRecord` carries no personal data (it stays sealed in the journal); its
``repr`` is therefore safe to log.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AckOutcome",
    "Alarm",
    "FullBehaviour",
    "JournalLimits",
    "JournalRecord",
    "JournalStatus",
]


class AckOutcome(enum.Enum):
    """What the central said about one uploaded record."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"    # already had it: counts as delivered
    REJECTED = "rejected"      # received but refused: kept, alarmed, not retried


class FullBehaviour(enum.Enum):
    """What an enqueue does when a limit is reached (chosen per profile)."""

    REFUSE = "refuse"   # raise JournalFullError: no evidence, no offline acceptance
    ALARM = "alarm"     # record it anyway and raise an alarm


class Alarm(enum.Enum):
    """A journal limit that is currently exceeded."""

    COUNT = "count"
    AGE = "age"
    DISK = "disk"


@dataclass(frozen=True)
class JournalLimits:
    """Limits on what waits to be forwarded; ``None`` means no limit."""

    max_records: int | None = None
    max_age_s: float | None = None
    max_disk_bytes: int | None = None
    when_full: FullBehaviour = FullBehaviour.ALARM

    @classmethod
    def from_profile(cls, *, max_records: int, max_age_hours: float, max_disk_mb: int,
                     when_full: str) -> JournalLimits:
        """The limits of a profile's ``[journal]`` section (units as the profile writes them)."""
        return cls(max_records, max_age_hours * 3600.0, max_disk_mb * 1024 * 1024,
                   FullBehaviour(when_full))


@dataclass(frozen=True)
class JournalRecord:
    """One journal entry as stored (personal fields stay encrypted, see ``has_personal``)."""

    seq: int
    id: str                      # UUIDv7, the idempotency key at the central
    terminal_id: str
    wall_time: str               # ISO 8601 UTC, milliseconds
    mono_ns: int                 # CLOCK_MONOTONIC of boot ``boot_id``
    boot_id: str
    kind: str
    payload: Mapping[str, Any]
    has_personal: bool
    prev_hash: bytes = field(repr=False)
    hash: bytes = field(repr=False)
    acked_at: str | None = None
    ack_outcome: AckOutcome | None = None
    ack_reason: str | None = None


@dataclass(frozen=True)
class JournalStatus:
    """How much waits to be forwarded and which limits are exceeded."""

    queued: int
    oldest_queued_age_s: float | None
    disk_bytes: int
    head_seq: int
    alarms: frozenset[Alarm]
