"""Issue 18's faces wired into the real ``sscard-terminald`` process (``sim:`` readers).

The daemon is started from its console script with a configuration file, as in
``test_daemon_process.py``; everything is read from what it serves: the event stream and
``status`` over its local API Unix socket, ``sscard status --json`` against that socket.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import select
import signal
import socket as socket_module
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.errors import DaemonUnavailableError
from sscard_terminal.local_api.client import LocalApiClient

from .daemon_helpers import (
    DAEMON,
    DaemonProcess,
    daemon_terminal,
    journaled,
    take_away,
    tap,
    wait_for,
)
from .test_display import SCREENSHOTS, browser  # noqa: F401 - the fixture
from .test_display import text as display_text
from .test_display import wait_for as display_wait
from .test_log_setup import parse as parse_journal

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
        except DaemonUnavailableError:
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
    # The health check (every second) publishes the central link when it changes.
    wait_for(lambda: any(e["link"] == "up" for e in follower.of("central")), timeout=5.0)
    assert follower.of("central")[-1] == {**follower.of("central")[-1], "link": "up",
                                          "circuit": "closed"}
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


@contextmanager
def gated(tmp_path: Path, central_sim: CentralSim, gate: str) -> Iterator[
        tuple[DaemonProcess, Path, LocalApiClient]]:
    """The daemon with ``gate`` (a TOML inline table) on its ``front`` lane, running."""
    socket = tmp_path / "api.sock"
    with daemon_terminal(tmp_path, central_sim,
                         more_lanes=f'gate = {gate}\n\n[local_api]\nsocket = "{socket}"\n'
                         ) as (daemon, state, _key):
        daemon.start()
        daemon.wait_notice("READY=1")
        yield daemon, state, LocalApiClient(socket)


def read_for(fd: int, seconds: float) -> bytes:
    got = b""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            got += os.read(fd, 64)
    return got


def test_a_serial_relay_on_a_pty_opens_for_an_accept_only_and_closes_after_the_open_time(
        tmp_path: Path, central_sim: CentralSim) -> None:
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        gate = (f'{{ kind = "serial", device = "{port}", open_frame = "A0 01 01 A2", '
                f'close_frame = "A0 01 00 A1" }}')
        with gated(tmp_path, central_sim, gate) as (daemon, state, client):
            tap(state, "front", "expired")
            (refused,) = daemon.wait_events(1)
            assert refused["outcome"] == "refuse"
            assert read_for(master, 1.0) == b""           # never opens for a refusal
            take_away(state, "front")

            tap(state, "front", "gen2-adult")
            accepted = daemon.wait_events(2)[1]
            assert accepted["outcome"] == "accept"
            opened_at = time.monotonic()
            assert read_for(master, 0.5) == bytes.fromhex("A00101A2")
            (lane,) = client.data("status")["lanes"]
            assert lane["gate"] == {"driver": "serial", "state": "open", "fault": None}
            # The bus-validator profile's gate.open_ms is the default 3000.
            closed = read_for(master, 4.0)
            assert closed == bytes.fromhex("A00100A1")
            assert time.monotonic() - opened_at > 2.0
            (lane,) = client.data("status")["lanes"]
            assert lane["gate"]["state"] == "closed"
    finally:
        os.close(master)
        os.close(slave)


def test_a_gate_that_fails_is_a_lane_fault_and_the_transaction_stands(
        tmp_path: Path, central_sim: CentralSim) -> None:
    gate = ('{ kind = "serial", device = "/dev/sscard-no-such-relay", '
            'open_frame = "A0 01 01 A2", close_frame = "A0 01 00 A1" }')
    with gated(tmp_path, central_sim, gate) as (daemon, state, client):
        key = (tmp_path / "journal.key").read_bytes()
        tap(state, "front", "gen2-adult")
        (accepted,) = daemon.wait_events(1)
        assert (accepted["outcome"], accepted["journaled"]) == ("accept", True)

        def faulted() -> bool:
            (lane,) = client.data("status")["lanes"]
            return bool(lane["gate"]["state"] == "fault")

        wait_for(faulted)
        (lane,) = client.data("status")["lanes"]
        assert lane["state"] != "lost" and lane["faults"] == 1
        assert lane["gate"]["driver"] == "serial"
        health = client.data("health")
        assert health["state"] == "degraded" and "lane front: gate fault" in health["problems"]
        assert [r["transaction_id"] for r in journaled(state, central_sim.terminal_id, key)] \
            == [accepted["transaction_id"]]
        # The lane goes on deciding.
        take_away(state, "front")
        tap(state, "front", "expired")
        assert daemon.wait_events(2)[1]["outcome"] == "refuse"


def test_the_sim_gate_opens_and_closes_in_the_event_stream(
        tmp_path: Path, central_sim: CentralSim) -> None:
    with gated(tmp_path, central_sim, '{ kind = "sim" }') as (daemon, state, client):
        follower = Follower(client.path)
        wait_for(lambda: client.data("status") is not None)
        tap(state, "front", "expired")
        daemon.wait_events(1)
        take_away(state, "front")
        tap(state, "front", "gen2-adult")
        daemon.wait_events(2)
        wait_for(lambda: [e["state"] for e in follower.of("gate")] == ["open", "closed"],
                 timeout=8.0)
        assert {e["lane"] for e in follower.of("gate")} == {"front"}
        (lane,) = client.data("status")["lanes"]
        assert lane["gate"] == {"driver": "sim", "state": "closed", "fault": None}


def free_port() -> int:
    with socket_module.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def bridged(tmp_path: Path, central_sim: CentralSim) -> Iterator[
        tuple[DaemonProcess, Path, str, str, Path]]:
    """The daemon with its loopback bridge (display and /metrics) and a metrics textfile:
    the daemon, its state directory, the bridge's base URL, its token, the textfile."""
    token = secrets.token_urlsafe(24)
    token_file = tmp_path / "api.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    port = free_port()
    prom = tmp_path / "textfile" / "sscard.prom"
    prom.parent.mkdir()
    extra = (f'\n[local_api]\nsocket = "{tmp_path / "api.sock"}"\n'
             f'\n[http]\nport = {port}\ntoken_file = "{token_file}"\ndisplay = true\n'
             f'metrics = true\n\n[metrics]\ntextfile = "{prom}"\n')
    with daemon_terminal(tmp_path, central_sim, more_lanes=extra) as (daemon, state, _key):
        daemon.start()
        daemon.wait_notice("READY=1")
        yield daemon, state, f"http://127.0.0.1:{port}", token, prom


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def test_metrics_move_on_a_tap_and_no_label_holds_personal_data(
        bridged: tuple[DaemonProcess, Path, str, str, Path]) -> None:
    daemon, state, base, token, prom = bridged
    assert httpx.get(f"{base}/metrics").status_code == 401        # the bearer token
    auth = {"Authorization": f"Bearer {token}"}
    before = samples(httpx.get(f"{base}/metrics", headers=auth).text)

    tap(state, "front", "gen2-adult")
    (shown,) = daemon.wait_events(1)
    take_away(state, "front")
    tap(state, "front", "expired")
    daemon.wait_events(2)
    answer = httpx.get(f"{base}/metrics", headers=auth)
    assert answer.status_code == 200
    after = samples(answer.text)

    accepted = ("sscard_presentations_total", frozenset({
        ("channel", shown["channel"]), ("outcome", "accept"), ("reason", shown["reason"]),
        ("mode", "online")}))
    assert before.get(accepted, 0) == 0 and after[accepted] == 1
    refused = [value for (name, labels), value in after.items()
               if name == "sscard_presentations_total" and ("outcome", "refuse") in labels]
    assert refused == [1]
    assert after[("sscard_tap_to_decision_seconds_count",
                  frozenset({("channel", shown["channel"]), ("mode", "online")}))] == 2
    lanes = {dict(labels)["sscard_lane_state"] for (name, labels), value in after.items()
             if name == "sscard_lane_state" and value == 1}
    assert lanes                                        # the lane's state is exported
    assert any(name.startswith("sscard_journal") for name, _ in after)

    labels = {value for _, label_set in after for _, value in label_set}
    clear = clear_personal_data("gen2-adult") + clear_personal_data("expired")
    for value in labels:
        assert not any(part in value for part in clear), value
        assert not re.search(r"\d{8,}|[A-Z]\d{7,}", value), value   # no card reference
    assert shown["transaction_id"] not in answer.text

    assert daemon.process is not None
    daemon.process.send_signal(signal.SIGTERM)
    assert daemon.process.wait(10) == 0
    assert samples(prom.read_text())[accepted] == 1      # the textfile's last counts


def test_the_display_page_served_by_the_daemon_shows_a_tap(
        bridged: tuple[DaemonProcess, Path, str, str, Path],
        browser: webdriver.Chrome) -> None:  # noqa: F811 - the fixture of test_display
    daemon, state, base, _token, _prom = bridged
    page = httpx.get(f"{base}/display/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    browser.get(f"{base}/display/")
    display_wait(browser, "return document.body.dataset.connected === 'yes'")
    assert browser.execute_script("return document.body.dataset.outcome") == "idle"
    time.sleep(0.3)                 # the page's subscription reaches the hub

    tap(state, "front", "expired")
    daemon.wait_events(1)
    display_wait(browser, "return document.body.dataset.outcome === 'refuse'")
    assert display_text(browser, "headline") == "未通过\nNot accepted"
    take_away(state, "front")
    tap(state, "front", "gen2-adult")
    daemon.wait_events(2)
    display_wait(browser, "return document.body.dataset.outcome === 'accept'")
    assert display_text(browser, "headline") == "请通行\nGo ahead"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / "daemon-display-accept.png"))
    source = browser.page_source
    for part in clear_personal_data("gen2-adult") + clear_personal_data("expired"):
        assert part not in source


def test_under_systemd_the_daemon_logs_to_journald_with_structured_fields(
        tmp_path: Path, central_sim: CentralSim) -> None:
    journal_path = tmp_path / "journal.socket"
    journal = socket_module.socket(socket_module.AF_UNIX, socket_module.SOCK_DGRAM)
    journal.bind(str(journal_path))
    journal.settimeout(0.2)
    try:
        with daemon_terminal(tmp_path, central_sim) as (daemon, state, _key):
            daemon.log.touch()
            info = os.stat(daemon.log)              # the daemon's stderr: systemd's stream
            env = {**os.environ, "NOTIFY_SOCKET": daemon.notify_path,
                   "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
            env.pop("CREDENTIALS_DIRECTORY", None)
            with daemon.log.open("ab") as err:
                daemon.process = subprocess.Popen(
                    [str(DAEMON), "--config", str(daemon.config),
                     "--journal-socket", str(journal_path)],
                    stdout=subprocess.DEVNULL, stderr=err, env=env)
            daemon.wait_notice("READY=1")
            tap(state, "front", "gen2-adult")
            records: list[dict[str, str]] = []

            def event_logged() -> bool:
                with contextlib.suppress(TimeoutError):
                    records.append(parse_journal(journal.recv(65536)))
                return any(r.get("LOGGER") == "sscard_terminal.daemon.events"
                           for r in records)

            wait_for(event_logged)
            (event,) = [r for r in records if r["LOGGER"] == "sscard_terminal.daemon.events"]
            shown = json.loads(event["MESSAGE"])
            assert event["SSCARD_LANE"] == "front"
            assert event["SSCARD_REASON"] == shown["reason"]
            assert event["SSCARD_TRANSACTION_ID"] == shown["transaction_id"]
            assert event["SYSLOG_IDENTIFIER"] == "sscard-terminald"
            assert any(r.get("SSCARD_LANE") == "front" and "card_present" in r["MESSAGE"]
                       for r in records)                        # lane moves too
            assert daemon.process is not None
            daemon.process.send_signal(signal.SIGTERM)
            assert daemon.process.wait(10) == 0
            while True:
                try:
                    records.append(parse_journal(journal.recv(65536)))
                except TimeoutError:
                    break
            everything = json.dumps(records, ensure_ascii=False)
            for part in clear_personal_data("gen2-adult"):
                assert part not in everything
            assert "sscard_terminal" not in daemon.log.read_text()   # nothing on stderr
    finally:
        journal.close()
