"""A card lane: one reader, its events, its presentations, its recovery.

The lane runs as one asyncio task. Reader events (a card inserted or removed, the reader
or pcscd lost or back) arrive through the ``card_*``/``reader_*`` methods, called on the
event loop's thread; they only record what happened and wake the task. The task moves the
:class:`~.lane.LaneStateMachine` and hands the blocking work (opening the card, the whole
presentation, probing a lost reader) to a worker thread, so the loop never blocks.

Insertions are *counted*, not flagged: a card removed and another inserted between two
polls (pcsc-lite's event counter moved) is a second insertion, so it is a second tap, even
though the lane never saw the reader empty.

A presentation holds the runtime (shared; a reload waits for it) and the reader's lock
(shared with the local API) from opening the card to closing it. A presentation that
raises (a bug in a part, the reader gone while opening) never takes the lane down: the
error is logged by class, the lane goes lost or back to idle, and the other lanes go on
deciding.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from contextlib import AbstractContextManager

from ..deadline import Deadline
from ..errors import ReaderError, SscardError
from .config import LaneConfig, LaneInput
from .lane import Backoff, LaneKind, LaneState, LaneStateMachine
from .presenter import PresentationResult, Runtime

__all__ = ["OPEN_CARD_BUDGET_S", "READER_WAIT_S", "CardLane"]

log = logging.getLogger(__name__)

OPEN_CARD_BUDGET_S = 1.0
"""Connecting to a card that pcscd just reported; longer means the reader is in trouble."""

READER_WAIT_S = 0.5
"""How long a tap waits for the reader while the local API uses it, then leaves it."""

_S = LaneState


class _ReaderBusyError(Exception):
    """The reader's lock stayed taken (the local API holds the card)."""


class CardLane:
    """One reader's lane (PC/SC by name or prefix, or ``sim:``)."""

    def __init__(
        self,
        config: LaneConfig,
        *,
        runtime: Callable[[], AbstractContextManager[Runtime]],
        executor: Executor,
        reader_lock: threading.Lock,
        publish: Callable[[str, Mapping[str, object]], None],
        probe: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
    ) -> None:
        if not config.reads_cards:
            raise ValueError(f"lane {config.name} does not read cards")
        self.config = config
        self.name = config.name
        self.machine = LaneStateMachine(config.name, LaneKind.CARD, clock=clock,
                                        backoff=backoff)
        self._runtime = runtime
        self._executor = executor
        self._lock = reader_lock
        self._publish = publish
        self._probe = probe
        self._clock = clock
        # The exact reader; a prefix lane learns it from the first event that matches.
        self._reader: str | None = (config.target if config.input is LaneInput.READER
                                    else None)
        self._card: str | None = self._reader
        self._present = False
        self._insertions = 0
        self._handled = 0
        self._arrived_at = 0.0
        self._lost: str | None = None
        self._stopping = False
        self._wake = asyncio.Event()

    # --- events (called on the loop's thread) -------------------------------------------

    def matches(self, reader: str) -> bool:
        if self.config.input is LaneInput.READER:
            return reader == self.config.target
        return reader.startswith(self.config.target)

    def card_inserted(self, reader: str, at: float, card: str | None = None) -> None:
        """A card arrived at ``at`` (monotonic, when the source saw it): a new tap.
        ``card`` names what to open when it is not ``reader`` (a ``sim:`` holder)."""
        self._reader = reader
        self._card = card or reader
        self._present = True
        self._insertions += 1
        self._arrived_at = at
        self._wake.set()

    def card_removed(self, reader: str) -> None:
        self._present = False
        self._wake.set()

    def reader_lost(self, why: str) -> None:
        """The reader (or pcscd) went away; ``why`` is a fixed phrase or an error class."""
        self._present = False
        self._lost = why
        self._wake.set()

    def reader_back(self, reader: str | None = None) -> None:
        if reader is not None:
            self._reader = reader
        self._wake.set()           # a lost lane tries again now rather than after backoff

    def stop(self) -> None:
        """Take no new presentation; the one in progress finishes."""
        self._stopping = True
        self._wake.set()

    # --- state for the health check and status ------------------------------------------

    @property
    def current_card(self) -> str:
        """What to open for the card on this lane's reader now (the reader's name, or a
        ``sim:`` reader's holder); the local API reads through it."""
        return self._card or self.config.target

    @property
    def busy_for(self) -> float:
        """Seconds the lane has been inside one presentation (0 when not)."""
        if self.machine.state in (_S.READING, _S.DECIDING):
            return self.machine.seconds_in_state()
        return 0.0

    # --- the task -------------------------------------------------------------------------

    async def run(self) -> None:
        while not self._stopping:
            if self._lost is not None:
                await self._recover()
                continue
            state = self.machine.state
            if self._insertions > self._handled and state in (_S.IDLE, _S.WAITING_FOR_REMOVAL):
                await self._present_card()
                continue
            if state is _S.WAITING_FOR_REMOVAL and not self._present:
                self.machine.to(_S.IDLE, "card removed")
                continue
            self._wake.clear()
            await self._wake.wait()

    async def _present_card(self) -> None:
        if self._insertions - self._handled > 1:
            self.machine.count("insertions.coalesced", self._insertions - self._handled - 1)
        self._handled = self._insertions
        arrived_at, reader = self._arrived_at, self._card
        swap = self.machine.state is _S.WAITING_FOR_REMOVAL
        self.machine.to(_S.CARD_PRESENT, "another card" if swap else "card inserted")
        if not self._present or reader is None:
            self.machine.to(_S.IDLE, "card left before the read")
            return
        self.machine.to(_S.READING, "reading")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self._present_blocking,
                                                reader, arrived_at)
        except _ReaderBusyError:
            self.machine.count("presentations.reader_busy")
            self.machine.to(_S.IDLE, "reader busy with the local API")
            return
        except ReaderError as exc:
            self.machine.count("presentations.reader_failed")
            self._lost = self._lost or type(exc).__name__
            self.machine.to(_S.LOST, type(exc).__name__)
            return
        except SscardError as exc:
            # Opening failed with the card gone or garbled: nothing was read or decided.
            self.machine.count("presentations.not_opened")
            self.machine.to(_S.IDLE, type(exc).__name__)
            return
        except Exception as exc:
            # A bug in a part must not end the lane; its class is logged, never card data.
            log.error("lane %s: presentation failed with %s", self.name, type(exc).__name__,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            self.machine.count("presentations.crashed")
            self.machine.to(_S.IDLE, type(exc).__name__)
            return
        self._show(result)

    def _present_blocking(self, reader: str, arrived_at: float) -> PresentationResult:
        """In a worker thread: the whole presentation under the reader's lock."""
        with self._runtime() as runtime:
            # The local API may hold this reader for a HIS read (the two-step keeps it up
            # to its session timeout): do not queue a tap behind that.
            if not self._lock.acquire(timeout=READER_WAIT_S):
                raise _ReaderBusyError
            try:
                transport = runtime.open_card(reader, Deadline.after(OPEN_CARD_BUDGET_S))
                try:
                    return runtime.presenter.present_card(transport, arrived_at=arrived_at,
                                                          lane=self.name)
                finally:
                    transport.close()
            finally:
                self._lock.release()

    def _show(self, result: PresentationResult) -> None:
        decided = getattr(result, "decision", None) is not None
        if decided:
            self.machine.to(_S.DECIDING, "read complete")
            self.machine.to(_S.SHOWING, "accepted" if result.accepted else "refused")
        self.machine.count("presentations.accepted" if result.accepted
                           else "presentations.refused")
        self._publish(self.name, result.event())
        if self._lost is not None:
            self.machine.to(_S.LOST, self._lost)
        elif self._present and self._insertions == self._handled:
            self.machine.to(_S.WAITING_FOR_REMOVAL, "card still there")
        elif self._insertions > self._handled and self._present:
            # Swapped while we decided: the new card is handled from waiting_for_removal.
            self.machine.to(_S.WAITING_FOR_REMOVAL, "another card arrived")
        else:
            self.machine.to(_S.IDLE, "card gone" if decided else "card pulled mid-read")

    async def _recover(self) -> None:
        if self.machine.state not in (_S.LOST, _S.RECOVERING):
            self.machine.to(_S.LOST, self._lost or "lost")
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stopping:
            attempt += 1
            self._wake.clear()
            self.machine.to(_S.RECOVERING, f"attempt {attempt}")
            reader = self._reader or self.config.target
            try:
                back = await loop.run_in_executor(self._executor, self._probe, reader)
            except Exception as exc:
                log.warning("lane %s: probing the reader failed with %s", self.name,
                            type(exc).__name__)
                back = False
            if back:
                self._lost = None
                self.machine.to(_S.IDLE, "reader back")
                return
            self.machine.to(_S.LOST, "still unavailable")
            delay = self.machine.backoff.next_delay()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            except TimeoutError:
                pass
