"""``sscard status`` and ``sscard events`` against a real local API socket (issue 18,
item 6), and their one-line message when nothing is running there."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.cli.main import main
from tests.test_local_api import Make, make_harness
from tests.test_local_api_events import ID_NUMBER, DaemonLikeStatus, presentation

__all__ = ["make_harness"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_one_screen_and_json(make_harness: Make,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    harness, _ = make_harness()
    harness.api.status_provider = DaemonLikeStatus()
    harness.api.events.publish(presentation("refuse", "card_lost", holder=f"张三丰 {ID_NUMBER}"))
    code, out, _ = run(capsys, "status", "--socket", str(harness.socket_path))
    assert code == 0
    assert "terminal T-0001" in out and "profile transit" in out
    assert "health: DEGRADED (lane scanner-1 is down;" in out
    assert "scanner-1     code  lost" in out and "sim:closed" in out
    assert "central    down, breaker open, last success 95s ago" in out
    assert "journal    7 undelivered, oldest 66m" in out
    assert "denylist   version v42, 1200 entries, age 60m" in out
    assert "last decision: " in out and "REFUSE card_lost" in out
    assert ID_NUMBER not in out and "张三丰" not in out
    code, out, _ = run(capsys, "status", "--json", "--socket", str(harness.socket_path))
    snapshot = json.loads(out)
    assert code == 0 and snapshot["status"]["journal"]["depth"] == 7
    assert snapshot["health"]["state"] == "degraded"
    assert snapshot["last_decision"]["reason"] == "card_lost"


def test_not_running_is_one_clear_line(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "api.sock"
    for command in ("status", "events"):
        code, out, err = run(capsys, command, "--socket", str(missing))
        assert code == ExitCode.DAEMON_NOT_RUNNING and out == ""
        assert err.strip() == (f"sscard: the daemon is not running: no socket at {missing} "
                               "(start it: systemctl start sscard-terminald; or give --socket)")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(missing))
    stale.close()  # what a crashed daemon leaves
    code, _, err = run(capsys, "status", "--socket", str(missing))
    assert code == ExitCode.DAEMON_NOT_RUNNING
    assert "exists but nobody listens on it" in err and len(err.splitlines()) == 1


def test_events_follows_the_stream(make_harness: Make, tmp_path: Path) -> None:
    harness, _ = make_harness()
    follower = subprocess.Popen(
        [sys.executable, "-m", "sscard_terminal.cli.main", "events", "--socket",
         str(harness.socket_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        end = time.monotonic() + 20
        while harness.api.events.subscriber_count < 1 and time.monotonic() < end:
            time.sleep(0.05)
        assert harness.api.events.subscriber_count == 1
        harness.api.events.publish(presentation(elapsed_ms=41.2, concession="senior"))
        harness.api.events.publish({"lane": "gate-1", "state": "fault",
                                    "fault": "relay silent"}, "gate")
        assert follower.stdout is not None
        # A thread reads the lines: select() on the pipe misses a second line that the
        # text wrapper already buffered with the first.
        arrived: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [arrived.put(line) for line in follower.stdout],
                         daemon=True).start()
        lines = [arrived.get(timeout=10), arrived.get(timeout=10)]
        assert " gate-1 card ACCEPT accepted (offline 41 ms) senior tx abababab" in lines[0]
        assert lines[1].rstrip().endswith("gate-1 gate fault (relay silent)")
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=10) == 130
    finally:
        if follower.poll() is None:
            follower.kill()
