"""Issue 18's faces wired into the real ``sscard-terminald`` process (``sim:`` readers).

The daemon is started from its console script with a configuration file, as in
``test_daemon_process.py``; everything is read from what it serves: the event stream and
``status`` over its local API Unix socket, ``sscard status --json`` against that socket.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.local_api.client import LocalApiClient, LocalApiUnavailable

from .daemon_helpers import DaemonProcess, daemon_terminal, tap, wait_for

pytestmark = pytest.mark.timeout(180)

SSCARD = Path(sys.executable).parent / "sscard"


class Follower:
    """Follows the daemon's event stream over its Unix socket, in a thread."""

    def __init__(self, socket: Path) -> None:
        self.events: list[dict[str, Any]] = []
        self.subscribed = threading.Event()
        self._client = LocalApiClient(socket)
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            stream = self._client.events()
            for event in stream:
                self.events.append(event)
        except LocalApiUnavailable:
            pass

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


CLEAR = {"gen2-adult": ["刘思远", "33030219751120007", "W0000005"],
         "expired": ["张国强", "33030219600101006", "W0000004"]}
"""Each holder's name, ID number (its 17 digits before the check digit) and card number
(its 8 characters before the check digit), as tests/hardware_sim/holders.py writes them."""


def clear_personal_data(holder: str) -> list[str]:
    return CLEAR[holder]


@pytest.fixture
def served(tmp_path: Path, central_sim: CentralSim) -> Iterator[tuple[DaemonProcess, Path,
                                                                       Path]]:
    socket = tmp_path / "api.sock"
    with daemon_terminal(tmp_path, central_sim,
                         more_lanes=f'\n[local_api]\nsocket = "{socket}"\n') as (daemon, state,
                                                                                 _key):
        daemon.start()
        daemon.wait_notice("READY=1")
        yield daemon, state, socket


def test_the_daemon_streams_taps_and_lane_moves_over_its_socket_and_reports_status(
        served: tuple[DaemonProcess, Path, Path]) -> None:
    daemon, state, socket = served
    follower = Follower(socket)
    client = LocalApiClient(socket)
    # The subscription is in place once the hub counts it: the status answer comes
    # after the subscribe answer on the daemon's loop.
    wait_for(lambda: client.data("status") is not None)
    assert client.data("last_decision") is None

    tap(state, "front", "gen2-adult")
    (logged,) = daemon.wait_events(1)
    wait_for(lambda: len(follower.of("presentation")) == 1)
    (shown,) = follower.of("presentation")
    assert shown["lane"] == "front"
    assert (shown["outcome"], shown["reason"]) == ("accept", logged["reason"])
    assert shown["transaction_id"] == logged["transaction_id"]
    assert shown["journaled"] is True
    moves = [(e["previous"], e["state"]) for e in follower.of("lane")]
    assert ("idle", "card_present") in moves and ("deciding", "showing") in moves
    raw = json.dumps(follower.events, ensure_ascii=False)
    for clear in clear_personal_data("gen2-adult"):
        assert clear not in raw

    assert client.data("last_decision")["transaction_id"] == logged["transaction_id"]
    status = client.data("status")
    assert status["terminal_id"] == daemon_terminal_id(daemon)
    assert status["profile"] == "bus-validator"
    (lane,) = status["lanes"]
    assert (lane["name"], lane["kind"], lane["device"]) == ("front", "card", "sim:front")
    assert status["central"]["circuit"] == "closed"
    assert status["central"]["link"] == "up"           # the online accept went through it
    assert status["journal"]["depth"] in (0, 1)          # the forwarder may have sent it
    assert status["uptime_s"] > 0
    assert client.data("health")["state"] in ("ok", "degraded")

    shown_cli = subprocess.run([str(SSCARD), "status", "--json", "--socket", str(socket)],
                               check=False, capture_output=True, text=True, timeout=30)
    assert shown_cli.returncode == 0, shown_cli.stderr
    snapshot = json.loads(shown_cli.stdout.splitlines()[0])
    assert [x["name"] for x in snapshot["status"]["lanes"]] == ["front"]
    assert snapshot["last_decision"]["transaction_id"] == logged["transaction_id"]

    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0


def daemon_terminal_id(daemon: DaemonProcess) -> str:
    for line in daemon.config.read_text().splitlines():
        if line.startswith("id = "):
            return line.split('"')[1]
    raise AssertionError("no terminal id in the config")
