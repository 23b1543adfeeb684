"""The value types of the journal: a stored record, limits, alarms and a status snapshot.

A :class:`JournalRecord` carries no personal data (it stays sealed in the journal); its
``repr`` is therefore safe to log.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class JournalRecord(NamedTuple):
    """One journal entry as stored (personal fields stay encrypted, see ``has_personal``).

    A named tuple rather than a frozen dataclass: every durable enqueue returns one, and
    building a frozen dataclass costs as much as the record's HMAC (see bench/queue.py).
    """

    seq: int
    id: str                      # UUIDv7, the idempotency key at the central
    terminal_id: str
    wall_time: str               # ISO 8601 UTC, milliseconds
    mono_ns: int                 # CLOCK_MONOTONIC of boot ``boot_id``
    boot_id: str
    kind: str
    payload: Mapping[str, Any]
    has_personal: bool
    prev_hash: bytes
    hash: bytes
    acked_at: str | None = None
    ack_outcome: AckOutcome | None = None
    ack_reason: str | None = None

    def __repr__(self) -> str:
        # The chain hashes are noise in a log line; everything else is safe to show.
        return (f"JournalRecord(seq={self.seq}, id={self.id!r}, terminal_id={self.terminal_id!r},"
                f" wall_time={self.wall_time!r}, kind={self.kind!r}, payload={self.payload!r},"
                f" has_personal={self.has_personal}, acked_at={self.acked_at!r},"
                f" ack_outcome={self.ack_outcome}, ack_reason={self.ack_reason!r})")


@dataclass(frozen=True)
class JournalStatus:
    """How much waits to be forwarded and which limits are exceeded."""

    queued: int
    oldest_queued_age_s: float | None
    disk_bytes: int              # bytes of the pages in use (what the disk limit counts)
    head_seq: int
    alarms: frozenset[Alarm]
