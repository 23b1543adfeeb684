"""``python -m bench queue``: durable enqueue rate and the 100k drain to the simulator.

1. Durable enqueues per second through :class:`Journal` (WAL, ``synchronous=FULL``,
   one transaction per record, HMAC chain, AES-GCM personal fields) against a bare
   ``sqlite3`` insert loop with the same pragmas, same row size, same directory, same
   run. Goal: ratio >= 0.8. The disk's raw fsync rate is printed beside it: with FULL
   each commit costs fsyncs, so that is the physical ceiling. One trial's median moved
   by +-0.03 from run to run on the same code (a shared disk), so ``--trials`` (3)
   independent trials on fresh files are run and the median of their medians reported.
2. ``--drain N`` (default 100,000) queued transactions forwarded to the central
   simulator (a subprocess on 127.0.0.1, as the test fixture starts it). Goal: <= 60 s.

Returns the enqueue ratio.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.deadline import Deadline
from sscard_terminal.offline_queue import Forwarder, Journal

KEY = bytes(range(32))
PERSON = {"name": "张三丰", "id_number": "330302199001011234", "card_number": "D00000013"}


def _fsync_rate(directory: Path, seconds: float) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    count = 0
    try:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            os.pwrite(fd, b"x" * 4096, (count % 16) * 4096)
            os.fsync(fd)
            count += 1
    finally:
        os.close(fd)
        path.unlink()
    return count / seconds


class _Bare:
    """The baseline: a plain sqlite3 insert loop, same pragmas, similar row."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(f"PRAGMA synchronous={synchronous}")
        # Same columns and row size as the journal's records table, no chain, no crypto.
        self.conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT UNIQUE, "
                          "terminal_id TEXT, wall_time TEXT, mono_ns INTEGER, boot_id TEXT, "
                          "kind TEXT, payload TEXT, personal BLOB, prev_hash BLOB, hash BLOB)")
        self.seq = 0

    def insert(self, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            self.seq += 1
            self.conn.execute(
                "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (self.seq, f"{self.seq:036d}", "BENCH-1", "2026-11-22T22:00:00.000Z",
                 time.monotonic_ns(), "0" * 36, "card_tap", '{"fare_cents":200}',
                 os.urandom(125), os.urandom(32), os.urandom(32)))
        return time.perf_counter() - started


def _enqueue(journal: Journal, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        journal.enqueue("card_tap", {"fare_cents": 200 + i % 7}, PERSON)
    return time.perf_counter() - started


def _rates(directory: Path, count: int, synchronous: str,
           rounds: int = 20) -> tuple[float, float, float]:
    """Interleave the two loops in short rounds so that disk noise hits both alike.

    Returns (bare rate, journal rate, median of the per-round ratios): the machine's disk
    is shared, and the median of paired rounds is what survives a neighbour's burst.
    """
    tag = synchronous.lower()
    bare = _Bare(directory / f"bare-{tag}.db", synchronous)
    bare_s = ours_s = 0.0
    ratios = []
    per_round = max(1, count // rounds)
    with Journal.open(directory / f"journal-{tag}.db", terminal_id="BENCH-1", keys=KEY,
                      synchronous=synchronous) as journal:
        for _ in range(rounds):
            b = bare.insert(per_round)
            o = _enqueue(journal, per_round)
            bare_s, ours_s = bare_s + b, ours_s + o
            ratios.append(b / o)
    bare.conn.close()
    done = per_round * rounds
    return done / bare_s, done / ours_s, statistics.median(ratios)


def _drain(directory: Path, count: int, batch: int) -> float:
    sim = CentralSim(directory / "central.db")
    try:
        with Journal.open(directory / "drain.db", terminal_id=sim.terminal_id, keys=KEY,
                          synchronous="NORMAL") as journal:
            for i in range(count):   # filling is setup, not measured
                journal.enqueue("card_tap", {"fare_cents": i % 500}, PERSON)
            with sim.make_client() as client:
                started = time.perf_counter()
                result = Forwarder(journal, client, batch_size=batch).drain(
                    Deadline.after(600))
                elapsed = time.perf_counter() - started
        if result.remaining or sim.store.transaction_count(sim.terminal_id) != count:
            raise RuntimeError(f"drain incomplete: {result}")
        return elapsed
    finally:
        sim.stop()


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="python -m bench queue")
    parser.add_argument("--enqueues", type=int, default=2000, help="records per side (2000)")
    parser.add_argument("--drain", type=int, default=100_000,
                        help="transactions drained to the simulator (100000; 0 skips)")
    parser.add_argument("--batch", type=int, default=500, help="upload batch size (500)")
    parser.add_argument("--trials", type=int, default=3,
                        help="independent trials, each on fresh files (3); the ratio is "
                             "the median of their medians")
    parser.add_argument("--dir", type=Path, help="directory on the disk to measure "
                        "(default: a temporary directory)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        fsyncs = _fsync_rate(directory, 1.0)
        trials = []
        for trial in range(max(1, args.trials)):
            # Fresh files each time: one trial's WAL and checkpoints do not carry over.
            (directory / f"trial-{trial}").mkdir()
            trials.append(_rates(directory / f"trial-{trial}", args.enqueues, "FULL"))
        bare = statistics.median(t[0] for t in trials)
        ours = statistics.median(t[1] for t in trials)
        ratio = statistics.median(t[2] for t in trials)
        cpu_bare, cpu_ours, cpu_ratio = _rates(directory, args.enqueues, "NORMAL")
        print(f"disk {directory}: raw fsync {fsyncs:,.0f}/s (physical limit)")
        print(f"bare sqlite3 insert, WAL+FULL: {bare:,.0f}/s")
        print(f"Journal.enqueue,      WAL+FULL: {ours:,.0f}/s  median paired ratio "
              f"{ratio:.2f} (goal >= 0.8); trials "
              f"{', '.join(f'{t[2]:.3f}' for t in trials)}")
        print(f"mostly CPU (synchronous=NORMAL: no fsync per commit): bare "
              f"{cpu_bare:,.0f}/s, journal {cpu_ours:,.0f}/s, ratio {cpu_ratio:.2f}")
        if args.drain:
            elapsed = _drain(directory, args.drain, args.batch)
            print(f"drained {args.drain:,} to the simulator on loopback in {elapsed:.1f} s "
                  f"({args.drain / elapsed:,.0f}/s, goal <= 60 s)")
    return ratio
