"""How card events reach the daemon: a source (pcscd, the ``sim:`` control directory)
posts to a sink (the daemon's router, which hands each event to its lane)."""

from __future__ import annotations

import asyncio
from typing import Protocol

from .config import LaneConfig

__all__ = ["CardEventSink", "CardEventSource"]


class CardEventSink(Protocol):
    """Where a card event source delivers (on the event loop's thread)."""

    def card_inserted(self, reader: str, at: float, card: str | None = None) -> None:
        """A card arrived on ``reader`` at ``at`` (monotonic); ``card`` is the name to
        open it by when that is not the reader's own (a ``sim:`` reader's holder)."""
        ...

    def card_removed(self, reader: str) -> None: ...

    def reader_lost(self, reader: str | None, why: str) -> None: ...

    def reader_back(self, reader: str | None) -> None: ...


class CardEventSource(Protocol):
    """Reader and card events from some hardware (PC/SC, ``sim:``), posted to a sink.

    ``start`` is called on the loop; a source with threads posts through
    ``loop.call_soon_threadsafe``. ``probe(reader)`` answers, from a worker thread,
    whether ``reader`` is usable now (for a lost lane's recovery)."""

    def handles(self, lane: LaneConfig) -> bool: ...

    def start(self, loop: asyncio.AbstractEventLoop, sink: CardEventSink) -> None: ...

    def probe(self, reader: str) -> bool: ...

    def stop(self) -> None: ...
