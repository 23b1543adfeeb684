"""Time budgets handed down from the caller.

A bus validator has well under 300 ms per tap; every layer below it takes what is left
of that budget rather than a fixed timeout of its own, so that the sum never exceeds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import DeadlineExceededError

__all__ = ["Deadline"]


@dataclass(frozen=True)
class Deadline:
    """An absolute point on the monotonic clock by which an answer is due."""

    expires_at: float

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        """A deadline ``seconds`` from now."""
        return cls(time.monotonic() + seconds)

    @classmethod
    def never(cls) -> Deadline:
        """No budget (technician tools, background work)."""
        return cls(float("inf"))

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.expires_at - time.monotonic())

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at

    def check(self, what: str) -> float:
        """Return the seconds left, or raise if none are left for ``what``."""
        left = self.remaining()
        if left <= 0.0:
            raise DeadlineExceededError(f"no time left for {what}")
        return left

    def capped(self, seconds: float) -> Deadline:
        """This deadline, or an earlier one ``seconds`` from now."""
        return Deadline(min(self.expires_at, time.monotonic() + seconds))
