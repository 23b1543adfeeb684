"""Card events from pcscd for the daemon's PC/SC lanes.

The driver's :class:`~sscard_terminal.drivers.pcsc.ReaderMonitor` owns the monitoring
loop (its own thread and PC/SC context, re-established when pcscd comes back); this
adapter posts its events onto the daemon's event loop, where the router hands them to the
lane of the reader concerned. pcscd going away is one event for every PC/SC lane.
"""

from __future__ import annotations

import asyncio
import logging

from ..drivers.pcsc import ReaderEvent, ReaderEventKind, ReaderMonitor, list_readers
from ..errors import ReaderError
from .config import LaneConfig
from .sources import CardEventSink

__all__ = ["PcscEventSource"]

log = logging.getLogger(__name__)


class PcscEventSource:
    """Feeds every PC/SC lane (by exact name or prefix) from one reader monitor."""

    def __init__(self) -> None:
        self._monitor: ReaderMonitor | None = None

    def handles(self, lane: LaneConfig) -> bool:
        return lane.reads_cards and not lane.is_sim

    def start(self, loop: asyncio.AbstractEventLoop, sink: CardEventSink) -> None:
        def post(event: ReaderEvent) -> None:        # on the monitor's thread
            loop.call_soon_threadsafe(self._deliver, event, sink)

        self._monitor = ReaderMonitor(on_event=post).start()

    @staticmethod
    def _deliver(event: ReaderEvent, sink: CardEventSink) -> None:
        kind = event.kind
        if kind is ReaderEventKind.CARD_INSERTED:
            sink.card_inserted(event.reader, event.at)
        elif kind is ReaderEventKind.CARD_REMOVED:
            sink.card_removed(event.reader)
        elif kind is ReaderEventKind.READER_REMOVED:
            sink.reader_lost(event.reader, "reader unplugged")
        elif kind is ReaderEventKind.READER_LOST:
            sink.reader_lost(None, "pcscd gone")
        elif kind is ReaderEventKind.READER_ADDED:
            sink.reader_back(event.reader)
        elif kind is ReaderEventKind.READER_BACK:
            sink.reader_back(None)

    def probe(self, reader: str) -> bool:
        """Whether a reader named ``reader`` (or starting with it) is listed by pcscd."""
        try:
            names = [info.name for info in list_readers()]
        except ReaderError:
            return False
        return any(name == reader or name.startswith(reader) for name in names)

    def stop(self) -> None:
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None
