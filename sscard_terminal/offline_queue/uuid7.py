"""UUID version 7 (RFC 9562 section 5.7): time-ordered idempotency keys.

Layout: 48 bits of Unix time in milliseconds, version 7, 12 bits ``rand_a``, the
variant ``10``, 62 random bits ``rand_b``. Within one millisecond ``rand_a`` is used as
a counter (RFC 9562 section 6.2, method 1) so that ids made by one generator always
increase, even when the wall clock stands still or steps back: the generator never
lets its time go below the last value it used.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

__all__ = ["Uuid7Generator"]

_COUNTER_MAX = 0xFFF
_MS_MASK = (1 << 48) - 1
ENTROPY_BYTES = 10
"""Random bytes one id uses (62 bits of ``rand_b``, 9 for the counter's start)."""


class Uuid7Generator:
    """Makes strictly increasing UUIDv7 values; safe to share between threads."""

    def __init__(self, clock_ms: Callable[[], int] | None = None) -> None:
        self._clock_ms = clock_ms   # None: the system clock, read inline (hot path)
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def new(self) -> uuid.UUID:
        return uuid.UUID(self.new_text())

    def new_text(self, entropy: bytes | None = None, now_ns: int | None = None) -> str:
        """The next id in its canonical text form, without building a ``UUID`` object.

        The journal asks for one per durable enqueue, so this is the one implementation
        (:meth:`new` parses its text). ``entropy``: 10 fresh random bytes when the caller
        already drew them (one system call per record, not two); ``now_ns``: the wall
        clock the caller already read (so the id and the record's time agree).
        """
        if entropy is None:
            entropy = os.urandom(ENTROPY_BYTES)
        elif len(entropy) != ENTROPY_BYTES:
            raise ValueError(f"a UUIDv7 needs {ENTROPY_BYTES} random bytes")
        if self._clock_ms is not None:
            now = self._clock_ms()
        else:
            now = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
        with self._lock:
            if now > self._last_ms:
                self._last_ms = now
                # Start low in the counter space so that many ids fit in one millisecond.
                self._counter = ((entropy[0] << 8) | entropy[1]) & 0x1FF
            else:
                self._counter += 1
                if self._counter > _COUNTER_MAX:
                    # Counter exhausted: borrow the next millisecond (stays monotonic).
                    self._last_ms += 1
                    self._counter = 0
            ms, counter = self._last_ms, self._counter
        # unix_ts_ms (48) | ver (4) | rand_a (12), then var (2) | rand_b (62): as bytes and
        # one hex conversion, which is a fraction of the cost of formatting a 128-bit int.
        digits = ((((ms & _MS_MASK) << 16) | 0x7000 | counter).to_bytes(8, "big")
                  + bytes((0x80 | (entropy[2] & 0x3F),)) + entropy[3:]).hex()
        return (f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-"
                f"{digits[20:]}")
