"""The forwarder against the real central simulator (a subprocess on 127.0.0.1)."""

from __future__ import annotations

import contextlib
import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.central.models import TransactionAck, TransactionUpload
from sscard_terminal.deadline import Deadline
from sscard_terminal.errors import JournalStorageError, JournalTamperedError, SscardError
from sscard_terminal.offline_queue import (
    AckOutcome,
    Backoff,
    Forwarder,
    Journal,
    JournalRecord,
    JournalStatus,
    verify_journal,
)

KEY = bytes(range(32))
PERSON = {"name": "李四", "id_number": "330302199001011234", "card_number": "D00000013"}


@pytest.fixture
def central(central_sim: CentralSim) -> CentralSim:
    """The shared fixture: ``sscard central-sim serve`` as a subprocess on 127.0.0.1."""
    return central_sim


def _journal(tmp_path: Path, sim: CentralSim, count: int) -> Journal:
    journal = Journal.open(tmp_path / "journal.db", terminal_id=sim.terminal_id, keys=KEY)
    for i in range(count):
        journal.enqueue("card_tap", {"fare_cents": i}, PERSON)
    return journal


def _tampered(tmp_path: Path, sim: CentralSim, count: int, sql: str) -> Journal:
    """A journal of ``count`` records that ``sql`` edited behind its back, reopened."""
    _journal(tmp_path, sim, count).close()
    conn = sqlite3.connect(tmp_path / "journal.db")
    conn.execute(sql)
    conn.commit()
    conn.close()
    return Journal.open(tmp_path / "journal.db", terminal_id=sim.terminal_id, keys=KEY)


def _central_rows(sim: CentralSim) -> list[tuple[str, int, str]]:
    conn = sqlite3.connect(sim.db)
    try:
        return [(r[0], int(r[1]), r[2]) for r in conn.execute(
            "SELECT idempotency_key, sequence, payload FROM transactions WHERE terminal_id=? "
            "ORDER BY sequence", (sim.terminal_id,))]
    finally:
        conn.close()


@contextlib.contextmanager
def _running(forwarder: Forwarder) -> Iterator[threading.Thread]:
    """``forwarder.run`` in a thread for the block; stopped and joined after it."""
    thread = threading.Thread(target=forwarder.run)
    thread.start()
    try:
        yield thread
    finally:
        forwarder.stop()
        thread.join(10)


def _wait_for(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.01)


def test_drain_uploads_everything_in_order_in_batches(tmp_path: Path,
                                                      central: CentralSim) -> None:
    seen: list[tuple[int, AckOutcome]] = []
    with _journal(tmp_path, central, 25) as journal, central.make_client() as client:
        forwarder = Forwarder(journal, client, batch_size=10,
                              on_forwarded=lambda r, o, _: seen.append((r.seq, o)))
        progress: list[tuple[int, int]] = []
        result = forwarder.drain(Deadline.after(30), lambda d, r: progress.append((d, r)))
        assert (result.forwarded, result.remaining) == (25, 0)
        assert progress == [(10, 15), (20, 5), (25, 0)]
        assert [s for s, _ in seen] == list(range(1, 26))
        assert {o for _, o in seen} == {AckOutcome.ACCEPTED}
        assert all(r.ack_outcome is AckOutcome.ACCEPTED for r in journal.records())
        assert verify_journal(journal).ok
        assert forwarder.status().journal.queued == 0
    rows = _central_rows(central)
    assert [seq for _, seq, _ in rows] == list(range(1, 26))


def test_central_sees_only_the_personal_fields_its_kind_discloses(
        tmp_path: Path, central: CentralSim) -> None:
    with _journal(tmp_path, central, 1) as journal, central.make_client() as client:
        journal.enqueue("gate_pass", {"gate": 2}, PERSON)
        Forwarder(journal, client).drain(Deadline.after(30))
    payloads = [json.loads(p) for _, _, p in _central_rows(central)]
    assert payloads[0] == {"fare_cents": 0, "card_number": "D00000013"}
    assert payloads[1] == {"gate": 2}


class _Wire:
    """The real client, with the wire misbehaving the way a test needs."""

    def __init__(self, client: object, *, corrupt_seq: int | None = None,
                 drop_ack_seq: int | None = None) -> None:
        self.client = client
        self.corrupt_seq = corrupt_seq
        self.drop_ack_seq = drop_ack_seq
        self.batches: list[list[int]] = []

    def upload_transactions(self, batch: Sequence[TransactionUpload],
                            deadline: Deadline) -> list[TransactionAck]:
        self.batches.append([t.sequence for t in batch])
        sent = [TransactionUpload(t.idempotency_key, t.sequence, "T-SOMEONE-ELSE", t.kind,
                                  t.occurred_at, t.payload)
                if t.sequence == self.corrupt_seq else t for t in batch]
        acks: list[TransactionAck] = self.client.upload_transactions(  # type: ignore[attr-defined]
            sent, deadline)
        dropped = {t.idempotency_key for t in batch if t.sequence == self.drop_ack_seq}
        self.drop_ack_seq = None
        return [a for a in acks if a.idempotency_key not in dropped]


def test_partial_acceptance_rejected_kept_and_unanswered_retried_first(
        tmp_path: Path, central: CentralSim) -> None:
    outcomes: dict[int, AckOutcome] = {}
    with _journal(tmp_path, central, 8) as journal, central.make_client() as client:
        wire = _Wire(client, corrupt_seq=3, drop_ack_seq=5)
        forwarder = Forwarder(journal, wire, batch_size=6,
                              on_forwarded=lambda r, o, _: outcomes.__setitem__(r.seq, o))
        result = forwarder.drain(Deadline.after(30))
        assert wire.batches[0] == [1, 2, 3, 4, 5, 6]
        assert wire.batches[1][0] == 5          # the unanswered record goes first again
        assert result.rejected == 1 and result.remaining == 0
        assert outcomes[3] is AckOutcome.REJECTED
        assert outcomes[5] in (AckOutcome.ACCEPTED, AckOutcome.DUPLICATE)
        rejected = [r for r in journal.records() if r.ack_outcome is AckOutcome.REJECTED]
        assert [(r.seq, r.ack_reason) for r in rejected] == [(3, "terminal_mismatch")]
        assert verify_journal(journal).ok
    assert [seq for _, seq, _ in _central_rows(central)] == [1, 2, 4, 5, 6, 7, 8]


def test_failures_back_off_call_back_and_recover(tmp_path: Path, central: CentralSim) -> None:
    failures: list[SscardError] = []
    central.set_faults(mode="error")
    with _journal(tmp_path, central, 5) as journal, central.make_client() as client:
        forwarder = Forwarder(journal, client, backoff=Backoff(base_s=0.01, cap_s=0.05),
                              on_failure=failures.append)
        thread = threading.Thread(target=forwarder.drain, args=(Deadline.after(60),))
        thread.start()
        end = time.monotonic() + 30
        while len(failures) < 2 and time.monotonic() < end:
            time.sleep(0.01)
        assert forwarder.status().last_error is not None
        assert forwarder.status().journal.queued == 5
        central.set_faults(mode="none")
        thread.join(30)
        assert not thread.is_alive()
        status = forwarder.status()
        assert status.journal.queued == 0 and status.consecutive_failures == 0
        assert status.forwarded == 5
    assert len(failures) >= 2


def test_backoff_is_exponential_with_full_jitter() -> None:
    backoff = Backoff(base_s=0.5, cap_s=8.0)
    rng = random.Random(7)
    for failures, ceiling in ((0, 0.5), (1, 1.0), (3, 4.0), (4, 8.0), (40, 8.0)):
        delays = [backoff.delay(failures, rng) for _ in range(300)]
        assert all(0.0 <= d <= ceiling for d in delays)
        assert max(delays) > 0.8 * ceiling and min(delays) < 0.2 * ceiling


def test_stop_from_another_thread_ends_run_while_central_is_down(
        tmp_path: Path, central: CentralSim) -> None:
    central.set_faults(mode="error")
    with _journal(tmp_path, central, 3) as journal, central.make_client() as client:
        forwarder = Forwarder(journal, client, backoff=Backoff(base_s=5.0, cap_s=60.0))
        thread = threading.Thread(target=forwarder.run)
        thread.start()
        time.sleep(0.5)
        started = time.monotonic()
        forwarder.stop()
        thread.join(10)
        assert not thread.is_alive()
        assert time.monotonic() - started < 5.0
        assert forwarder.status().journal.queued == 3


def test_run_forwards_new_records_on_notify_and_prunes_past_retention(
        tmp_path: Path, central: CentralSim) -> None:
    forwarded: list[JournalRecord] = []
    with _journal(tmp_path, central, 4) as journal, central.make_client() as client:
        forwarder = Forwarder(journal, client, retention_s=0.0, prune_interval_s=0.0,
                              idle_poll_s=60.0,
                              on_forwarded=lambda r, o, _: forwarded.append(r))
        with _running(forwarder):
            _wait_for(lambda: len(forwarded) >= 4)
            journal.enqueue("card_tap", {"fare_cents": 99}, PERSON)
            forwarder.notify()
            _wait_for(lambda: len(forwarded) >= 5)

            def pruned() -> bool:
                forwarder.notify()
                return not list(journal.records())

            _wait_for(pruned)
        assert [r.seq for r in forwarded] == [1, 2, 3, 4, 5]
        assert list(journal.records()) == []           # pruned: retention 0
        assert journal.anchor()[0] == 5 and verify_journal(journal).ok
    assert len(_central_rows(central)) == 5


def test_an_answer_without_any_ack_counts_as_a_failure_and_backs_off(
        tmp_path: Path, central: CentralSim) -> None:
    class Silent:
        calls = 0

        def upload_transactions(self, batch: Sequence[TransactionUpload],
                                deadline: Deadline) -> list[TransactionAck]:
            self.calls += 1
            return []

    failures: list[SscardError] = []
    silent = Silent()
    with _journal(tmp_path, central, 2) as journal:
        forwarder = Forwarder(journal, silent, backoff=Backoff(base_s=0.05, cap_s=0.1),
                              on_failure=failures.append)
        result = forwarder.drain(Deadline.after(0.5))
    assert result.remaining == 2 and result.forwarded == 0
    assert "none of the 2" in (result.last_error or "")
    assert 2 <= silent.calls <= 40 and len(failures) == silent.calls   # backed off, no spin


def test_an_unreadable_record_stops_the_queue_with_a_journal_error_not_a_dead_thread(
        tmp_path: Path, central: CentralSim) -> None:
    # An edited (or damaged) row must reach on_failure like any journal error: a raw
    # JSONDecodeError would end Forwarder.run's thread and forwarding with it, unreported.
    journal = _tampered(tmp_path, central, 3,
                        "UPDATE records SET payload = '{broken' WHERE seq = 2")
    failures: list[SscardError] = []
    with journal, central.make_client() as client:
        forwarder = Forwarder(journal, client, backoff=Backoff(base_s=0.01, cap_s=0.02),
                              on_failure=failures.append)
        with _running(forwarder) as thread:
            _wait_for(lambda: len(failures) >= 2)
            assert thread.is_alive()
        assert not thread.is_alive()
    assert failures and all(isinstance(f, JournalTamperedError) for f in failures)
    assert "record 2" in str(failures[0]) and "sscard queue verify" in str(failures[0])
    assert _central_rows(central) == []


def test_a_forged_delivery_mark_stops_the_queue_instead_of_hiding_the_record(
        tmp_path: Path, central: CentralSim) -> None:
    # Marking a queued record acknowledged takes no key, only its MAC does. The forwarder
    # must not skip a record on a mark the journal did not make: it would never reach the
    # central, and the next prune would delete it.
    journal = _tampered(tmp_path, central, 4,
                        "UPDATE records SET acked_at = '2026-01-01T00:00:00.000Z', "
                        "ack_outcome = 'accepted' WHERE seq = 2")
    failures: list[SscardError] = []
    with journal, central.make_client() as client:
        forwarder = Forwarder(journal, client, backoff=Backoff(base_s=0.01, cap_s=0.02),
                              on_failure=failures.append)
        result = forwarder.drain(Deadline.after(0.5))
        assert result.remaining == 3 and result.forwarded == 0
        assert [p.seq for p in verify_journal(journal).problems] == [2]
    assert failures and all(isinstance(f, JournalTamperedError) for f in failures)
    assert "record 2 ack-edited" in str(failures[0])
    assert _central_rows(central) == []


def test_delivery_marks_are_checked_once_then_forwarding_goes_on(
        tmp_path: Path, central: CentralSim) -> None:
    # The forwarder's own marks and those of another process (a technician's drain),
    # with pruning in between, all pass the check.
    with _journal(tmp_path, central, 30) as journal, central.make_client() as client:
        other = Journal.open(tmp_path / "journal.db", terminal_id=central.terminal_id, keys=KEY)
        with other:
            Forwarder(other, client, batch_size=7).drain(Deadline.after(30))
            for i in range(10):
                other.enqueue("card_tap", {"fare_cents": 100 + i}, PERSON)
            other.prune(retention_s=0)
        forwarder = Forwarder(journal, client, batch_size=4)
        result = forwarder.drain(Deadline.after(30))
        assert (result.forwarded, result.remaining, result.last_error) == (10, 0, None)
        journal.enqueue("card_tap", {"fare_cents": 1}, PERSON)
        assert forwarder.drain(Deadline.after(30)).forwarded == 1
        assert verify_journal(journal).ok
    assert [seq for _, seq, _ in _central_rows(central)] == list(range(1, 42))


def test_a_storage_error_while_counting_the_queue_does_not_end_forwarding(
        tmp_path: Path, central: CentralSim, monkeypatch: pytest.MonkeyPatch) -> None:
    """``run`` counted the queue outside any guard: one failed read there (an I/O error,
    a lock held too long) ended the forwarder's thread, unreported, and nothing recorded
    after it reached the central until the daemon restarted."""
    failures: list[SscardError] = []
    forwarded: list[JournalRecord] = []
    with _journal(tmp_path, central, 3) as journal, central.make_client() as client:
        real_status = journal.status
        broken = [2]

        def status() -> JournalStatus:
            if broken[0]:
                broken[0] -= 1
                raise JournalStorageError(f"journal {journal.path}: disk I/O error")
            return real_status()

        monkeypatch.setattr(journal, "status", status)
        forwarder = Forwarder(journal, client, backoff=Backoff(base_s=0.01, cap_s=0.02),
                              idle_poll_s=60.0, on_failure=failures.append,
                              on_forwarded=lambda r, o, _: forwarded.append(r))
        with _running(forwarder) as thread:
            _wait_for(lambda: len(failures) >= 2)
            journal.enqueue("card_tap", {"fare_cents": 99}, PERSON)
            forwarder.notify()
            _wait_for(lambda: len(forwarded) >= 4)
            assert thread.is_alive()
    assert [r.seq for r in forwarded] == [1, 2, 3, 4]
    assert len(failures) == 2 and all(isinstance(f, JournalStorageError) for f in failures)
    assert len(_central_rows(central)) == 4


def test_listeners_that_fail_do_not_end_forwarding(
        tmp_path: Path, central: CentralSim, caplog: pytest.LogCaptureFixture) -> None:
    """``on_forwarded`` and ``on_failure`` are the daemon's code (a display, a counter, an
    alert): one raising came out of ``run`` and ended forwarding for good."""
    def broken(*args: object) -> None:
        raise RuntimeError("display gone")

    central.set_faults(mode="error", count=1)
    with _journal(tmp_path, central, 3) as journal, central.make_client() as client:
        forwarder = Forwarder(journal, client, backoff=Backoff(base_s=0.01, cap_s=0.02),
                              idle_poll_s=60.0, on_forwarded=broken, on_failure=broken)
        with _running(forwarder) as thread:
            _wait_for(lambda: not forwarder.status().journal.queued)
            journal.enqueue("card_tap", {"fare_cents": 99}, PERSON)
            forwarder.notify()
            _wait_for(lambda: len(_central_rows(central)) >= 4)
            assert thread.is_alive()
    assert len(_central_rows(central)) == 4
    assert any("listener failed" in r.getMessage() for r in caplog.records)
