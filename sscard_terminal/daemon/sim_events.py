"""Card events for ``sim:`` lanes, so the daemon runs end to end with no pcscd.

A ``sim:`` reader has no hardware to tell it that a card arrived. Its events come from a
control directory, ``<state directory>/sim-readers/``, that a test, the demo or a
technician writes to:

- ``echo gen2-adult > sim-readers/front.new && mv sim-readers/front.new sim-readers/front``
  puts the virtual card of holder ``gen2-adult`` on reader ``sim:front``;
- replacing the file (a new inode) is a card removed and another inserted between two
  polls: a second tap, as pcsc-lite's event counter would report it;
- ``rm sim-readers/front`` takes the card away.

The card is opened as ``sim:<holder>`` through the runtime's card opener, like any other
reader name; this module never names the simulator. A poll every
:data:`POLL_INTERVAL_S` adds at most that much to a simulated tap's start, never to its
measured time: the deadline starts at the moment the poll saw the card.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from pathlib import Path

from .config import SIM_PREFIX, LaneConfig
from .sources import CardEventSink

__all__ = ["POLL_INTERVAL_S", "SIM_CONTROL_DIRECTORY", "SimReaderEvents"]

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 0.02
SIM_CONTROL_DIRECTORY = "sim-readers"
_MAX_HOLDER_CHARS = 64


class SimReaderEvents:
    """Feeds the ``sim:`` lanes from their control directory."""

    def __init__(self, directory: Path, *, poll_interval: float = POLL_INTERVAL_S) -> None:
        self.directory = directory
        self._interval = poll_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[str, tuple[int, int]] = {}

    def handles(self, lane: LaneConfig) -> bool:
        return lane.is_sim

    def start(self, loop: asyncio.AbstractEventLoop, sink: CardEventSink) -> None:
        self.directory.mkdir(mode=0o700, exist_ok=True)
        self._thread = threading.Thread(target=self._poll_loop, args=(loop, sink),
                                        daemon=True, name="sscard-sim-readers")
        self._thread.start()

    def probe(self, reader: str) -> bool:
        return self.directory.is_dir()      # a virtual reader is there as long as this is

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    def _poll_loop(self, loop: asyncio.AbstractEventLoop, sink: CardEventSink) -> None:
        while not self._stop.is_set():
            try:
                self._poll(loop, sink)
            except Exception as exc:     # a bad file must not end the simulated readers
                log.warning("sim readers: %s", type(exc).__name__)
            self._stop.wait(self._interval)

    def _poll(self, loop: asyncio.AbstractEventLoop, sink: CardEventSink) -> None:
        now: dict[str, tuple[int, int]] = {}
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.is_file() and not entry.name.endswith(".new"):
                    info = entry.stat()
                    now[entry.name] = (info.st_ino, info.st_mtime_ns)
        for name in sorted(set(self._seen) - set(now)):
            loop.call_soon_threadsafe(sink.card_removed, SIM_PREFIX + name)
        for name, identity in sorted(now.items()):
            if self._seen.get(name) == identity:
                continue
            at = time.monotonic()
            holder = self._holder(name)
            if holder is None:
                continue
            loop.call_soon_threadsafe(sink.card_inserted, SIM_PREFIX + name, at,
                                      SIM_PREFIX + holder)
        self._seen = now

    def _holder(self, name: str) -> str | None:
        try:
            text = (self.directory / name).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not text or len(text) > _MAX_HOLDER_CHARS or "/" in text:
            log.warning("sim reader %s: %r is not a holder name; ignored", name, text[:20])
            return None
        return text
