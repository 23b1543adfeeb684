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
import time
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..deadline import Deadline
from ..errors import ConfigError, ScannerUnavailableError
from .code_filter import CodeFilter, DiscardReason
from .line_framer import LineFramer, Terminator
from .scanner_base import EventCallback, ScannerBase

if TYPE_CHECKING:
    import serial

__all__ = ["SerialQrScanner"]

log = logging.getLogger(__name__)

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


class SerialQrScanner(ScannerBase):
    """Decoded codes from one serial scanner, surviving unplug and replug.

    ``read(deadline)`` returns the next accepted code or ``None`` when the deadline
    passes (or the scanner was closed); iterating yields codes until :meth:`close`.
    Only one thread should read; any thread may call :meth:`close` to unblock it, and
    :meth:`counters` / :attr:`state` at any time (see :class:`ScannerBase`).
    """

    _NOUN = "scanner"
    _UNAVAILABLE = ScannerUnavailableError
    # Event listeners run in the reading thread inside read(), and one may call close():
    # it then releases the port at once. A read blocked in the port is cut short by
    # cancel_read(), so close() waits for the reader.
    _REENTRANT_READS = True
    _log: ClassVar[logging.Logger] = log

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
        # A scanner sends a code in one burst; a line still open after this much silence
        # on the wire is a fragment (noise, a cut transmission) and is dropped, so it is
        # never glued to the next code.
        self.line_timeout = line_timeout
        self._silent_for = 0.0  # wire silence observed since the last byte, mid-line
        super().__init__(
            code_filter=CodeFilter(
                dedup_window=dedup_window,
                max_length=max_length,
                strip_prefix=strip_prefix,
                strip_suffix=strip_suffix,
            ),
            reconnect_interval=reconnect_interval,
            on_event=on_event,
        )
        # The framer may hold a whole code plus its decorations, never more.
        self._framer = LineFramer(
            self.terminator, max_length + len(strip_prefix) + len(strip_suffix) + 1
        )
        self._port: serial.Serial | None = None
        try:
            self._connect()
        except ScannerUnavailableError:
            if not wait_for_device:
                raise
            log.info("scanner %s not present yet; waiting for it", self.port_path)

    @property
    def source(self) -> str:
        """The name this scanner puts on its codes: ``serial:<port path>``."""
        return f"serial:{self.port_path}"

    @property
    def _display(self) -> str:
        return self.port_path

    # -- internals ----------------------------------------------------------------------

    def _open(self) -> None:
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

    def _is_open(self) -> bool:
        return self._port is not None

    def _interrupt(self) -> None:
        port = self._port
        if port is not None:
            try:
                port.cancel_read()  # wakes a reader blocked in select() at once
            except (OSError, ValueError):
                pass  # already gone; the reader notices the closed flag

    def _read_some(self, deadline: Deadline) -> None:
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
            self._lost(str(exc))
            return
        if not data:
            self._note_silence(time.monotonic() - began)
            return
        self._silent_for = 0.0
        for frame in self._framer.feed(data):
            if frame.oversized:
                self._filter.count(DiscardReason.OVERSIZED)
                continue
            self._accept(frame.data)

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

    def _lost(self, why: str) -> None:
        self._release()
        self._drop_partial_line()  # half a code from before the loss must never be completed
        self._silent_for = 0.0
        super()._lost(why)

    def _release(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except OSError as exc:
                log.debug("closing %s: %s", self.port_path, exc)


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
