"""Start and stop the one pcscd of this machine for tests and benchmarks.

pcscd is one per machine (Debian's build listens on /run/pcscd/pcscd.comm whatever the
environment says, and a second one refuses to start), and several test processes may
want it at once. :class:`PcscdRunner` therefore takes an exclusive ``flock`` on
``/tmp/sscard-pcscd.lock`` first, stops a stale pcscd (pid in /run/pcscd/pcscd.pid),
runs ``pcscd --foreground`` as its own child (no socket activation, so no 60 s idle
exit), waits for the socket and for vpcd's "Virtual PCD 00 00" reader, and stops it at
the end. Running as root, this pcscd (1.9.x) needs no polkit flag; as another user
the polkit rule in systemd/ must admit that user.

The pytest fixture (tests/conftest.py) and ``bench/card_read.py`` share this code.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO

__all__ = [
    "LOCK_PATH",
    "VPCD_READER_0",
    "VPCD_READER_1",
    "PcscdRunner",
    "PcscdStartError",
    "card_present",
    "wait_card_state",
]

LOCK_PATH = Path("/tmp/sscard-pcscd.lock")
PID_PATH = Path("/run/pcscd/pcscd.pid")
SOCKET_PATH = Path("/run/pcscd/pcscd.comm")
VPCD_READER_0 = "Virtual PCD 00 00"
VPCD_READER_1 = "Virtual PCD 00 01"


class PcscdStartError(RuntimeError):
    """pcscd could not be started or its vpcd readers never appeared."""


def _list_readers() -> list[str]:
    scard = importlib.import_module("smartcard.scard")

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        return []
    try:
        result, readers = scard.SCardListReaders(context, [])
        return list(readers) if result == scard.SCARD_S_SUCCESS else []
    finally:
        scard.SCardReleaseContext(context)


def card_present(reader: str) -> bool | None:
    """Whether pcscd sees a card in ``reader`` (None: no such reader or no pcscd)."""
    scard = importlib.import_module("smartcard.scard")

    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if result != scard.SCARD_S_SUCCESS:
        return None
    try:
        result, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if result != scard.SCARD_S_SUCCESS:
            return None
        return bool(states[0][1] & scard.SCARD_STATE_PRESENT)
    finally:
        scard.SCardReleaseContext(context)


def wait_card_state(reader: str, present: bool, timeout: float = 5.0) -> None:
    """Block until pcscd's view of ``reader`` matches (insertion ~100 ms, removal ~400 ms)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if card_present(reader) is present:
            return
        time.sleep(0.02)
    raise PcscdStartError(f"{reader}: card {'never arrived' if present else 'never left'}")


def _stop_pid(pid: int, timeout: float = 1.5) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


class PcscdRunner:
    """A pcscd owned by this process for as long as the runner is open.

    ``start()`` blocks until another holder of the lock is done; ``restart()`` stops and
    starts pcscd again while keeping the lock (tests of pcscd-restart recovery).
    """

    def __init__(self, *, log_path: Path | None = None, start_timeout: float = 10.0) -> None:
        self._log_path = log_path
        self._start_timeout = start_timeout
        self._lock: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        exe = shutil.which("pcscd") or ("/usr/sbin/pcscd" if Path("/usr/sbin/pcscd").exists()
                                        else None)
        if exe is None:
            raise PcscdStartError("pcscd is not installed (apt-get install pcscd vsmartcard-vpcd)")
        self._exe = exe
        lock = LOCK_PATH.open("ab")
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        self._lock = lock
        try:
            self._spawn()
        except BaseException:
            self.stop()
            raise

    def _stop_stale(self) -> None:
        try:
            stale = int(PID_PATH.read_text().strip())
        except (OSError, ValueError):
            stale = 0
        if stale > 0:
            _stop_pid(stale)
        end = time.monotonic() + 3.0
        while SOCKET_PATH.exists() and time.monotonic() < end:
            time.sleep(0.05)
        with contextlib.suppress(FileNotFoundError):
            SOCKET_PATH.unlink()

    def _spawn(self) -> None:
        self._stop_stale()
        if self._log_path is not None:
            self._log = self._log_path.open("ab")
        self._process = subprocess.Popen(
            [self._exe, "--foreground"],
            stdout=self._log if self._log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        end = time.monotonic() + self._start_timeout
        while time.monotonic() < end:
            if self._process.poll() is not None:
                raise PcscdStartError(f"pcscd exited with {self._process.returncode} at start")
            if SOCKET_PATH.exists() and VPCD_READER_0 in _list_readers():
                return
            time.sleep(0.05)
        raise PcscdStartError(f"pcscd did not offer {VPCD_READER_0!r} in {self._start_timeout} s")

    def kill_daemon(self) -> None:
        """Stop pcscd but keep the lock (a test then checks recovery)."""
        if self._process is not None:
            _stop_pid(self._process.pid)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=3)
            self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self) -> None:
        self.kill_daemon()
        self._spawn()

    def stop(self) -> None:
        self.kill_daemon()
        if self._lock is not None:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None

    def __enter__(self) -> PcscdRunner:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
