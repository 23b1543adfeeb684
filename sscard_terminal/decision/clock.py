"""The engine's clock: wall time for dates and windows that survive a reboot's
perspective (expiry, denylist age), monotonic time for short windows (anti-passback,
torn transactions) that must not jump when NTP corrects the wall clock."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Protocol

__all__ = ["CHINA_STANDARD_TIME", "Clock", "SystemClock", "local_date"]

# Card dates (chip expiry, status since/until) are calendar dates in China Standard Time.
CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current wall time, timezone-aware."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back."""
        ...


class SystemClock:
    """The machine's clocks."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def local_date(moment: datetime) -> date:
    """The calendar date in China Standard Time, the zone card dates are written in."""
    return moment.astimezone(CHINA_STANDARD_TIME).date()
