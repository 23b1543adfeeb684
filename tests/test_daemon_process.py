"""The real ``sscard-terminald`` process, end to end, on ``sim:`` readers.

Everything is real: the daemon process started from its console script with a
configuration file, the central simulator over HTTP on loopback, the journal, engine-state
and denylist SQLite files in the state directory, the systemd notify datagrams (to a
socket the test owns), ``kill -9`` and SIGTERM. A tap is a file in the ``sim:`` readers'
control directory naming the virtual card's holder; the decision is read from the daemon's
event output (one JSON line per presentation on stderr) and from the journal itself.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.offline_queue.journal import Journal

DAEMON = Path(sys.executable).parent / "sscard-terminald"
EVENTS = "sscard_terminal.daemon.events: "

pytestmark = pytest.mark.timeout(180)


@dataclass
class DaemonProcess:
    """One run of sscard-terminald; its stderr goes to a file the test reads."""

    config: Path
    log: Path
    notify: socket.socket
    notify_path: str
    process: subprocess.Popen[bytes] | None = None
    notices: list[str] = field(default_factory=list)

    def start(self) -> None:
        env = {**os.environ, "NOTIFY_SOCKET": self.notify_path, "WATCHDOG_USEC": "2000000"}
        env.pop("CREDENTIALS_DIRECTORY", None)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([str(DAEMON), "--config", str(self.config)],
                                            stdout=subprocess.DEVNULL, stderr=log, env=env)

    def wait_notice(self, line: str, timeout: float = 20.0) -> list[str]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"daemon exited with {self.process.returncode}:\n"
                                     f"{self.log.read_text()[-3000:]}")
            try:
                self.notices += self.notify.recv(4096).decode().split("\n")
            except TimeoutError:
                continue
            if line in self.notices:
                return self.notices
        raise AssertionError(f"no {line} within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def events(self) -> list[dict[str, Any]]:
        found = []
        for raw in self.log.read_text().splitlines():
            if EVENTS in raw:
                found.append(json.loads(raw.split(EVENTS, 1)[1]))
        return found

    def wait_events(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            events = self.events()
            if len(events) >= count:
                return events
            time.sleep(0.02)
        raise AssertionError(f"fewer than {count} events:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def terminal(tmp_path: Path, central_sim: CentralSim) -> Iterator[tuple[DaemonProcess, Path,
                                                                         bytes]]:
    state = tmp_path / "state"
    state.mkdir()
    key_bytes = secrets.token_bytes(32)
    key = tmp_path / "journal.key"
    key.write_bytes(key_bytes)
    key.chmod(0o600)
    secret = tmp_path / "central.secret"
    secret.write_text(central_sim.secret + "\n")
    config = tmp_path / "terminal.toml"
    config.write_text(f"""
[terminal]
id = "{central_sim.terminal_id}"
profile = "bus-validator"
state_directory = "{state}"

[central]
url = "{central_sim.base_url}"
secret_file = "{secret}"
public_key = "{central_sim.central_public_key}"

[journal]
key_file = "{key}"

[lanes.front]
reader = "sim:front"
""")
    notify_path = str(tmp_path / "notify.sock")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(0.2)
    daemon = DaemonProcess(config, tmp_path / "daemon.log", notify, notify_path)
    try:
        yield daemon, state, key_bytes
    finally:
        daemon.stop()
        notify.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.05)


def tap(state: Path, reader: str, holder: str) -> None:
    control = state / "sim-readers"
    new = control / f"{reader}.new"
    new.write_text(holder + "\n")
    new.replace(control / reader)


def take_away(state: Path, reader: str) -> None:
    (state / "sim-readers" / reader).unlink(missing_ok=True)


def journaled(state: Path, terminal_id: str, key: bytes) -> list[dict[str, Any]]:
    with Journal.open(state / "journal.db", terminal_id=terminal_id, keys=key) as journal:
        return [dict(record.payload) for record in journal.records()]


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
    with Journal.open(state / "journal.db", terminal_id=central_sim.terminal_id,
                      keys=key) as journal:
        assert journal.status().queued == 0

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


def drain(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            lines += sock.recv(4096).decode().split("\n")
        except TimeoutError:
            return lines
