"""systemd notify protocol: real datagrams to an AF_UNIX socket the test owns."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sscard_terminal.daemon.notify import Notifier, watchdog_interval


@pytest.fixture
def path_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    yield sock, address
    sock.close()


def receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode("utf-8").split("\n")


def test_ready_status_watchdog_stopping_arrive_as_protocol_lines(
        path_socket: tuple[socket.socket, str]) -> None:
    sock, address = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    assert notifier.enabled
    assert notifier.ready("2 lanes up")
    assert receive(sock) == ["READY=1", "STATUS=2 lanes up"]
    assert notifier.status("lane sim:a\nrecovering")
    assert receive(sock) == ["STATUS=lane sim:a recovering"]   # one line, never two
    assert notifier.watchdog()
    assert receive(sock) == ["WATCHDOG=1"]
    assert notifier.reloading()
    assert receive(sock) == ["RELOADING=1"]
    assert notifier.stopping("finishing the tap in progress")
    assert receive(sock) == ["STOPPING=1", "STATUS=finishing the tap in progress"]
    notifier.close()


def test_abstract_socket_name_with_at_sign() -> None:
    name = f"sscard-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2.0)
    try:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert receive(sock) == ["READY=1"]
        notifier.close()
    finally:
        sock.close()


def test_no_notify_socket_is_a_silent_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_a_vanished_socket_is_logged_once_and_never_raises(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.watchdog() is False
    assert notifier.watchdog() is False
    warnings = [r for r in caplog.records if "not delivered" in r.getMessage()]
    assert len(warnings) == 1


def test_a_garbage_notify_socket_value_is_ignored() -> None:
    assert not Notifier({"NOTIFY_SOCKET": "relative/path"}).enabled


def test_watchdog_interval_from_environment() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 20.0
    assert watchdog_interval({"WATCHDOG_USEC": "3000000",
                              "WATCHDOG_PID": str(os.getpid())}) == 3.0
    # Meant for another process (a wrapper that exec'd us would have had its own pid).
    assert watchdog_interval({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert Notifier({"WATCHDOG_USEC": "8000000"}).watchdog_s == 8.0


def test_a_receiver_that_never_reads_never_blocks_the_sender(
        path_socket: tuple[socket.socket, str]) -> None:
    """The daemon notifies from its event loop: a full receiver queue must cost dropped
    notifications, not a blocked loop."""
    _sock, address = path_socket
    notifier = Notifier({"NOTIFY_SOCKET": address})
    started = time.monotonic()
    sent = [notifier.status(f"tap {n} decided") for n in range(5000)]
    assert time.monotonic() - started < 2.0
    assert sent[0] is True and sent[-1] is False       # the queue filled, then dropped
    notifier.close()
