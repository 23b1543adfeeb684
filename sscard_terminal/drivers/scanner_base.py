"""The face every e-code input device shows: the serial scanner and the camera.

Both deliver :class:`ScannedCode` values through the same :class:`CodeFilter`, report the
same state changes (``scanner-connected``, ``scanner-lost``, ``scanner-back``,
``scanner-closed``) and heal the same way: a lost device is reopened every
``reconnect_interval`` seconds while a reader waits. What differs is only how a device
is opened, read and released, so that is all a subclass writes; the read loop, the
iteration, ``close()`` from any thread and the state machine are written once, here.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import ClassVar, Protocol, Self

from ..deadline import Deadline
from ..errors import SscardError
from .code_filter import CodeFilter, InputCounters, ScannedCode, ScannerEvent, ScannerState, notify

__all__ = ["EventCallback", "ScannerBase"]

EventCallback = Callable[[ScannerEvent], None]


class _Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...

    def release(self) -> None: ...

    def __enter__(self) -> bool: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...


class ScannerBase(ABC):
    """Decoded codes from one input device, surviving its loss and return.

    ``read(deadline)`` returns the next accepted code or ``None`` when the deadline
    passes, the scanner was closed or its input ended; iterating yields codes until
    :meth:`close`. Only one thread should read; any thread may call :meth:`close`, and
    :meth:`counters` / :attr:`state` at any time. ``close()`` is final: a reopen that
    completes afterwards changes nothing.

    Subclasses set the class attributes and implement :meth:`_open`, :meth:`_is_open`,
    :meth:`_read_some` and :meth:`_release`.
    """

    _NOUN: ClassVar[str]
    """How log lines name the device (``scanner``, ``camera``)."""
    _UNAVAILABLE: ClassVar[type[SscardError]]
    """What :meth:`_open` raises when the device cannot be opened (yet)."""
    _REENTRANT_READS: ClassVar[bool] = False
    """Whether a listener may call :meth:`close` inside ``read()`` and have it release the
    device at once (the reading thread then holds the lock close() takes)."""
    _CLOSE_WAIT_S: ClassVar[float] = -1.0
    """How long :meth:`close` waits for a reader to let go of the device (-1: until it
    does, for devices whose reads :meth:`_interrupt` can cut short). After that the
    reader releases the device on its way out."""
    _log: ClassVar[logging.Logger]

    def __init__(
        self,
        *,
        code_filter: CodeFilter,
        reconnect_interval: float,
        on_event: EventCallback | None,
    ) -> None:
        self.reconnect_interval = reconnect_interval
        self._filter = code_filter
        self._on_event = on_event
        self._ready: list[ScannedCode] = []
        self._closed = threading.Event()
        # Held by the reading thread while it uses the device.
        self._io_lock: _Lock = threading.RLock() if self._REENTRANT_READS else threading.Lock()
        # close() need not wait for a reader stuck in a device call, so both may change
        # the state: this lock makes CLOSED final.
        self._state_lock = threading.Lock()
        self._state = ScannerState.LOST
        self._ever_connected = False
        self._next_attempt = 0.0

    # -- what a device implements ------------------------------------------------------

    @property
    @abstractmethod
    def source(self) -> str:
        """The name this device puts on its codes (``serial:<path>``, ``camera:<source>``)."""

    @property
    @abstractmethod
    def _display(self) -> str:
        """The device as logs and ``repr`` show it (never a password)."""

    @abstractmethod
    def _open(self) -> None:
        """Open the device (raise ``_UNAVAILABLE`` when it cannot be opened)."""

    @abstractmethod
    def _is_open(self) -> bool:
        """Whether the device is open now."""

    @abstractmethod
    def _read_some(self, deadline: Deadline) -> None:
        """Read once from the open device, queueing accepted codes with :meth:`_accept`
        and calling :meth:`_lost` when the device went away."""

    @abstractmethod
    def _release(self) -> None:
        """Close the device if it is open; idempotent."""

    def _interrupt(self) -> None:
        """Wake a reader blocked in the device, from another thread (default: cannot)."""
        return

    def _ended(self) -> bool:
        """Whether the input has ended for good (a video file at its end)."""
        return False

    # -- public API ---------------------------------------------------------------------

    @property
    def state(self) -> ScannerState:
        return self._state

    def counters(self) -> InputCounters:
        """Accepted, duplicate and discarded reads, losses and returns so far."""
        return self._filter.counters()

    def read(self, deadline: Deadline) -> ScannedCode | None:
        """The next accepted code; ``None`` at the deadline, on close, or at end of input."""
        with self._io_lock:
            try:
                while not self._closed.is_set():
                    if self._ready:
                        return self._ready.pop(0)
                    if self._ended() or deadline.expired:
                        return None
                    if not self._is_open():
                        self._wait_and_reconnect(deadline)
                        continue
                    self._read_some(deadline)
                return None
            finally:
                if self._closed.is_set():
                    self._release()

    def __iter__(self) -> Iterator[ScannedCode]:
        """Codes until :meth:`close` is called (from any thread) or the input ends."""
        while not self._closed.is_set() and not (self._ended() and not self._ready):
            code = self.read(Deadline.never())
            if code is not None:
                yield code

    def close(self) -> None:
        """Stop reading and release the device; safe from any thread, idempotent."""
        self._closed.set()
        self._interrupt()
        if self._io_lock.acquire(timeout=self._CLOSE_WAIT_S):
            try:
                self._release()
            finally:
                self._io_lock.release()
        self._transition(ScannerState.CLOSED, "scanner-closed", "")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._display!r}, state={self._state.value})"

    # -- for subclasses -----------------------------------------------------------------

    def _connect(self) -> None:
        """Open the device and report it connected (or back)."""
        self._open()
        back = self._ever_connected
        self._ever_connected = True
        self._transition(ScannerState.CONNECTED, "scanner-back" if back else "scanner-connected",
                         "", count="back" if back else None)

    def _lost(self, why: str) -> None:
        """The open device went away: release it, schedule a reopen, report the loss."""
        self._release()
        self._next_attempt = time.monotonic() + self.reconnect_interval
        self._transition(ScannerState.LOST, "scanner-lost", why, count="lost")

    def _accept(self, payload: bytes) -> None:
        """Pass one decoded payload through the filter; queue it if accepted."""
        code = self._filter.accept(payload, self.source)
        if code is not None:
            self._ready.append(code)

    def _wait_and_reconnect(self, deadline: Deadline) -> None:
        wait = self._next_attempt - time.monotonic()
        if wait > 0:
            # An Event wait, so close() from another thread ends it at once.
            self._closed.wait(min(wait, deadline.remaining()))
            return
        self._next_attempt = time.monotonic() + self.reconnect_interval
        try:
            self._connect()
        except self._UNAVAILABLE as exc:
            self._log.debug("%s %s still unavailable: %s", self._NOUN, self._display, exc)

    def _transition(self, state: ScannerState, kind: str, detail: str, *,
                    count: str | None = None) -> bool:
        """Move to ``state``, count ``count`` (``lost``/``back``) and report it; False
        (nothing happens) once closed."""
        with self._state_lock:
            if self._state is ScannerState.CLOSED:
                return False
            previous, self._state = self._state, state
            if count is not None:
                self._filter.count_event(count)
        self._log.info("%s %s: %s -> %s (%s) %s", self._NOUN, self._display, previous, state,
                       kind, detail)
        notify(self._on_event, kind, self.source, detail, self._log)
        return True
