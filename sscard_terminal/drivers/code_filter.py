"""What every e-code input (serial scanner, camera) does to raw reads before passing them on.

A gate must never act on half a code, on line noise, or on the same phone read ten
times while it is held in front of the window. Both input drivers therefore run every
raw read through one :class:`CodeFilter`, so the rules (printable UTF-8 only, a length
cap, prefix/suffix stripping, a duplicate window) are the same whichever device
delivered the code, and every discarded read is counted rather than silently lost.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "CodeFilter",
    "DiscardReason",
    "InputCounters",
    "ScannedCode",
    "ScannerEvent",
    "ScannerState",
    "notify",
]

# Code texts are pseudonymous, but the national e-card's opaque codes are bearer tokens:
# a log line must not be enough to replay one, so repr shows only a short head.
_REPR_HEAD = 8
# A scanner held in front of one phone for a minute, reading ten times a second, still
# only keeps one entry; this cap bounds memory against a flood of distinct codes.
_DEDUP_MAX_ENTRIES = 1024


@dataclass(frozen=True)
class ScannedCode:
    """One decoded code: its text, which device read it, and when (``time.monotonic``)."""

    text: str
    source: str
    at_monotonic: float

    def __repr__(self) -> str:
        head = self.text[:_REPR_HEAD]
        return (
            f"ScannedCode(text={head!r}…[{len(self.text)} chars], source={self.source!r}, "
            f"at_monotonic={self.at_monotonic:.3f})"
        )


class DiscardReason(enum.StrEnum):
    """Why a raw read was not passed on."""

    INVALID_UTF8 = "invalid-utf8"
    NON_PRINTABLE = "non-printable"  # NUL, control characters, other binary
    OVERSIZED = "oversized"  # longer than max_length, or no terminator in time
    DUPLICATE = "duplicate"  # the same code again within the dedup window


class ScannerState(enum.StrEnum):
    """Where an input device is in its life; transitions are logged and reported."""

    CONNECTED = "connected"
    LOST = "lost"  # was connected (or never was); reconnecting
    CLOSED = "closed"


@dataclass(frozen=True)
class ScannerEvent:
    """A state change of an input device.

    ``kind`` is one of ``scanner-connected`` (first open), ``scanner-lost`` (the device
    vanished or stopped delivering; ``detail`` says how), ``scanner-back`` (reopened after
    a loss) and ``scanner-closed`` (:meth:`close` was called).
    """

    kind: str
    source: str
    at_monotonic: float
    detail: str = ""


def notify(listener: Callable[[ScannerEvent], None] | None, kind: str, source: str,
           detail: str, log: logging.Logger) -> None:
    """Hand a state change to the device's listener, if any. A broken listener must not
    take the input device down with it: its failure is logged, never raised."""
    if listener is None:
        return
    try:
        listener(ScannerEvent(kind, source, time.monotonic(), detail))
    except Exception:
        log.exception("%s: event listener failed on %s", source, kind)


@dataclass(frozen=True)
class InputCounters:
    """A snapshot of what one input device delivered and discarded since it was built."""

    accepted: int = 0
    duplicates: int = 0
    invalid_utf8: int = 0
    non_printable: int = 0
    oversized: int = 0
    lost: int = 0
    back: int = 0

    @property
    def discarded(self) -> int:
        """Reads thrown away as garbage (duplicates are not garbage and not counted here)."""
        return self.invalid_utf8 + self.non_printable + self.oversized


def _is_printable(text: str) -> bool:
    # Unicode category C* covers NUL, control characters, unassigned and private-use
    # code points: what binary noise decodes to. Spaces are fine (base45 uses them).
    return all(ch == " " or unicodedata.category(ch)[0] not in ("C", "Z") for ch in text)


class CodeFilter:
    """Turns raw reads into :class:`ScannedCode` values, or counts why it did not.

    Thread-safe: a reader thread feeds it while another thread may read the counters.
    The duplicate window slides: a phone held in front of a scanner that re-reads it
    continuously produces one code, not one every ``dedup_window`` seconds.
    """

    def __init__(
        self,
        *,
        dedup_window: float = 2.0,
        max_length: int = 4096,
        strip_prefix: bytes = b"",
        strip_suffix: bytes = b"",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if dedup_window < 0:
            raise ValueError("dedup_window must be >= 0")
        if max_length < 1:
            raise ValueError("max_length must be >= 1")
        self.dedup_window = dedup_window
        self.max_length = max_length
        self.strip_prefix = strip_prefix
        self.strip_suffix = strip_suffix
        self._clock = clock
        self._lock = threading.Lock()
        self._last_seen: dict[str, float] = {}
        self._counts: dict[str, int] = dict.fromkeys(InputCounters.__dataclass_fields__, 0)

    def accept(self, raw: bytes, source: str) -> ScannedCode | None:
        """The code in ``raw``, or ``None`` if it was empty, garbage or a duplicate."""
        if len(raw) > self.max_length + len(self.strip_prefix) + len(self.strip_suffix):
            self.count(DiscardReason.OVERSIZED)
            return None
        if self.strip_prefix and raw.startswith(self.strip_prefix):
            raw = raw[len(self.strip_prefix) :]
        if self.strip_suffix and raw.endswith(self.strip_suffix):
            raw = raw[: -len(self.strip_suffix)]
        if not raw:
            return None
        if len(raw) > self.max_length:
            self.count(DiscardReason.OVERSIZED)
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            self.count(DiscardReason.INVALID_UTF8)
            return None
        return self.accept_text(text, source)

    def accept_text(self, text: str, source: str) -> ScannedCode | None:
        """Like :meth:`accept` for decoders that already hand over text (the camera)."""
        if not text.strip(" "):
            return None   # empty, or only spaces: no code (a code may hold spaces inside)
        if len(text.encode("utf-8")) > self.max_length:
            self.count(DiscardReason.OVERSIZED)
            return None
        if not _is_printable(text):
            self.count(DiscardReason.NON_PRINTABLE)
            return None
        now = self._clock()
        with self._lock:
            last = self._last_seen.pop(text, None)
            self._last_seen[text] = now
            if last is not None and now - last < self.dedup_window:
                self._counts["duplicates"] += 1
                return None
            self._counts["accepted"] += 1
            self._prune(now)
        return ScannedCode(text=text, source=source, at_monotonic=now)

    def count(self, reason: DiscardReason) -> None:
        """Count a read discarded by the caller (e.g. a line that never ended)."""
        field = {
            DiscardReason.INVALID_UTF8: "invalid_utf8",
            DiscardReason.NON_PRINTABLE: "non_printable",
            DiscardReason.OVERSIZED: "oversized",
            DiscardReason.DUPLICATE: "duplicates",
        }[reason]
        with self._lock:
            self._counts[field] += 1

    def count_event(self, kind: str) -> None:
        """Count a device loss (``"lost"``) or return (``"back"``)."""
        with self._lock:
            self._counts[kind] += 1

    def counters(self) -> InputCounters:
        """A consistent snapshot of the counts."""
        with self._lock:
            return InputCounters(**self._counts)

    def _prune(self, now: float) -> None:
        if len(self._last_seen) <= _DEDUP_MAX_ENTRIES:
            return
        stale = [t for t, seen in self._last_seen.items() if now - seen >= self.dedup_window]
        for text in stale:
            del self._last_seen[text]
        while len(self._last_seen) > _DEDUP_MAX_ENTRIES:
            # Still full of fresh codes: forget the oldest (dicts keep insertion order,
            # and accept_text re-inserts a re-seen code at the end).
            del self._last_seen[next(iter(self._last_seen))]
