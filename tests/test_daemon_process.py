"""The real ``sscard-terminald`` process, end to end, on ``sim:`` readers.

Everything is real: the daemon process started from its console script with a
configuration file, the central simulator over HTTP on loopback, the journal, engine-state
and denylist SQLite files in the state directory, the systemd notify datagrams (to a
socket the test owns), ``kill -9`` and SIGTERM. A tap is a file in the ``sim:`` readers'
control directory naming the virtual card's holder; the decision is read from the daemon's
event output (one JSON line per presentation on stderr) and from the journal itself.
"""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_ecodes import issue_code
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS
from sscard_hardware_sim.virtual_scanner import VirtualScanner

from sscard_terminal.offline_queue.journal import Journal

from .daemon_helpers import (
    DaemonProcess,
    daemon_terminal,
    drain,
    journaled,
    take_away,
    tap,
    wait_for,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def terminal(tmp_path: Path, central_sim: CentralSim) -> Iterator[tuple[DaemonProcess, Path,
                                                                         bytes]]:
    with daemon_terminal(tmp_path, central_sim) as made:
        yield made


def test_a_tap_is_journaled_and_after_kill_9_the_retap_meets_anti_passback(
        terminal: tuple[DaemonProcess, Path, bytes], central_sim: CentralSim) -> None:
    daemon, state, key = terminal
    daemon.start()
    notices = daemon.wait_notice("READY=1")
    assert any(n.startswith("STATUS=1 lane(s)") for n in notices)

    tap(state, "front", "gen2-adult")
    (first,) = daemon.wait_events(1)
    assert (first["lane"], first["outcome"], first["online"]) == ("front", "accept", True)
    assert first["journaled"] is True
    records = journaled(state, central_sim.terminal_id, key)
    assert [r["transaction_id"] for r in records] == [first["transaction_id"]]
    assert records[0]["outcome"] == "accept"
    # The forwarder, woken by the journaled tap, delivers it to the central.
    wait_for(lambda: central_sim.store.transaction_count(central_sim.terminal_id) == 1)
    daemon.wait_notice("WATCHDOG=1", timeout=5.0)       # the loop's health check pings

    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGKILL)          # no goodbye, no flush
    daemon.process.wait(10)
    take_away(state, "front")
    daemon.notices.clear()
    daemon.start()
    daemon.wait_notice("READY=1")

    tap(state, "front", "gen2-adult")                   # the same card, seconds later
    events = daemon.wait_events(2)
    again = events[1]
    assert (again["outcome"], again["reason"]) == ("refuse", "anti_passback")
    assert again["journaled"] is True
    assert [r["reason"] for r in journaled(state, central_sim.terminal_id, key)] == [
        "accepted", "anti_passback"]
    # Each record reaches the central once, across the kill -9.
    wait_for(lambda: central_sim.store.transaction_count(central_sim.terminal_id) == 2)

    def drained() -> bool:      # the central has both; the acknowledgement follows
        with Journal.open(state / "journal.db", terminal_id=central_sim.terminal_id,
                          keys=key) as journal:
            return journal.status().queued == 0

    wait_for(drained)

    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0
    assert "STOPPING=1" in drain(daemon.notify)


def test_a_config_it_cannot_honour_is_refused_before_ready(
        terminal: tuple[DaemonProcess, Path, bytes], tmp_path: Path) -> None:
    daemon, _state, _key = terminal
    other = tmp_path / "other.key"
    other.write_bytes(secrets.token_bytes(32))
    other.chmod(0o600)
    daemon.start()
    daemon.wait_notice("READY=1")
    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0
    # The journal now exists under the first key; the same journal under another key is
    # a configuration a technician must fix: exit 17, and no READY.
    daemon.config.write_text(daemon.config.read_text().replace(str(tmp_path / "journal.key"),
                                                               str(other)))
    daemon.notices.clear()
    daemon.start()
    assert daemon.process.wait(30) == 17
    assert "READY=1" not in drain(daemon.notify)
    last = daemon.log.read_text().strip().splitlines()[-1]
    assert "journal" in last and str(daemon.config) in last


def test_a_scanned_e_code_is_decided_and_its_replay_refused_after_kill_9(
        tmp_path: Path, central_sim: CentralSim) -> None:
    link = tmp_path / "by-id" / "usb-Virtual_Scanner_0001-if00"
    lanes = f'\n[lanes.qr]\nscanner = "{link}"\n'
    with daemon_terminal(tmp_path, central_sim, more_lanes=lanes) as (daemon, state, key), \
            VirtualScanner(link) as scanner:
        code = issue_code(central_sim.store, DEMO_CARDS["normal"].card_number)
        daemon.start()
        daemon.wait_notice("READY=1")
        scanner.scan(code)
        (first,) = daemon.wait_events(1)
        assert (first["lane"], first["channel"], first["outcome"]) == ("qr", "ecode", "accept")
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGKILL)
        daemon.process.wait(10)
        daemon.notices.clear()
        daemon.start()
        daemon.wait_notice("READY=1")
        scanner.scan(code)                        # the same code, shown again
        second = daemon.wait_events(2)[1]
        assert (second["lane"], second["outcome"], second["ecode_reason"]) == (
            "qr", "refuse", "replayed")
        records = journaled(state, central_sim.terminal_id, key)
        assert [r["transaction_id"] for r in records] == [first["transaction_id"],
                                                           second["transaction_id"]]
        daemon.process.send_signal(signal.SIGTERM)
        assert daemon.process.wait(10) == 0


def test_a_silent_central_costs_three_taps_then_none_and_its_return_is_noticed(
        terminal: tuple[DaemonProcess, Path, bytes], central_sim: CentralSim) -> None:
    """The circuit breaker on the real daemon: once the central has been silent three
    times, taps decide offline at once (no tap is the probe: a background ping is), and
    when the central answers again the next tap is decided online."""
    daemon, state, _key = terminal
    daemon.start()
    daemon.wait_notice("READY=1")
    daemon.wait_log("denylist at version")
    holders = ("gen2-adult", "gen1-adult")
    tap(state, "front", holders[0])
    assert daemon.wait_events(1)[0]["online"] is True
    central_sim.set_faults(mode="timeout")             # down, and silent
    for n in range(1, 10):
        take_away(state, "front")
        tap(state, "front", holders[n % 2])
        event = daemon.wait_events(n + 1)[n]
        assert event["online"] is False and event["journaled"] is True
        if n > 3:                                       # the breaker is open
            assert event["elapsed_ms"] < 100, event
        time.sleep(0.7)                                 # past a cool-down (5 s) in all
    central_sim.set_faults(mode="none")
    wait_for(lambda: "central circuit closed" in daemon.log.read_text(), timeout=10.0)
    take_away(state, "front")
    tap(state, "front", holders[0])
    assert daemon.wait_events(11)[10]["online"] is True
