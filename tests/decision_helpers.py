"""Helpers shared by the decision tests: a hand-driven clock and synthetic cards."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sscard_terminal.central.models import Channel, DenylistEntry, DenylistUpdate, CardStatus
from sscard_terminal.decision import PresentedCredential


@dataclass
class ManualClock:
    """Both clocks move only when the test says so."""

    wall: datetime = field(default_factory=lambda: datetime(2026, 11, 22, 4, 0, tzinfo=UTC))
    mono: float = 1000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.wall += timedelta(seconds=seconds)
        self.mono += seconds


def synthetic_idcode(n: int, region: str = "330300") -> str:
    """A made-up card identification code: region, the constant, 16 hex of issuer data."""
    issuer = hashlib.sha256(f"synthetic-{n}".encode()).hexdigest()[:16].upper()
    return f"{region}D156000005{issuer}"


def tap(n: int, *, expiry: date | None = date(2031, 1, 1),
        channel: Channel = Channel.CONTACTLESS) -> PresentedCredential:
    return PresentedCredential.from_card(
        channel, card_identification_code=synthetic_idcode(n),
        card_number=f"A{n:07d}X", chip_expiry=expiry)


def snapshot(version: int, *entries: tuple[str, CardStatus]) -> DenylistUpdate:
    return DenylistUpdate(version=version, since_version=0, full=True,
                          added=tuple(DenylistEntry(ref, status) for ref, status in entries),
                          removed=())
