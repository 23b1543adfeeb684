"""The proof: SIGKILL the writer and the forwarder at random, cut power, and nothing is lost.

Every enqueue that returned success (the writer prints the id only after ``enqueue``
returned) must end up at the central simulator exactly once; nothing may be marked
acknowledged that the central did not store; the chain must verify.

``SSCARD_CRASH_ITERATIONS`` (default 10) sets the number of kill rounds,
``SSCARD_POWER_CUTS`` (default 40) the number of simulated power cuts.
"""

from __future__ import annotations

import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.deadline import Deadline
from sscard_terminal.offline_queue import AckOutcome, Forwarder, Journal, verify_journal

KEY = bytes(range(32))
ROOT = Path(__file__).resolve().parent.parent
ITERATIONS = int(os.environ.get("SSCARD_CRASH_ITERATIONS", "10"))
POWER_CUTS = int(os.environ.get("SSCARD_POWER_CUTS", "40"))
# pytest-timeout's 300 s fits the defaults; a soak run with more rounds gets room in step.
KILL_TIMEOUT_S = max(300, 10 * ITERATIONS)
POWER_CUT_TIMEOUT_S = max(300, 3 * POWER_CUTS)


@pytest.fixture
def central(central_sim: CentralSim) -> CentralSim:
    """The shared fixture: ``sscard central-sim serve`` as a subprocess on 127.0.0.1."""
    return central_sim


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.journal_workers", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _kill_and_collect(process: subprocess.Popen[bytes], after_s: float) -> list[str]:
    """Let ``process`` run for ``after_s``, SIGKILL it, return its complete stdout lines."""
    assert process.stdout is not None
    buffer = b""
    end = time.monotonic() + after_s
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([process.stdout], [], [], left)
        if ready:
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    buffer += process.stdout.read()
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    process.stdout.close()
    process.stderr.close()
    assert "Traceback" not in errors, errors
    # A line cut off by the kill was not reported: only complete lines count.
    return buffer.decode().split("\n")[:-1]


def _central_keys(sim: CentralSim) -> dict[str, int]:
    conn = sqlite3.connect(sim.db)
    try:
        return {r[0]: int(r[1]) for r in conn.execute(
            "SELECT idempotency_key, sequence FROM transactions WHERE terminal_id=?",
            (sim.terminal_id,))}
    finally:
        conn.close()


@pytest.mark.timeout(KILL_TIMEOUT_S)
def test_sigkill_of_writer_and_forwarder_loses_nothing_and_duplicates_nothing(
        tmp_path: Path, central: CentralSim) -> None:
    rng = random.Random(int(os.environ.get("SSCARD_CRASH_SEED", str(time.time_ns()))))
    db = tmp_path / "journal.db"
    Journal.open(db, terminal_id=central.terminal_id, keys=KEY).close()
    central.set_faults(latency_ms=5)    # uploads take long enough to be killed mid-flight
    reported: list[str] = []
    for _ in range(ITERATIONS):
        writer = _spawn("writer", str(db), KEY.hex(), central.terminal_id, "100000")
        forwarder = _spawn("forwarder", str(db), KEY.hex(), central.terminal_id,
                           central.base_url, central.secret, str(rng.choice((1, 7, 50))))
        forwarder_kill = rng.uniform(0.3, 1.2)
        reported += _kill_and_collect(writer, rng.uniform(0.3, 1.2))
        _kill_and_collect(forwarder, max(0.0, forwarder_kill - 0.3))
    assert len(reported) > ITERATIONS, "the writer never got to enqueue"

    with Journal.open(db, terminal_id=central.terminal_id, keys=KEY) as journal, \
            central.make_client() as client:
        acked_before = {r.id for r in journal.records() if r.ack_outcome is not None}
        at_central_before = _central_keys(central)
        # The killed forwarders did forward; nothing is acknowledged that the central lacks.
        assert acked_before, "no forwarder got anything acknowledged before being killed"
        assert acked_before <= set(at_central_before)
        result = Forwarder(journal, client, batch_size=500).drain(Deadline.after(120))
        assert result.remaining == 0 and result.rejected == 0
        records = list(journal.records())
        report = verify_journal(journal)
    assert report.ok, report.problems
    at_central = _central_keys(central)
    journal_ids = {r.id: r.seq for r in records}
    # Every enqueue that returned is at the central, once, with its own sequence number.
    assert set(reported) <= set(at_central)
    assert at_central == journal_ids
    assert len(reported) == len(set(reported))
    assert all(r.ack_outcome in (AckOutcome.ACCEPTED, AckOutcome.DUPLICATE) for r in records)
    # Records that committed but were not yet reported when the writer died: at most one
    # per kill.
    assert len(journal_ids) - len(reported) <= ITERATIONS


def _wal_frames(wal: bytes) -> int:
    page_size = int.from_bytes(wal[8:12], "big")
    return (len(wal) - 32) // (24 + page_size)


@pytest.mark.timeout(POWER_CUT_TIMEOUT_S)
def test_power_cut_mid_commit_recovers_every_returned_record(tmp_path: Path) -> None:
    """Simulate losing the page cache: cut the WAL at the point of a commit in flight.

    With ``synchronous=FULL`` everything up to the last returned commit was fsynced; the
    transaction in flight may be partly on disk (whole frames, a torn frame, garbage).
    The copy must open, verify, and hold exactly the records whose enqueue returned.
    """
    rng = random.Random(int(os.environ.get("SSCARD_CRASH_SEED", str(time.time_ns()))))
    live = tmp_path / "live" / "journal.db"
    live.parent.mkdir()
    returned: list[str] = []
    wal_sizes: list[int] = []
    with Journal.open(live, terminal_id="BUS-7", keys=KEY) as journal:
        journal._conn.execute("PRAGMA wal_autocheckpoint=0")   # keep every frame in the WAL
        main_file = live.read_bytes()
        wal_sizes.append(Path(f"{live}-wal").stat().st_size if Path(f"{live}-wal").exists()
                         else 0)
        for i in range(60):
            record = journal.enqueue("card_tap", {"fare_cents": i, "pad": "x" * rng.randrange(
                0, 6000)}, {"name": "赵六", "card_number": f"D{i:08d}"})
            returned.append(record.id)
            wal_sizes.append(Path(f"{live}-wal").stat().st_size)
        wal = Path(f"{live}-wal").read_bytes()
        assert live.read_bytes() == main_file   # nothing checkpointed: the WAL holds it all
    assert _wal_frames(wal) > 60
    for cut_number in range(POWER_CUTS):
        k = rng.randrange(0, 60)          # records 1..k returned, record k+1 in flight
        start, stop = wal_sizes[k], wal_sizes[k + 1]
        cut = rng.randrange(start, stop)
        tail = bytearray(wal[:cut])
        if rng.random() < 0.5 and cut > start:
            # A torn sector: the in-flight part holds garbage after some point.
            torn = rng.randrange(start, cut)
            tail[torn:cut] = os.urandom(cut - torn)
        copy = tmp_path / f"cut{cut_number}" / "journal.db"
        copy.parent.mkdir()
        copy.write_bytes(main_file)
        Path(f"{copy}-wal").write_bytes(bytes(tail))
        with Journal.open(copy, terminal_id="BUS-7", keys=KEY) as recovered:
            report = verify_journal(recovered)
            ids = [r.id for r in recovered.records()]
            assert report.ok, (cut_number, report.problems)
            assert ids == returned[:k], (cut_number, k, len(ids))
            # ... and it keeps working: the next record continues the chain.
            assert recovered.enqueue("card_tap", {}, None).seq == k + 1
            assert verify_journal(recovered).ok
        shutil.rmtree(copy.parent)
