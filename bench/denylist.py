"""``python -m bench denylist``: the local denylist at provincial scale.

Builds a list of ``--entries`` cards (1,000,000; ``--entries 10000000`` for the full
figure) and prints, each measured in a fresh child process so that one part's memory
does not hide in another's:

- **install**: a snapshot streamed in 65,536-record pieces (as chunks arrive from the
  central) into an empty list: time and peak resident-memory growth (VmHWM) over the
  process before it;
- **open**: ``Denylist.open`` of the installed list (the daemon's start-up path);
- **lookups**: p50/p99 for cards on the list and cards not on it, each lookup timed
  alone, with a sibling thread busy in Python the whole time (the daemon's other
  threads); every answer is checked against the generator, so a wrong one fails the run;
- **resident memory**: VmRSS after open and the lookups, minus the same run on an empty
  list, per million entries;
- **delta**: ``--delta`` changes (10,000) applied while a probe thread looks a card up
  every 200 us; the longest any probe waited, counted from when it was due;
- **compaction**: merging the delta into a new base file in the background, and the
  longest probe wait meanwhile;
- ``--transfer``: the same list loaded into the central simulator (a subprocess) and
  installed over HTTP from its signed manifest, chunk by chunk: time and the terminal's
  peak resident growth (counted in the ratio too); then ``--delta`` changes logged at the
  central and fetched by ``refresh`` (signed records), with the probe running.

The last line is ``ratio=<resident bytes per entry / 4>``: 4 bytes an entry is the
budget (40 MB at 10 M), so the goal is ratio <= 1. The largest of the steady-state
growth and the installs' peak growths counts.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import CentralStore

from sscard_terminal.central.client import CentralClient, TerminalConfig
from sscard_terminal.central.models import (
    CardStatus,
    DenylistEntry,
    DenylistManifest,
    DenylistUpdate,
)
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Denylist
from sscard_terminal.decision.denylist_format import ref_of

PIECE = 16384
_MIX = 0x9E3779B97F4A7C15
_M64 = (1 << 64) - 1
_STATUSES = [CardStatus.FORMAL_LOSS, CardStatus.REPLACED, CardStatus.CANCELLED,
             CardStatus.SUSPENDED, CardStatus.RENEWED, CardStatus.EXPIRED,
             CardStatus.TEMPORARY_LOSS]


class Synthetic:
    """``n`` keys spread evenly over the 120-bit space, one per slot at a pseudo-random
    offset: sorted by construction, uniform like real ``card_ref`` values, and any key
    can be checked for membership by arithmetic (so absent lookups are known absent)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.slot = (1 << 120) // max(n, 1)
        until = (date.today() + timedelta(days=10)).toordinal() - date(1970, 1, 1).toordinal()
        codes = [1, 2, 3, 5, 7, 4, 6]
        self.tails = [bytes((codes[s],)) + (until if s == 0 else 0).to_bytes(4, "big")
                      for s in range(len(codes))]

    def key(self, i: int) -> bytes:
        return (i * self.slot + ((i * _MIX) & _M64) % self.slot).to_bytes(15, "big")

    def present(self, key: bytes) -> bool:
        number = int.from_bytes(key, "big")
        i, offset = divmod(number, self.slot)
        return i < self.n and offset == ((i * _MIX) & _M64) % self.slot

    def pieces(self) -> Iterator[bytes]:
        slot, tails, n = self.slot, self.tails, self.n
        for start in range(0, n, PIECE):
            # One buffer a piece, as a chunk arrives from the network (a join over a
            # generator would first build a list of 65,536 small objects).
            piece = bytearray()
            for i in range(start, min(start + PIECE, n)):
                piece += (i * slot + ((i * _MIX) & _M64) % slot).to_bytes(15, "big")
                piece += tails[i % 7]
            yield bytes(piece)


def _status_kb(*fields: str) -> dict[str, int]:
    out = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in fields:
                out[name] = int(value.split()[0])
    return out


class _Busy:
    """A sibling thread busy in Python (the daemon's other work)."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        data = {"fare": 200, "stops": list(range(50))}
        while not self.stop.is_set():
            json.dumps(data)

    def __enter__(self) -> _Busy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


class _Probe:
    """Looks a card up every ``interval`` s; the longest wait from when it was due."""

    def __init__(self, denylist: Denylist, refs: list[str], interval: float = 0.0002) -> None:
        self.denylist, self.refs, self.interval = denylist, refs, interval
        self.stop = threading.Event()
        self.worst = 0.0
        self.waits: list[float] = []
        self.count = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        due = time.perf_counter()
        refs = self.refs
        while not self.stop.is_set():
            due += self.interval
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            else:
                due = time.perf_counter()
            self.denylist.lookup(refs[self.count % len(refs)])
            self.waits.append(time.perf_counter() - due)
            self.worst = max(self.worst, self.waits[-1])
            self.count += 1

    def __enter__(self) -> _Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# --- child processes ---------------------------------------------------------------------


def _child_install(path: Path, n: int) -> dict[str, Any]:
    synthetic = Synthetic(n)
    with Denylist.open(path) as denylist:
        before = _status_kb("VmRSS")["VmRSS"]
        started = time.perf_counter()
        denylist.install_snapshot(1, synthetic.pieces(), n)
        seconds = time.perf_counter() - started
        peak = _status_kb("VmHWM")["VmHWM"]
    return {"seconds": seconds, "peak_growth_kb": peak - before,
            "file_bytes": sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))}


def _lookups(denylist: Denylist, synthetic: Synthetic, count: int, seed: int
             ) -> dict[str, Any]:
    rng = random.Random(seed)
    present = [ref_of(synthetic.key(rng.randrange(synthetic.n))) for _ in range(count)] \
        if synthetic.n else []
    absent_keys = [rng.randbytes(15) for _ in range(count)]
    absent = [ref_of(k) for k in absent_keys if not synthetic.present(k)]
    times_present, times_absent = [], []
    clock = time.perf_counter
    with _Busy():
        for ref in present:
            t0 = clock()
            hit = denylist.lookup(ref)
            times_present.append(clock() - t0)
            if hit is None:
                raise SystemExit(f"bench: a listed card was not found ({ref[:6]}...)")
        for ref in absent:
            t0 = clock()
            hit = denylist.lookup(ref)
            times_absent.append(clock() - t0)
            if hit is not None:
                raise SystemExit("bench: a card not on the list was refused")
    out: dict[str, Any] = {"absent_p50": _pct(times_absent, 0.5),
                           "absent_p99": _pct(times_absent, 0.99)}
    if times_present:
        out.update(present_p50=_pct(times_present, 0.5), present_p99=_pct(times_present, 0.99))
    return out


def _child_use(path: Path, n: int, lookups: int, delta: int) -> dict[str, Any]:
    synthetic = Synthetic(n)
    base_rss = _status_kb("VmRSS")["VmRSS"]
    started = time.perf_counter()
    denylist = Denylist.open(path)
    out: dict[str, Any] = {"open_s": time.perf_counter() - started}
    out.update(_lookups(denylist, synthetic, lookups, seed=1))
    status = _status_kb("VmRSS", "RssAnon", "RssFile")
    out["rss_kb"] = status["VmRSS"] - base_rss
    out["rss_anon_kb"], out["rss_file_kb"] = status["RssAnon"], status["RssFile"]
    if delta and n:
        out.update(_delta(denylist, synthetic, delta))
    denylist.close()
    return out


def _delta(denylist: Denylist, synthetic: Synthetic, changes: int) -> dict[str, Any]:
    rng = random.Random(7)
    picks = rng.sample(range(synthetic.n), min(synthetic.n, changes // 2))
    removed = tuple(ref_of(synthetic.key(i)) for i in picks[:len(picks) * 3 // 5])
    changed = [DenylistEntry(ref_of(synthetic.key(i)), CardStatus.SUSPENDED)
               for i in picks[len(picks) * 3 // 5:]]
    added = [DenylistEntry(ref_of(rng.randbytes(15)), rng.choice(_STATUSES),
                           (date.today() + timedelta(days=15)).isoformat())
             for _ in range(changes - len(picks))]
    update = DenylistUpdate(version=2, since_version=1, full=False,
                            added=tuple(changed + added), removed=removed)
    refs = [ref_of(synthetic.key(i)) for i in rng.sample(range(synthetic.n), 500)]
    refs += [ref_of(rng.randbytes(15)) for _ in range(500)]
    with _Probe(denylist, refs) as quiet:
        time.sleep(0.5)
    with _Probe(denylist, refs) as probe:
        time.sleep(0.05)
        started = time.perf_counter()
        denylist.install(update)
        apply_s = time.perf_counter() - started
        time.sleep(0.05)
    for entry in added[:200] + changed[:200]:
        hit = denylist.lookup(entry.card_ref)
        if hit is None or hit.status is not entry.status:
            raise SystemExit("bench: a card the delta added is not refused as it says")
    if any(denylist.lookup(ref) is not None for ref in removed[:200]):
        raise SystemExit("bench: a card the delta removed is still refused")
    with _Probe(denylist, refs) as during:
        started = time.perf_counter()
        denylist.compact()
        compact_s = time.perf_counter() - started
    if any(denylist.lookup(ref) is not None for ref in removed[:200]) or any(
            denylist.lookup(e.card_ref) is None for e in added[:200]):
        raise SystemExit("bench: compaction changed what the list says")
    return {"delta_s": apply_s, "delta_worst_wait": probe.worst, "delta_probes": probe.count,
            "delta_p99_wait": _pct(probe.waits, 0.99),
            "quiet_worst_wait": quiet.worst, "quiet_p99_wait": _pct(quiet.waits, 0.99),
            "compact_s": compact_s, "compact_worst_wait": during.worst,
            "compact_p99_wait": _pct(during.waits, 0.99)}


def _child_transfer(path: Path, n: int, config: str, central_db: str, changes: int
                    ) -> dict[str, Any]:
    """Install the simulator's list over HTTP (a signed manifest, then chunk by chunk),
    then a delta of ``changes`` through ``refresh`` with a probe looking cards up."""
    synthetic = Synthetic(n)
    with CentralClient.from_config(TerminalConfig(**json.loads(config))) as client, \
            Denylist.open(path) as denylist:
        started = time.perf_counter()
        manifest = client.denylist_update(0, Deadline.after(3600))   # the central builds it
        built = time.perf_counter() - started
        assert isinstance(manifest, DenylistManifest)
        before = _status_kb("VmRSS")["VmRSS"]
        started = time.perf_counter()
        denylist.refresh(client, deadline=Deadline.after(3600))
        seconds = time.perf_counter() - started
        peak = _status_kb("VmHWM")["VmHWM"]
        rng = random.Random(3)
        for _ in range(2000):
            if denylist.lookup(ref_of(synthetic.key(rng.randrange(n)))) is None:
                raise SystemExit("bench: a listed card did not arrive")
        result = {"seconds": seconds, "build_s": built, "chunks": len(manifest.chunks),
                  "entries": denylist.state().entries, "peak_growth_kb": peak - before}
        if changes:
            result.update(_refresh_delta(denylist, client, synthetic, central_db, changes))
        return result


def _refresh_delta(denylist: Denylist, client: CentralClient, synthetic: Synthetic,
                   central_db: str, changes: int) -> dict[str, Any]:
    """The central logs ``changes`` changes; the terminal refreshes while probed."""
    rng = random.Random(4)
    removed = [ref_of(synthetic.key(i))
               for i in rng.sample(range(synthetic.n), min(synthetic.n, changes * 2 // 5))]
    added = [ref_of(rng.randbytes(15)) for _ in range(changes - len(removed))]
    store = CentralStore.open(central_db)
    with store.atomic() as conn:
        for ref in added:
            store.log_denylist(conn, ref, "add", CardStatus.SUSPENDED, None, date.today())
        for ref in removed:
            store.log_denylist(conn, ref, "remove", None, None, date.today())
    store.close()
    refs = [ref_of(synthetic.key(i)) for i in rng.sample(range(synthetic.n), 500)]
    with _Probe(denylist, refs) as probe:
        time.sleep(0.05)
        started = time.perf_counter()
        denylist.refresh(client, deadline=Deadline.after(600))
        refresh_s = time.perf_counter() - started
        time.sleep(0.05)
    if denylist.lookup(added[0]) is None or denylist.lookup(removed[0]) is not None:
        raise SystemExit("bench: the delta from the central did not apply")
    return {"refresh_s": refresh_s, "refresh_worst_wait": probe.worst,
            "refresh_p99_wait": _pct(probe.waits, 0.99)}


def _transfer(tmp: Path, n: int, changes: int) -> dict[str, Any]:
    sim = CentralSim(tmp / "central.db")
    try:
        started = time.perf_counter()
        sim.store.add_denylist_bulk(Synthetic(n).pieces(), date.today())
        loaded = time.perf_counter() - started
        config = json.dumps({"base_url": sim.base_url, "terminal_id": sim.terminal_id,
                             "secret": sim.secret,
                             "central_public_key": sim.central_public_key})
        result = _run_child("transfer", tmp / "transferred.db", n, config,
                            tmp / "central.db", changes)
        result["load_s"] = loaded
        return result
    finally:
        sim.stop()


def _child(argv: list[str]) -> None:
    kind, path, n = argv[0], Path(argv[1]), int(argv[2])
    if kind == "install":
        result = _child_install(path, n)
    elif kind == "transfer":
        result = _child_transfer(path, n, argv[3], argv[4], int(argv[5]))
    else:
        result = _child_use(path, n, int(argv[3]), int(argv[4]))
    print(json.dumps(result))


def _run_child(*args: object) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.denylist", "--child",
                          *map(str, args)], check=True, capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


# --- main --------------------------------------------------------------------------------


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="python -m bench denylist")
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=20_000,
                        help="present and absent lookups each (20,000)")
    parser.add_argument("--delta", type=int, default=10_000, help="changes in the delta")
    parser.add_argument("--dir", type=Path, help="where the files go (a temporary directory)")
    parser.add_argument("--transfer", action="store_true",
                        help="also serve the list from the central simulator and install it "
                             "over HTTP (signed manifest, chunk by chunk)")
    args = parser.parse_args(argv)
    n = args.entries
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench-denylist-") as tmp:
        full, empty = Path(tmp) / "full.db", Path(tmp) / "empty.db"
        Denylist.open(empty).close()
        install = _run_child("install", full, n)
        use = _run_child("use", full, n, args.lookups, args.delta)
        idle = _run_child("use", empty, 0, args.lookups, 0)
        transfer = _transfer(Path(tmp), n, args.delta) if args.transfer else None
    ms, us, mb = 1000.0, 1e6, 1 / 1024
    print(f"install of {n:,} entries: {install['seconds']:.1f} s, peak resident growth "
          f"{install['peak_growth_kb'] * mb:.1f} MB, files {install['file_bytes'] / 1e6:.0f} MB")
    print(f"open: {use['open_s'] * ms:.1f} ms (goal <= 500 ms)")
    print(f"lookup, card on the list:     p50 {use['present_p50'] * us:.1f} us, "
          f"p99 {use['present_p99'] * us:.1f} us (goal <= 1000 us)")
    print(f"lookup, card not on the list: p50 {use['absent_p50'] * us:.1f} us, "
          f"p99 {use['absent_p99'] * us:.1f} us (goal <= 50 us)  "
          "[a sibling thread busy in Python throughout]")
    growth = use["rss_kb"] - idle["rss_kb"]
    print(f"resident memory over an empty list: {growth * mb:.1f} MB "
          f"= {growth * mb / max(n / 1e6, 1e-6):.2f} MB per million entries "
          f"(process: anon {use['rss_anon_kb'] * mb:.1f} MB, "
          f"file-backed {use['rss_file_kb'] * mb:.1f} MB)")
    if args.delta:
        print(f"delta of {args.delta:,} changes: {use['delta_s'] * ms:.0f} ms (goal <= 1000 ms); "
              f"longest lookup wait during it {use['delta_worst_wait'] * ms:.2f} ms "
              f"(p99 {use['delta_p99_wait'] * ms:.2f} ms) over {use['delta_probes']} probes, "
              "goal <= 5 ms")
        print(f"  the same probe with nothing installing: longest "
              f"{use['quiet_worst_wait'] * ms:.2f} ms, p99 {use['quiet_p99_wait'] * ms:.2f} ms "
              "(the machine's own scheduling noise)")
        print(f"compaction into a new base file: {use['compact_s']:.1f} s; longest lookup wait "
              f"during it {use['compact_worst_wait'] * ms:.2f} ms "
              f"(p99 {use['compact_p99_wait'] * ms:.2f} ms)")
    worst_kb = max(growth, install["peak_growth_kb"])
    if transfer is not None:
        print(f"transfer from the central simulator over HTTP: {transfer['entries']:,} entries "
              f"in {transfer['chunks']} chunks, {transfer['seconds']:.1f} s, peak resident "
              f"growth {transfer['peak_growth_kb'] * mb:.1f} MB (the simulator: bulk load "
              f"{transfer['load_s']:.0f} s, building its snapshot {transfer['build_s']:.1f} s)")
        worst_kb = max(worst_kb, transfer["peak_growth_kb"])
        if "refresh_s" in transfer:
            print(f"refresh of a {args.delta:,}-change delta from the simulator (signed records): "
                  f"{transfer['refresh_s'] * ms:.0f} ms; longest lookup wait during it "
                  f"{transfer['refresh_worst_wait'] * ms:.2f} ms "
                  f"(p99 {transfer['refresh_p99_wait'] * ms:.2f} ms)")
    return worst_kb * 1024 / max(n, 1) / 4


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2:])
    else:
        print(f"ratio={main(sys.argv[1:]):.4f}")
