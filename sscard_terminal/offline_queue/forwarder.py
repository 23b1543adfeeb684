"""Forwarding the journal to the central system: in order, in batches, exactly once.

Exactly once is the product of two halves: the central deduplicates on the record's
UUIDv7 idempotency key, and the forwarder marks a record acknowledged only after the
central answered for it, in the one journal transaction that stores the answer. A crash
between the two means the batch is sent again and the central answers ``duplicate``.

The central may accept part of a batch: each record gets its own outcome. ``accepted``
and ``duplicate`` mean delivered; ``rejected`` means the central received it and will
not take it (it is kept, reported through ``on_forwarded`` and not retried); a record
without an answer stays queued and goes again, first, in the next batch.

Failures back off exponentially with full jitter (delay uniform in ``[0, min(cap,
base * 2**n)]``) so a fleet of validators leaving a tunnel does not reconnect in step.

What the central receives is decided by the record's kind (:data:`DEFAULT_DISCLOSURE`):
the clear payload always, plus only the personal fields that kind names. Personal data
is never logged.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..central.models import TransactionAck, TransactionUpload
from ..deadline import Deadline
from ..errors import CentralProtocolError, JournalError, SscardError
from .journal import Journal, PendingRecord
from .records import AckOutcome, JournalRecord, JournalStatus

__all__ = [
    "DEFAULT_DISCLOSURE",
    "Backoff",
    "DrainResult",
    "Forwarder",
    "ForwarderStatus",
    "Uploader",
]

_log = logging.getLogger(__name__)
_PRUNE_SLICE = 5000

DEFAULT_DISCLOSURE: Mapping[str, frozenset[str]] = {
    # Settlement of fares and concessions needs the card the transaction was made with.
    "card_tap": frozenset({"card_number"}),
    "ecode_scan": frozenset({"card_number"}),
    # Hospital registrations are reconciled by the HIS with the holder's ID number.
    "his_registration": frozenset({"card_number", "id_number"}),
}
"""kind -> personal fields sent to the central; a kind not listed sends none."""


class Uploader(Protocol):
    """The seam to the central (``CentralClient.upload_transactions`` fits it).

    Raises a :class:`~sscard_terminal.errors.CentralError` (or DeadlineExceededError)
    when the batch could not be delivered; returns per-transaction answers otherwise.
    """

    def upload_transactions(self, batch: Sequence[TransactionUpload],
                            deadline: Deadline) -> Sequence[TransactionAck]: ...


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter."""

    base_s: float = 0.5
    cap_s: float = 60.0

    def delay(self, failures: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2 ** min(failures, 30))))


@dataclass(frozen=True)
class ForwarderStatus:
    """What a validator shows a technician: the queue and how forwarding goes."""

    journal: JournalStatus
    forwarded: int
    rejected: int
    consecutive_failures: int
    last_error: str | None
    last_error_at: float | None    # time.time()
    last_success_at: float | None  # time.time()


@dataclass(frozen=True)
class DrainResult:
    """What :meth:`Forwarder.drain` did."""

    forwarded: int
    rejected: int
    remaining: int
    stopped: bool
    last_error: str | None


class Forwarder:
    """Moves queued records to the central. :meth:`run` in a thread, :meth:`stop` anywhere."""

    def __init__(
        self,
        journal: Journal,
        uploader: Uploader,
        *,
        batch_size: int = 200,
        request_timeout_s: float = 15.0,
        backoff: Backoff | None = None,
        retention_s: float = 7 * 24 * 3600.0,
        prune_interval_s: float = 600.0,
        idle_poll_s: float = 30.0,
        disclosure: Mapping[str, frozenset[str]] = DEFAULT_DISCLOSURE,
        on_forwarded: Callable[[JournalRecord, AckOutcome, str], None] | None = None,
        on_failure: Callable[[SscardError], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self.journal = journal
        self._uploader = uploader
        self._batch_size = batch_size
        self._timeout = request_timeout_s
        self._backoff = backoff or Backoff()
        self._retention = retention_s
        self._prune_interval = prune_interval_s
        self._idle_poll = idle_poll_s
        self._disclosure = disclosure
        self._on_forwarded = on_forwarded
        self._on_failure = on_failure
        self._rng = rng or random.SystemRandom()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._forwarded = 0
        self._rejected = 0
        self._failures = 0
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._last_success_at: float | None = None
        self._last_prune = 0.0

    # -- control from other threads --------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` / :meth:`drain` to return; an upload in flight finishes first."""
        self._stop.set()
        self._wake.set()

    def notify(self) -> None:
        """Something was enqueued: forward now instead of at the next idle poll."""
        self._wake.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def status(self) -> ForwarderStatus:
        journal_status = self.journal.status()
        with self._lock:
            return ForwarderStatus(journal_status, self._forwarded, self._rejected,
                                   self._failures, self._last_error, self._last_error_at,
                                   self._last_success_at)

    # -- one batch ---------------------------------------------------------------------------

    def _outgoing(self, item: PendingRecord) -> TransactionUpload:
        record = item.record
        payload = dict(record.payload)
        for name in sorted(self._disclosure.get(record.kind, frozenset())):
            if name in item.personal:
                payload[name] = item.personal[name]
        return TransactionUpload(record.id, record.seq, record.terminal_id, record.kind,
                                   record.wall_time.replace("Z", "+00:00"), payload)

    def forward_batch(self, deadline: Deadline) -> tuple[int, int]:
        """Upload the oldest queued batch once; returns (delivered, rejected).

        Raises the uploader's :class:`SscardError` when the batch did not get through.
        """
        pending = self.journal.pending(self._batch_size)
        if not pending:
            return 0, 0
        by_key = {item.record.id: item.record for item in pending}
        answers = self._uploader.upload_transactions(
            [self._outgoing(item) for item in pending], deadline.capped(self._timeout))
        acks: list[tuple[JournalRecord, AckOutcome, str]] = []
        for answer in answers:
            if answer.idempotency_key not in by_key:
                _log.warning("central acknowledged a transaction not in the batch; ignored")
                continue
            try:
                outcome = AckOutcome(answer.outcome)
            except ValueError:
                _log.warning("central answered unknown outcome %r; record stays queued",
                             answer.outcome)
                continue
            acks.append((by_key[answer.idempotency_key], outcome, answer.reason or ""))
        if not acks:
            # Nothing to learn from: treat like a failure so that the retry backs off
            # instead of spinning on the same batch.
            raise CentralProtocolError(
                f"central answered none of the {len(pending)} transactions sent")
        self.journal.acknowledge(acks)
        delivered = sum(1 for _, o, _ in acks if o is not AckOutcome.REJECTED)
        rejected = len(acks) - delivered
        with self._lock:
            self._forwarded += delivered
            self._rejected += rejected
            self._failures = 0
            self._last_success_at = time.time()
        if rejected:
            _log.error("central rejected %d transaction(s); kept in the journal", rejected)
        if self._on_forwarded is not None:
            for record, outcome, reason in acks:
                _call_listener(self._on_forwarded, record, outcome, reason)
        return delivered, rejected

    def _failed(self, exc: SscardError) -> float:
        with self._lock:
            self._failures += 1
            self._last_error = str(exc)
            self._last_error_at = time.time()
            failures = self._failures
        _log.warning("forwarding failed (%d in a row): %s", failures, exc)
        if self._on_failure is not None:
            _call_listener(self._on_failure, exc)
        return self._backoff.delay(failures - 1, self._rng)

    # -- loops ---------------------------------------------------------------------------------

    def drain(self, deadline: Deadline,
              progress: Callable[[int, int], None] | None = None) -> DrainResult:
        """Forward until the queue is empty, the deadline passes or :meth:`stop` is called.

        ``progress(done, remaining)`` is called after each batch.
        """
        delivered = rejected = 0
        while not self._stop.is_set() and not deadline.expired:
            try:
                d, r = self.forward_batch(deadline)
                delivered += d
                rejected += r
                if d == 0 and r == 0 and not self.journal.pending(1):
                    break
                if progress is not None:
                    progress(delivered + rejected, self.journal.status().queued)
            except SscardError as exc:
                self._stop.wait(min(self._failed(exc), deadline.remaining()))
        remaining = self.journal.status().queued
        return DrainResult(delivered, rejected, remaining, self._stop.is_set(),
                           self._last_error)

    def run(self) -> None:
        """Forward for as long as the daemon lives; returns after :meth:`stop`."""
        while not self._stop.is_set():
            self._wake.clear()
            try:
                result = self.drain(Deadline.never())
            except SscardError as exc:
                # The journal could not be read (an I/O error, a lock held too long):
                # report it and try again later. Returning would end forwarding unseen.
                self._stop.wait(self._failed(exc))
                continue
            self._maybe_prune()
            if result.remaining == 0 or result.stopped:
                self._wake.wait(self._idle_poll)

    def _maybe_prune(self) -> None:
        now = time.monotonic()
        if now - self._last_prune < self._prune_interval:
            return
        self._last_prune = now
        removed = 0
        try:
            # In slices, so that enqueues get the journal between them.
            while not self._stop.is_set():
                pruned = self.journal.prune(self._retention, limit=_PRUNE_SLICE)
                removed += pruned
                if pruned < _PRUNE_SLICE:
                    break
        except JournalError as exc:
            _log.warning("pruning the journal failed: %s", exc)
        if removed:
            _log.info("pruned %d acknowledged record(s) past retention", removed)


def _call_listener(listener: Callable[..., None], *args: object) -> None:
    """Call the daemon's listener; its bug is logged, never the end of forwarding."""
    try:
        listener(*args)
    except Exception:  # whatever it raised, the records are already marked
        _log.exception("forwarder listener failed")
