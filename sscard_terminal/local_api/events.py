"""The event hub: what the daemon decides, fanned out to whoever watches.

The daemon's lanes call :meth:`EventHub.publish` from their worker threads with
``Presentation.event()`` (and lane or gate state changes); subscribers on the event loop
(the ``/events`` WebSocket, the Unix socket's ``events`` function, the passenger display,
``sscard events``) each read their own bounded queue. The publisher never waits for a
subscriber: a subscriber that falls behind loses the oldest events and is told how many
(a ``lagged`` event), and one that stops reading costs only its own queue.

Every event is screened before it is stored or sent: only the documented fields of its
type pass (an unknown field is dropped and logged by name, never by value), free-text
fields that carry something shaped like an ID number or a card number are masked, and
reasons are the stable codes of the decision engine and the presentation pipeline.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from ..privacy import mask_text

__all__ = [
    "EVENT_FIELDS",
    "EventHub",
    "Subscription",
    "pump",
    "screen_event",
]

_log = logging.getLogger(__name__)

_PRESENTATION_FIELDS = frozenset({
    "channel", "lane", "outcome", "reason", "message", "online", "transaction_id",
    "elapsed_ms", "fare_percent", "concession", "replayed", "authenticated_by",
    "ecode_reason", "holder", "journaled",
    # From issue 19's shared message table (its branch adds them to Presentation.event()):
    "display", "authentication", "notices",
    # Added by the daemon for the passenger display, when the profile allows:
    "display_name", "renewal_due",
})

EVENT_FIELDS: Mapping[str, frozenset[str]] = {
    "presentation": _PRESENTATION_FIELDS,
    "lane": frozenset({"lane", "state", "previous", "fault"}),
    "gate": frozenset({"lane", "state", "fault"}),
    "central": frozenset({"link", "circuit"}),
}
"""The fields each event type may carry (besides ``type``, ``seq`` and ``at``, which the
hub sets). docs/local-api.yaml describes each; a test holds the two together."""

_FREE_TEXT = ("message", "holder", "display_name", "fault", "lane")
# 15- or 18-character ID numbers, and the 9-character card number (a letter and 8
# digits), standing alone: what must never leave the terminal in clear.
_PERSONAL = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15}|[A-Z]\d{8})(?![0-9A-Za-z])")

DEFAULT_QUEUE = 256


def screen_event(kind: str, event: Mapping[str, Any]) -> dict[str, Any]:
    """``event`` reduced to its type's documented fields, clear personal data masked.

    Raises :class:`ValueError` for an unknown event type (a bug of the publisher)."""
    allowed = EVENT_FIELDS.get(kind)
    if allowed is None:
        raise ValueError(f"unknown event type {kind!r}; known: {', '.join(EVENT_FIELDS)}")
    dropped = sorted(str(key) for key in event if key not in allowed)
    if dropped:
        _log.warning("%s event: undocumented fields dropped: %s", kind, ", ".join(dropped))
    screened: dict[str, Any] = {}
    for key, value in event.items():
        if key not in allowed:
            continue
        if key in _FREE_TEXT and isinstance(value, str) and _PERSONAL.search(value):
            _log.warning("%s event: field %s held clear personal data; masked", kind, key)
            screened[key] = _PERSONAL.sub(lambda match: mask_text(match.group(0)), value)
        else:
            screened[key] = value
    return screened


class Subscription:
    """One subscriber's queue, bound to the event loop that created it.

    Async-iterate it (or call :meth:`next`); :meth:`close` ends it. When more than
    ``size`` events wait, the oldest are dropped and the next read returns
    ``{"type": "lagged", "missed": n}`` before the newest events.
    """

    def __init__(self, hub: EventHub, size: int, loop: asyncio.AbstractEventLoop) -> None:
        self._hub = hub
        self._queue: collections.deque[dict[str, Any]] = collections.deque()
        self._size = size
        self._missed = 0
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._loop = loop
        self.closed = False

    def _offer(self, event: dict[str, Any]) -> None:
        """Called by any thread; never blocks beyond a short lock."""
        with self._lock:
            if len(self._queue) >= self._size:
                self._queue.popleft()
                self._missed += 1
            self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._ready.set()
        else:
            try:
                self._loop.call_soon_threadsafe(self._ready.set)
            except RuntimeError:
                pass  # the subscriber's loop is closed: it reads no more

    async def next(self) -> dict[str, Any] | None:
        """The next event, or None once closed."""
        while True:
            with self._lock:
                if self._missed:
                    missed, self._missed = self._missed, 0
                    return {"type": "lagged", "missed": missed}
                if self._queue:
                    return self._queue.popleft()
                self._ready.clear()
            if self.closed:
                return None
            await self._ready.wait()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub._forget(self)
            self._wake()

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[dict[str, Any]]:
        while (event := await self.next()) is not None:
            yield event


class EventHub:
    """Fan-out of screened events; :meth:`publish` from any thread."""

    def __init__(self, *, queue_size: int = DEFAULT_QUEUE,
                 clock: Callable[[], float] = time.time) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be at least 1")
        self._queue_size = queue_size
        self._clock = clock
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._seq = itertools.count(1)
        self._last_decision: dict[str, Any] | None = None
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        self.published = 0

    def add_listener(self, listener: Callable[[dict[str, Any]], None]) -> None:
        """Call ``listener(event)`` in the publisher's thread for every event (metrics);
        it must be quick and must not block. Its exceptions are logged, not raised."""
        with self._lock:
            self._listeners.append(listener)

    def publish(self, event: Mapping[str, Any], kind: str = "presentation") -> dict[str, Any]:
        """Screen ``event``, stamp it (``type``, ``seq``, ``at`` in Unix seconds) and hand
        it to every subscriber; returns what was sent."""
        screened = screen_event(kind, event)
        with self._lock:
            stamped = {"type": kind, "seq": next(self._seq),
                       "at": round(self._clock(), 3), **screened}
            if kind == "presentation":
                self._last_decision = stamped
            self.published += 1
            # Under the lock, so that every subscriber sees the events in seq order;
            # an offer never waits on its subscriber (a deque append and a wake-up).
            for subscriber in self._subscribers:
                subscriber._offer(stamped)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(stamped)
            except Exception:
                _log.exception("event listener failed")
        return stamped

    def publish_presentation(self, lane: str, event: Mapping[str, Any]) -> None:
        """The daemon's lane hook (``publish(lane, result.event())``): a presentation
        event, stamped with its lane."""
        self.publish({**event, "lane": lane})

    def subscribe(self, *, queue_size: int | None = None) -> Subscription:
        """A new subscription; call on the event loop that will read it."""
        subscription = Subscription(self, queue_size or self._queue_size,
                                    asyncio.get_running_loop())
        with self._lock:
            self._subscribers.append(subscription)
        return subscription

    @property
    def last_decision(self) -> dict[str, Any] | None:
        """The last presentation event, as sent (None before the first)."""
        with self._lock:
            return None if self._last_decision is None else dict(self._last_decision)

    @property
    def subscriber_count(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def _forget(self, subscription: Subscription) -> None:
        with self._lock:
            if subscription in self._subscribers:
                self._subscribers.remove(subscription)


async def pump(subscription: Subscription,
               send: Callable[[dict[str, Any]], Awaitable[None]],
               until: asyncio.Future[Any]) -> None:
    """Send ``subscription``'s events with ``send`` until ``until`` is done (the client
    went away) or the subscription closes; closes the subscription in every case."""
    try:
        while not until.done():
            getter = asyncio.ensure_future(subscription.next())
            await asyncio.wait({getter, until}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                return
            event = getter.result()
            if event is None:
                return
            await send(event)
    finally:
        subscription.close()
