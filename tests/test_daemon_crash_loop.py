"""A stream of taps on the real daemon, stopped by SIGTERM or killed with -9 at random
moments, round after round (``SSCARD_DAEMON_ROUNDS``, 50 by default; more with the flag).

Afterwards: every presentation that was shown a result (an event line) is in the journal
exactly once, no transaction is journaled twice, the hash chain verifies, and once the
daemon runs again its forwarder delivers every record to the central exactly once.
``SSCARD_DAEMON_SEED`` replays a run.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.offline_queue.journal import Journal
from sscard_terminal.offline_queue.verify import verify_journal

from .daemon_helpers import DaemonProcess, daemon_terminal, tap, wait_for

ROUNDS = int(os.environ.get("SSCARD_DAEMON_ROUNDS", "50"))
SEED = int(os.environ.get("SSCARD_DAEMON_SEED", str(time.time_ns())))
HOLDERS = ("gen2-adult", "gen1-adult", "gen3-adult", "gen3-child", "expired",
           "other-province")

pytestmark = pytest.mark.timeout(60 + 12 * ROUNDS)


@pytest.fixture
def terminal(tmp_path: Path, central_sim: CentralSim) -> Iterator[tuple[DaemonProcess, Path,
                                                                         bytes]]:
    with daemon_terminal(tmp_path, central_sim) as made:
        yield made


def test_taps_under_sigterm_and_kill_9_are_journaled_once_and_delivered_once(
        terminal: tuple[DaemonProcess, Path, bytes], central_sim: CentralSim) -> None:
    daemon, state, key = terminal
    rng = random.Random(SEED)
    kills = collections.Counter[str]()
    for round_no in range(ROUNDS):
        daemon.notices.clear()
        daemon.start()
        daemon.wait_notice("READY=1")
        taps = rng.randint(1, 3)
        for n in range(taps):
            before = len(daemon.events())
            tap(state, "front", HOLDERS[(round_no * 3 + n) % len(HOLDERS)])
            if n < taps - 1:
                wait_for(lambda before=before: len(daemon.events()) > before, timeout=10.0)
        time.sleep(rng.uniform(0.0, 0.08))          # somewhere inside the last tap
        assert daemon.process is not None
        if rng.random() < 0.5:
            kills["SIGKILL"] += 1
            daemon.process.send_signal(signal.SIGKILL)
            daemon.process.wait(10)
        else:
            kills["SIGTERM"] += 1
            daemon.process.send_signal(signal.SIGTERM)
            assert daemon.process.wait(10) == 0, f"round {round_no}, seed {SEED}"

    # One more run: the forwarder delivers whatever the killed runs left queued.
    daemon.notices.clear()
    daemon.start()
    daemon.wait_notice("READY=1")

    def journal_drained() -> bool:
        with Journal.open(state / "journal.db", terminal_id=central_sim.terminal_id,
                          keys=key) as journal:
            return journal.status().queued == 0

    wait_for(journal_drained, timeout=30.0)
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0

    shown = [e["transaction_id"] for e in daemon.events() if e.get("journaled")]
    with Journal.open(state / "journal.db", terminal_id=central_sim.terminal_id,
                      keys=key) as journal:
        report = verify_journal(journal)
        journaled = [str(r.payload.get("transaction_id")) for r in journal.records()]
    counts = collections.Counter(journaled)
    assert report.ok, f"seed {SEED}: {report.problems}"
    assert len(shown) >= ROUNDS, f"seed {SEED}: only {len(shown)} taps shown"
    wrong = {tid: counts[tid] for tid in shown if counts[tid] != 1}
    assert not wrong, f"seed {SEED}: shown but journaled other than once: {wrong}"
    twice = {tid: n for tid, n in counts.items() if n > 1}
    assert not twice, f"seed {SEED}: journaled twice: {twice}"
    assert central_sim.store.transaction_count(central_sim.terminal_id) == len(journaled), \
        f"seed {SEED}"
    assert kills["SIGKILL"] and kills["SIGTERM"], kills
