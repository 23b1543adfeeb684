"""One lane's explicit state machine: a reader or a scanner, from waiting to showing.

Every reader and every scanner the daemon serves is a *lane*. A lane is always in exactly
one of the states below, moves only along the edges of :data:`TRANSITIONS`, logs every
move (never with personal data: the reason is a fixed phrase or an error class name) and
counts it, so a status page or a metrics exporter can read how often a lane was lost, how
many taps it decided and where it is now::

                 ┌──────────── card left before the read ──────────┐
                 ▼                                                 │
    idle ──► card_present ──► reading ──► deciding ──► showing ──► waiting_for_removal
     ▲ ▲           ▲             │ card pulled: nothing decided        │   │    │
     │ │           │             ▼                                     │   │    │
     │ └───────────┼──────────  idle                                   │   │    │
     │             └─── another card (pcsc-lite's event counter moved) ─┘   │    │
     │                                                                      │    │
     └──────────────────────────── card removed ────────────────────────────┘    │
                                                                                 │
    any state ──(reader, pcscd or scanner gone)──► lost ──► recovering ──► idle
                                                    ▲            │ attempt failed
                                                    └────────────┘ (backoff, capped)

A scanner lane skips ``card_present`` (a code arrives whole) and ``waiting_for_removal``
(nothing to remove): ``idle -> reading -> deciding -> showing -> idle``.

Recovery retries with exponential backoff whose cap keeps a lane that can come back within
:data:`RECOVERY_DEADLINE_S` of the hardware returning (issue 17: back within 2 s).

Pure logic: no I/O, the clock injected. :mod:`.app` drives it.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping

__all__ = [
    "RECOVERY_DEADLINE_S",
    "TRANSITIONS",
    "Backoff",
    "IllegalTransitionError",
    "LaneKind",
    "LaneState",
    "LaneStateMachine",
]

log = logging.getLogger(__name__)

RECOVERY_DEADLINE_S = 2.0
"""A lane whose hardware is back is itself back within this many seconds."""


class LaneKind(enum.Enum):
    CARD = "card"          # a PC/SC or sim: reader (and its card)
    SCANNER = "scanner"    # a serial scanner or a camera (a code)


class LaneState(enum.Enum):
    IDLE = "idle"
    CARD_PRESENT = "card_present"
    READING = "reading"
    DECIDING = "deciding"
    SHOWING = "showing"
    WAITING_FOR_REMOVAL = "waiting_for_removal"
    LOST = "lost"
    RECOVERING = "recovering"


_S = LaneState

TRANSITIONS: Mapping[LaneState, frozenset[LaneState]] = {
    # A scanner lane goes from idle straight to reading (the code is its "card").
    _S.IDLE: frozenset({_S.CARD_PRESENT, _S.READING, _S.LOST}),
    _S.CARD_PRESENT: frozenset({_S.READING, _S.IDLE, _S.LOST}),
    # A read that failed (card pulled, garbled) goes back to idle: nothing partial is
    # ever decided. A read-level refusal that is journaled and shown goes via deciding.
    _S.READING: frozenset({_S.DECIDING, _S.IDLE, _S.WAITING_FOR_REMOVAL, _S.LOST}),
    _S.DECIDING: frozenset({_S.SHOWING, _S.IDLE, _S.LOST}),
    # Card lanes wait for the card to leave; scanner lanes (or a card already gone) idle.
    _S.SHOWING: frozenset({_S.WAITING_FOR_REMOVAL, _S.IDLE, _S.LOST}),
    # A card removed and another inserted between two polls is a new card_present.
    _S.WAITING_FOR_REMOVAL: frozenset({_S.IDLE, _S.CARD_PRESENT, _S.LOST}),
    _S.LOST: frozenset({_S.RECOVERING}),
    _S.RECOVERING: frozenset({_S.IDLE, _S.LOST}),
}
"""Every legal move; anything else raises :class:`IllegalTransitionError`."""


class IllegalTransitionError(RuntimeError):
    """A move the table does not allow: a bug in the daemon, never bad input.

    Deliberately outside :class:`~sscard_terminal.errors.SscardError`: no caller should
    catch it as an operational condition.
    """


class Backoff:
    """Exponential backoff between recovery attempts, capped.

    ``initial`` doubles (``factor``) after each failed attempt up to ``cap``. The cap must
    stay below :data:`RECOVERY_DEADLINE_S`, so when the hardware returns the next attempt
    comes within ``cap`` seconds.
    """

    def __init__(self, *, initial: float = 0.05, factor: float = 2.0, cap: float = 1.0) -> None:
        if not 0 < initial <= cap:
            raise ValueError("backoff needs 0 < initial <= cap")
        if factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if cap >= RECOVERY_DEADLINE_S:
            raise ValueError(f"backoff cap {cap} s would keep a lane down past "
                             f"{RECOVERY_DEADLINE_S} s")
        self.initial = initial
        self.factor = factor
        self.cap = cap
        self._next = initial

    def next_delay(self) -> float:
        """The wait before the next attempt; each call lengthens the following one."""
        delay = self._next
        self._next = min(self.cap, self._next * self.factor)
        return delay

    def reset(self) -> None:
        self._next = self.initial


class LaneStateMachine:
    """The state of one lane, its legal moves, its counters. Thread-safe."""

    def __init__(self, name: str, kind: LaneKind, *,
                 clock: Callable[[], float] = time.monotonic,
                 backoff: Backoff | None = None) -> None:
        self.name = name
        self.kind = kind
        self._clock = clock
        self.backoff = backoff or Backoff()
        self._lock = threading.Lock()
        self._state = LaneState.IDLE
        self._since = clock()
        self._counters: dict[str, int] = {}
        self.listener: Callable[[str, LaneState, LaneState, str], None] | None = None
        """Told ``(lane, left, entered, why)`` after every move, in the mover's thread
        (the daemon publishes it as a ``lane`` event); it must not block."""

    @property
    def state(self) -> LaneState:
        with self._lock:
            return self._state

    def seconds_in_state(self) -> float:
        with self._lock:
            return self._clock() - self._since

    def can(self, target: LaneState) -> bool:
        with self._lock:
            return target in TRANSITIONS[self._state]

    def to(self, target: LaneState, why: str) -> LaneState:
        """Move to ``target``; ``why`` is a fixed phrase or an error class name, never
        card data. Returns the state left. Raises :class:`IllegalTransitionError`."""
        with self._lock:
            source = self._state
            if target not in TRANSITIONS[source]:
                raise IllegalTransitionError(
                    f"lane {self.name}: {source.value} -> {target.value} is not allowed "
                    f"({why})")
            now = self._clock()
            held = now - self._since
            self._state = target
            self._since = now
            self._count(f"transition.{source.value}.{target.value}")
            self._count(f"entered.{target.value}")
            if target is LaneState.IDLE and source is LaneState.RECOVERING:
                self.backoff.reset()
                self._count("recovered")
        level = logging.WARNING if target is LaneState.LOST else logging.INFO
        log.log(level, "lane %s: %s -> %s after %.3f s (%s)", self.name, source.value,
                target.value, held, why, extra={"lane": self.name})
        listener = self.listener
        if listener is not None:
            try:
                listener(self.name, source, target, why)
            except Exception:
                log.exception("lane %s: state listener failed", self.name)
        return source

    def count(self, name: str, by: int = 1) -> None:
        """Count an event that is not a move (a presentation decided, a swap seen)."""
        with self._lock:
            self._count(name, by)

    def counters(self) -> dict[str, int]:
        """A copy, keyed ``transition.<from>.<to>``, ``entered.<state>``, ``recovered``
        and whatever :meth:`count` was given."""
        with self._lock:
            return dict(self._counters)

    def _count(self, name: str, by: int = 1) -> None:
        self._counters[name] = self._counters.get(name, 0) + by
