"""Serial (CDC / virtual COM) QR scanners: the only module that imports pyserial.

Gates read e-codes with USB or RS-232 scanners set to CDC mode; each code arrives as one
line. This adapter owns the port: it opens it by a stable path (``/dev/serial/by-id/...``
survives re-enumeration, ``/dev/ttyACM0`` does not), cuts the stream into lines in
bounded memory, filters garbage and repeats (:mod:`.code_filter`), and when the scanner
is unplugged it reports ``scanner-lost``, keeps trying to reopen the same path, and
reports ``scanner-back`` when it returns, so a gate heals itself after a cable knock.

pyserial is imported lazily so that importing the SDK never loads it; pyserial deals
with the platform (termios on POSIX). This module touches termios only to recognise
``termios.error``, which pyserial lets escape when a tty hangs up while it is being
opened (its input flush fails with EIO on a device unplugged at that moment).
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal

from ..deadline import Deadline
from ..errors import ConfigError, ScannerUnavailableError
from .code_filter import (
    CodeFilter,
    DiscardReason,
    InputCounters,
    ScannedCode,
    ScannerEvent,
    ScannerState,
    notify,
)
from .line_framer import LineFramer, Terminator

if TYPE_CHECKING:
    import serial

__all__ = ["SerialQrScanner"]

log = logging.getLogger(__name__)

EventCallback = Callable[[ScannerEvent], None]

_PARITIES = {"N": "N", "E": "E", "O": "O", "M": "M", "S": "S"}
# How long one blocking read may last when the caller gave no deadline: long enough to
# be idle-cheap, short enough that a reconnect or close is noticed without a cancel.
_IDLE_READ_SECONDS = 1.0


def _open_errors() -> tuple[type[Exception], ...]:
    """What opening a port raises when the device cannot be used (see the module doc)."""
    try:
        import termios  # noqa: PLC0415 - POSIX only, and only its exception class
    except ImportError:  # pragma: no cover - not POSIX
        return (OSError, ValueError)
    return (OSError, ValueError, termios.error)


def _serial_module() -> Any:
    try:
        import serial  # noqa: PLC0415 - lazy on purpose: the SDK must not load pyserial
    except ImportError as exc:  # pragma: no cover - pyserial is a hard dependency
        raise ScannerUnavailableError("pyserial is not installed") from exc
    return serial


class SerialQrScanner:
    """Decoded codes from one serial scanner, surviving unplug and replug.

    ``read(deadline)`` returns the next accepted code or ``None`` when the deadline
    passes (or the scanner was closed); iterating yields codes until :meth:`close`.
    Only one thread should read; any thread may call :meth:`close` to unblock it, and
    :meth:`counters` / :attr:`state` at any time.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 9600,
        bytesize: Literal[5, 6, 7, 8] = 8,
        parity: Literal["N", "E", "O", "M", "S"] = "N",
        stopbits: float = 1,
        terminator: Terminator | str = Terminator.AUTO,
        strip_prefix: bytes = b"",
        strip_suffix: bytes = b"",
        dedup_window: float = 2.0,
        max_length: int = 4096,
        reconnect_interval: float = 0.5,
        line_timeout: float = 1.0,
        wait_for_device: bool = False,
        on_event: EventCallback | None = None,
    ) -> None:
        """Open ``port`` now; with ``wait_for_device`` a missing port is waited for instead.

        Raises :class:`ScannerUnavailableError` when the port cannot be opened (and
        ``wait_for_device`` is false), :class:`ConfigError` for impossible settings.
        """
        try:
            self.terminator = Terminator(terminator)
        except ValueError as exc:
            raise ConfigError(
                f"terminator must be one of CR, LF, CRLF, auto, not {terminator!r}"
            ) from exc
        if parity not in _PARITIES or bytesize not in (5, 6, 7, 8) or stopbits not in (1, 1.5, 2):
            raise ConfigError(f"unsupported framing {bytesize}{parity}{stopbits}")
        if baudrate <= 0 or reconnect_interval <= 0 or line_timeout <= 0:
            raise ConfigError("baudrate, reconnect_interval and line_timeout must be positive")
        self.port_path = port
        self.baudrate = baudrate
        self.bytesize = bytesize
        self.parity = parity
        self.stopbits = stopbits
        self.reconnect_interval = reconnect_interval
        # A scanner sends a code in one burst; a line still open after this much silence
        # on the wire is a fragment (noise, a cut transmission) and is dropped, so it is
        # never glued to the next code.
        self.line_timeout = line_timeout
        self._silent_for = 0.0  # wire silence observed since the last byte, mid-line
        self._on_event = on_event
        self._filter = CodeFilter(
            dedup_window=dedup_window,
            max_length=max_length,
            strip_prefix=strip_prefix,
            strip_suffix=strip_suffix,
        )
        # The framer may hold a whole code plus its decorations, never more.
        self._framer = LineFramer(
            self.terminator, max_length + len(strip_prefix) + len(strip_suffix) + 1
        )
        self._ready: list[ScannedCode] = []
        self._closed = threading.Event()
        # Held by the reading thread while it uses _port. Re-entrant: event listeners run
        # in the reading thread inside read(), and one may call close().
        self._io_lock = threading.RLock()
        self._port: serial.Serial | None = None
        self._state = ScannerState.LOST
        self._ever_connected = False
        self._next_attempt = 0.0
        try:
            self._connect()
        except ScannerUnavailableError:
            if not wait_for_device:
                raise
            log.info("scanner %s not present yet; waiting for it", self.port_path)

    # -- public API ---------------------------------------------------------------------

    @property
    def source(self) -> str:
        """The name this scanner puts on its codes: ``serial:<port path>``."""
        return f"serial:{self.port_path}"

    @property
    def state(self) -> ScannerState:
        return self._state

    def counters(self) -> InputCounters:
        """Accepted, duplicate and discarded reads, losses and returns so far."""
        return self._filter.counters()

    def read(self, deadline: Deadline) -> ScannedCode | None:
        """The next accepted code, or ``None`` if ``deadline`` passes or we are closed."""
        with self._io_lock:
            while not self._closed.is_set():
                if self._ready:
                    return self._ready.pop(0)
                if deadline.expired:
                    return None
                if self._port is None:
                    self._wait_and_reconnect(deadline)
                    continue
                self._read_chunk(deadline)
            return None

    def __iter__(self) -> Iterator[ScannedCode]:
        """Codes until :meth:`close` is called (from any thread)."""
        while not self._closed.is_set():
            code = self.read(Deadline.never())
            if code is not None:
                yield code

    def close(self) -> None:
        """Stop reading and release the port; safe from any thread, idempotent."""
        self._closed.set()
        port = self._port
        if port is not None:
            try:
                port.cancel_read()  # wakes a reader blocked in select() at once
            except (OSError, ValueError):
                pass  # already gone; the reader notices the closed flag
        with self._io_lock:
            self._release_port()
            if self._state is not ScannerState.CLOSED:
                self._transition(ScannerState.CLOSED, "scanner-closed", "")

    def __enter__(self) -> SerialQrScanner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SerialQrScanner({self.port_path!r}, state={self._state.value})"

    # -- internals ----------------------------------------------------------------------

    def _connect(self) -> None:
        serial_mod = _serial_module()
        try:
            port = serial_mod.Serial(
                self.port_path,
                baudrate=self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=_IDLE_READ_SECONDS,
                exclusive=True,  # a second reader on one scanner splits codes between them
            )
        except _open_errors() as exc:
            raise ScannerUnavailableError(_explain_open_failure(self.port_path, exc)) from exc
        try:
            port.reset_input_buffer()  # bytes from before we listened belong to no one
        except _open_errors() as exc:  # unplugged again at once (a loose cable)
            port.close()
            raise ScannerUnavailableError(_explain_open_failure(self.port_path, exc)) from exc
        self._port = port
        self._framer.reset()
        if self._ever_connected:
            self._filter.count_event("back")
            self._transition(ScannerState.CONNECTED, "scanner-back", "")
        else:
            self._transition(ScannerState.CONNECTED, "scanner-connected", "")
        self._ever_connected = True

    def _wait_and_reconnect(self, deadline: Deadline) -> None:
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            # An Event wait, so close() from another thread ends it at once.
            self._closed.wait(min(wait, deadline.remaining()))
            return
        self._next_attempt = time.monotonic() + self.reconnect_interval
        try:
            self._connect()
        except ScannerUnavailableError as exc:
            log.debug("scanner %s still unavailable: %s", self.port_path, exc)

    def _read_chunk(self, deadline: Deadline) -> None:
        port = self._port
        assert port is not None
        timeout = min(deadline.remaining(), _IDLE_READ_SECONDS)
        began = time.monotonic()
        try:
            if port.timeout != timeout:
                port.timeout = timeout
            data: bytes = port.read(1)
            if data:
                waiting = port.in_waiting
                if waiting:
                    data += port.read(waiting)
        except (OSError, ValueError, TypeError) as exc:
            # pyserial raises SerialException (an OSError) when the device vanished; a
            # port closed under us by close() surfaces as ValueError/TypeError.
            if self._closed.is_set():
                return
            self._lose(str(exc))
            return
        if not data:
            self._note_silence(time.monotonic() - began)
            return
        self._silent_for = 0.0
        for frame in self._framer.feed(data):
            if frame.oversized:
                self._filter.count(DiscardReason.OVERSIZED)
                continue
            code = self._filter.accept(frame.data, self.source)
            if code is not None:
                self._ready.append(code)

    def _note_silence(self, seconds: float) -> None:
        """Count a read that found nothing; drop an open line once it is stale.

        Only reads that found the kernel buffer empty count, so a caller that was busy
        elsewhere between two ``read()`` calls never makes a complete code look stale.
        """
        if not self._framer.in_line:
            self._silent_for = 0.0
            return
        self._silent_for += seconds
        if self._silent_for >= self.line_timeout:
            self._silent_for = 0.0
            self._drop_partial_line()

    def _drop_partial_line(self) -> None:
        if self._framer.reset():
            self._filter.count(DiscardReason.OVERSIZED)  # "no terminator in time"

    def _lose(self, why: str) -> None:
        self._release_port()
        self._drop_partial_line()  # half a code from before the loss must never be completed
        self._silent_for = 0.0
        self._filter.count_event("lost")
        self._next_attempt = time.monotonic() + self.reconnect_interval
        self._transition(ScannerState.LOST, "scanner-lost", why)

    def _release_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except OSError as exc:
                log.debug("closing %s: %s", self.port_path, exc)

    def _transition(self, state: ScannerState, kind: str, detail: str) -> None:
        previous, self._state = self._state, state
        log.info("scanner %s: %s -> %s (%s) %s", self.port_path, previous, state, kind, detail)
        notify(self._on_event, kind, self.source, detail, log)


def _explain_open_failure(path: str, exc: BaseException) -> str:
    cause = exc.__cause__ or exc
    code = getattr(cause, "errno", None) or getattr(exc, "errno", None)
    if code == errno.ENOENT:
        return f"scanner port {path} does not exist (unplugged, or not in CDC/virtual COM mode?)"
    if code == errno.EACCES:
        return (
            f"no permission to open scanner port {path}: add the daemon's user to the tty "
            "group (dialout/uucp/plugdev) or install systemd/60-sscard-scanner.rules"
        )
    if code in (errno.EAGAIN, errno.EBUSY):  # EAGAIN: the exclusive lock is held
        return f"scanner port {path} is busy: another program holds it"
    return f"cannot open scanner port {path}: {exc}"
