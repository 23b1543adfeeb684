"""A scanner lane: one serial QR scanner, its codes, its presentations.

The driver (:class:`~sscard_terminal.drivers.serial_qr.SerialQrScanner`) already frames
codes, drops fragments, suppresses a code read twice in a row and reopens the port after
an unplug (by its ``/dev/serial/by-id`` name, every half second). Its blocking reads run
in a thread of this lane's own; each code is posted to the event loop with the moment it
was read, where the lane task hands it to the presenter in a worker thread, so the one
deadline of the presentation starts when the code arrived, not when a worker was free.

Codes queue while one is being decided, up to :data:`MAX_WAITING_CODES`; a scanner (or
something pretending to be one) that floods beyond that has the excess dropped and
counted, never an unbounded queue. A scanner that is missing at start-up is waited for:
the lane starts lost and says why in one line.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from contextlib import AbstractContextManager

from ..deadline import Deadline
from ..drivers.code_filter import ScannerEvent
from ..drivers.serial_qr import SerialQrScanner
from .config import LaneConfig, LaneInput
from .lane import LaneKind, LaneState, LaneStateMachine
from .presenter import PresentationResult, Runtime

__all__ = ["MAX_WAITING_CODES", "ScannerLane"]

log = logging.getLogger(__name__)

MAX_WAITING_CODES = 8
_READ_SLICE_S = 0.5        # how often the reading thread looks at the stop flag
_S = LaneState


class ScannerLane:
    """One serial scanner's lane."""

    def __init__(
        self,
        config: LaneConfig,
        *,
        runtime: Callable[[], AbstractContextManager[Runtime]],
        executor: Executor,
        publish: Callable[[str, Mapping[str, object]], None],
    ) -> None:
        if config.input is not LaneInput.SCANNER:
            raise ValueError(f"lane {config.name} is not a serial scanner lane")
        self.config = config
        self.name = config.name
        self.machine = LaneStateMachine(config.name, LaneKind.SCANNER)
        self._runtime = runtime
        self._executor = executor
        self._publish = publish
        self._codes: collections.deque[tuple[str, float]] = collections.deque()
        self._lost: str | None = None
        self._back = False
        self._stopping = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._scanner: SerialQrScanner | None = None
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    # --- the reading thread --------------------------------------------------------------

    def start_reading(self, loop: asyncio.AbstractEventLoop) -> None:
        """Open the scanner (waiting for it if it is not there) and start its thread."""
        self._loop = loop
        self._scanner = SerialQrScanner(self.config.target,
                                        baudrate=self.config.baudrate or 9600,
                                        wait_for_device=True, on_event=self._device_event)
        if self._scanner.state.value != "connected":
            self._post(self.device_lost, "scanner not found at start-up (unplugged, or not "
                                         "in CDC/virtual COM mode?)")
        self._thread = threading.Thread(target=self._read_loop, daemon=True,
                                        name=f"sscard-scanner-{self.name}")
        self._thread.start()

    def _read_loop(self) -> None:
        scanner = self._scanner
        assert scanner is not None
        while not self._closed.is_set():
            try:
                code = scanner.read(Deadline.after(_READ_SLICE_S))
            except Exception as exc:          # a driver bug must not end the thread
                log.error("lane %s: scanner read failed with %s", self.name,
                          type(exc).__name__)
                self._closed.wait(_READ_SLICE_S)
                continue
            if code is not None:
                self._post(self.code_scanned, code.text, code.at_monotonic)

    def _device_event(self, event: ScannerEvent) -> None:      # on the reading thread
        if event.kind == "scanner-lost":
            self._post(self.device_lost, event.detail or "scanner lost")
        elif event.kind in ("scanner-back", "scanner-connected"):
            self._post(self.device_back)

    def _post(self, method: Callable[..., None], *args: object) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(method, *args)

    def stop_reading(self) -> None:
        self._closed.set()
        if self._scanner is not None:
            self._scanner.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)

    # --- events (on the loop's thread) -------------------------------------------------

    def code_scanned(self, text: str, at: float) -> None:
        if self._stopping:
            return
        if len(self._codes) >= MAX_WAITING_CODES:
            self.machine.count("codes.dropped")
            return
        self._codes.append((text, at))
        self._wake.set()

    def device_lost(self, why: str) -> None:
        self._lost = why
        self._back = False
        self._wake.set()

    def device_back(self) -> None:
        self._back = True
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    @property
    def busy_for(self) -> float:
        if self.machine.state in (_S.READING, _S.DECIDING):
            return self.machine.seconds_in_state()
        return 0.0

    # --- the task ------------------------------------------------------------------------

    async def run(self) -> None:
        while not self._stopping:
            state = self.machine.state
            if self._lost is not None and state is _S.IDLE:
                self.machine.to(_S.LOST, self._lost)
                self.machine.to(_S.RECOVERING, "the driver reopens the port")
                continue
            if state is _S.RECOVERING and self._back:
                self._lost = None
                self._back = False
                self.machine.to(_S.IDLE, "scanner back")
                continue
            if state is _S.IDLE and self._codes:
                text, at = self._codes.popleft()
                await self._present(text, at)
                continue
            self._wake.clear()
            await self._wake.wait()

    def _present_blocking(self, text: str, arrived_at: float) -> PresentationResult:
        with self._runtime() as runtime:
            return runtime.presenter.present_code(text, arrived_at=arrived_at, lane=self.name)

    async def _present(self, text: str, arrived_at: float) -> None:
        self.machine.to(_S.READING, "code read")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self._present_blocking,
                                                text, arrived_at)
        except Exception as exc:
            log.error("lane %s: presentation failed with %s", self.name, type(exc).__name__,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            self.machine.count("presentations.crashed")
            self.machine.to(_S.IDLE, type(exc).__name__)
            return
        self.machine.to(_S.DECIDING, "code verified")
        self.machine.to(_S.SHOWING, "accepted" if result.accepted else "refused")
        self.machine.count("presentations.accepted" if result.accepted
                           else "presentations.refused")
        self._publish(self.name, result.event())
        self.machine.to(_S.IDLE, "shown")
