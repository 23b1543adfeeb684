"""Running the real ``sscard-terminald`` process in tests: its configuration for the central
simulator, its notify socket, its event output, taps on its ``sim:`` readers."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.offline_queue.journal import Journal

DAEMON = Path(sys.executable).parent / "sscard-terminald"
EVENTS = "sscard_terminal.daemon.events: "


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

    def wait_log(self, text: str, timeout: float = 20.0) -> None:
        end = time.monotonic() + timeout
        while text not in self.log.read_text():
            if time.monotonic() > end:
                raise AssertionError(f"no {text!r} in the log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

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


@contextmanager
def daemon_terminal(tmp_path: Path, central_sim: CentralSim, *, more_lanes: str = "") -> Iterator[
        tuple[DaemonProcess, Path, bytes]]:
    """A daemon configured for the simulator's bus terminal with one ``sim:front`` lane
    (and ``more_lanes``, TOML), not started; its state directory and its journal key."""
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
{more_lanes}""")
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


def drain(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            lines += sock.recv(4096).decode().split("\n")
        except TimeoutError:
            return lines
