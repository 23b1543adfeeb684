"""SIGKILL the denylist while it installs a snapshot, applies deltas and compacts, or
upgrades a schema-1 file: the list that opens afterwards is the old one or the new one,
whole, never a mix, and no half-written file is left behind.

``SSCARD_DENYLIST_KILLS`` (default 6) sets the kill rounds of each test.
"""

from __future__ import annotations

import datetime as dt
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

import httpx
import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.central.models import CardStatus, DenylistManifest
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Denylist
from sscard_terminal.decision.denylist_format import record, ref_of

from .denylist_workers import delta_history, snapshot_keys, snapshot_pieces

ROOT = Path(__file__).resolve().parent.parent
KILLS = int(os.environ.get("SSCARD_DENYLIST_KILLS", "6"))
SNAPSHOT_ENTRIES = 200_000
CHUNK = 1024


def _spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "tests.denylist_workers", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _lines_until(process: subprocess.Popen[bytes], *, wanted: str | None, after_s: float,
                 timeout_s: float = 60.0) -> list[str]:
    """Read lines until ``wanted`` appears (then go on for ``after_s``), SIGKILL, return
    the complete lines the process printed."""
    assert process.stdout is not None
    buffer = b""
    deadline = time.monotonic() + timeout_s
    kill_at: float | None = None if wanted else time.monotonic() + after_s
    while True:
        now = time.monotonic()
        if kill_at is not None and now >= kill_at:
            break
        assert now < deadline, f"worker never printed {wanted!r}: {buffer[-200:]!r}"
        ready, _, _ = select.select([process.stdout], [], [],
                                    0.05 if kill_at is None else max(kill_at - now, 0))
        if ready:
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            buffer += chunk
            if kill_at is None and wanted is not None and (wanted + "\n").encode() in buffer:
                kill_at = time.monotonic() + after_s
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert process.stderr is not None
    errors = process.stderr.read().decode(errors="replace")
    process.stdout.close()
    process.stderr.close()
    assert "Traceback" not in errors, errors
    return buffer.decode().split("\n")[:-1]


def _no_leftovers(directory: Path) -> None:
    names = sorted(p.name for p in directory.iterdir())
    assert not [n for n in names if n.endswith(".tmp") or ".download-" in n], names
    assert len([n for n in names if ".base-" in n]) == 1, names


def _timed_install(directory: Path) -> float:
    path = directory / "calibrate.db"
    pieces, count = snapshot_pieces(2, SNAPSHOT_ENTRIES)
    with Denylist.open(path) as denylist:
        started = time.perf_counter()
        denylist.install_snapshot(2, pieces, count)
        took = time.perf_counter() - started
    for p in directory.iterdir():
        p.unlink()
    return took


def test_kill_during_a_snapshot_install_leaves_the_old_list_or_the_new(tmp_path: Path) -> None:
    old = snapshot_keys(1, 2000)
    new = snapshot_keys(2, SNAPSHOT_ENTRIES)
    new_sample = random.Random(0).sample(new, 2000)
    work = tmp_path / "work"
    work.mkdir()
    install_s = _timed_install(work)
    outcomes = []
    for round_ in range(KILLS):
        for p in work.iterdir():
            p.unlink()
        path = work / "denylist.db"
        pieces, count = snapshot_pieces(1, 2000)
        with Denylist.open(path) as denylist:
            denylist.install_snapshot(1, pieces, count)
        # Spread over the install and a little past it; the last round waits for "done".
        last = round_ == KILLS - 1
        lines = _lines_until(_spawn("snapshot", str(path), "2", str(SNAPSHOT_ENTRIES)),
                             wanted="done" if last else "ready",
                             after_s=0.0 if last else install_s * 1.2 * round_ / max(KILLS - 1, 1))
        with Denylist.open(path) as denylist:
            version = denylist.version
            outcomes.append(version)
            if "done" in lines:
                assert version == 2, "the install returned, so it must have been committed"
            assert version in (1, 2)
            listed, gone = (old, new_sample) if version == 1 else (new_sample, old)
            assert denylist.state().entries == (len(old) if version == 1 else len(new))
            assert all(denylist.lookup(ref_of(k)) is not None for k in listed)
            assert all(denylist.lookup(ref_of(k)) is None for k in gone)
        _no_leftovers(work)
    assert outcomes[0] == 1 and outcomes[-1] == 2, outcomes


def test_kill_during_deltas_and_compactions_leaves_a_whole_version(tmp_path: Path) -> None:
    path = tmp_path / "denylist.db"
    pieces, count = snapshot_pieces(1, 20_000)
    with Denylist.open(path) as denylist:
        denylist.install_snapshot(1, pieces, count)
    rng = random.Random(1)
    for _ in range(KILLS):
        lines = _lines_until(_spawn("deltas", str(path)), wanted="ready",
                             after_s=rng.uniform(0.05, 1.0))
        reported = [int(line.split()[1]) for line in lines if line.startswith("installed ")]
        with Denylist.open(path) as denylist:
            version = denylist.version
            floor = reported[-1] if reported else 1
            assert floor <= version <= floor + 1, (reported[-3:], version)
            # Every card any version up to the next one listed: those listed now must be
            # refused as now, all others (removed before, or added only next) not.
            model, touched = delta_history(version)
            assert denylist.state().entries == len(model)
            for ref in touched:
                hit = denylist.lookup(ref)
                assert (hit.status if hit else None) is model.get(ref), (version, ref)
        _no_leftovers(tmp_path)


def _schema_1(path: Path, rows: int) -> dict[str, str]:
    rng = random.Random(3)
    entries = {ref_of(rng.randbytes(15)): "formal_loss" for _ in range(rows)}
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA application_id = 1397965892")
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE entries (card_ref TEXT PRIMARY KEY, status TEXT NOT NULL, "
                   "until TEXT) WITHOUT ROWID")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("schema_version", "1"), ("version", "9"),
            ("installed_at", "2026-11-20T08:00:00+00:00")])
        db.executemany("INSERT INTO entries VALUES (?, ?, NULL)", entries.items())
    return entries


def test_kill_during_the_schema_1_upgrade_leaves_the_list_whole(tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    entries = _schema_1(prepared / "denylist.db", 100_000)
    sample = random.Random(4).sample(sorted(entries), 2000)
    started = time.perf_counter()
    with Denylist.open(shutil.copytree(prepared, tmp_path / "timing") / "denylist.db"):
        upgrade_s = time.perf_counter() - started
    for round_ in range(max(3, KILLS // 2)):
        work = tmp_path / f"round{round_}"
        shutil.copytree(prepared, work)
        path = work / "denylist.db"
        lines = _lines_until(_spawn("open", str(path)), wanted=None,
                             after_s=0.25 + upgrade_s * 1.5 * round_ / max(KILLS // 2, 2))
        with sqlite3.connect(path) as db:
            schema = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if "opened" in lines:
            assert schema[0] == "2"
        with Denylist.open(path) as denylist:
            assert denylist.version == 9
            assert denylist.state().entries == len(entries)
            for ref in sample:
                hit = denylist.lookup(ref)
                assert hit is not None and hit.status is CardStatus.FORMAL_LOSS
        _no_leftovers(work)


def test_kill_during_a_chunked_download_then_resume(central_sim: CentralSim,
                                                     tmp_path: Path) -> None:
    """SIGKILL while chunks arrive over HTTP: the list that opens is the old one (or,
    after the switch, the new one); the next refresh resumes from what is on disk and
    ends with the central's whole list."""
    keys = snapshot_keys(3, 300_000)
    records = b"".join(record(k, CardStatus.FORMAL_LOSS, 0) for k in keys)
    central_sim.store.set_denylist_chunk_records(CHUNK)
    central_sim.store.add_denylist_bulk([records], dt.date.today())
    sample = random.Random(5).sample(keys, 1000)
    args = (central_sim.base_url, central_sim.terminal_id, central_sim.secret,
            central_sim.central_public_key)
    with central_sim.make_client() as client, \
            Denylist.open(tmp_path / "calibrate.db") as calibrate:
        client.denylist_update(0, Deadline.after(60))          # the simulator builds it
        started = time.perf_counter()
        calibrate.refresh(client, deadline=Deadline.after(60))
        download_s = time.perf_counter() - started
    rounds = max(2, KILLS // 2)
    for round_ in range(rounds):
        work = tmp_path / f"round{round_}"
        work.mkdir()
        path = work / "denylist.db"
        lines = _lines_until(_spawn("refresh", str(path), *args), wanted="ready",
                             after_s=download_s * (round_ + 0.5) / rounds)
        downloads = [p for p in work.iterdir() if ".download-" in p.name]
        on_disk = 0
        if downloads:
            on_disk = (downloads[0].stat().st_size - 4096) // (20 * CHUNK)   # whole chunks
        counter = _CountChunks()
        with Denylist.open(path) as denylist:
            if "done" in lines:
                assert denylist.state().entries >= len(keys)
            else:
                assert denylist.version == 0 or denylist.state().entries >= len(keys)
            before = denylist.version
            with central_sim.make_client(transport=counter) as client:
                manifest = client.denylist_update(0, Deadline.after(30))
                assert isinstance(manifest, DenylistManifest)
                denylist.refresh(client, deadline=Deadline.after(60))
            assert denylist.state().entries == manifest.entries
            assert all(denylist.lookup(ref_of(k)) is not None for k in sample)
            if before == 0:       # the kill came before the switch: resumed from the disk
                assert counter.chunks == len(manifest.chunks) - on_disk, (on_disk, counter.chunks)
        _no_leftovers(work)


class _CountChunks(httpx.HTTPTransport):
    def __init__(self) -> None:
        super().__init__()
        self.chunks = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.chunks += request.url.path.endswith("/v1/denylist/chunk")
        return super().handle_request(request)


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
