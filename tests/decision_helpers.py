"""Helpers shared by the decision tests: a hand-driven clock and synthetic cards."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sscard_hardware_sim.virtual_card import VirtualCard, load_holder

from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.central.models import CardStatus, Channel, DenylistEntry, DenylistUpdate
from sscard_terminal.decision import PresentedCredential
from sscard_terminal.decision.policy import Authentication
from sscard_terminal.drivers.sim import SimTransport


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
        card_number=f"A{n:07d}X", chip_expiry=expiry,
        authentication=Authentication.PSAM, generation=3)


def snapshot(version: int, *entries: tuple[str, CardStatus]) -> DenylistUpdate:
    return DenylistUpdate(version=version, since_version=0, full=True,
                          added=tuple(DenylistEntry(ref, status) for ref, status in entries),
                          removed=())


def virtual_card_for(store: Any, card_number: str, *, contactless: bool = False) -> VirtualCard:
    """A generation 2 virtual card carrying exactly the simulator's card: same card
    identification code, card number and dates, so a real read of it (EF05 through the
    `sim` transport) yields what the central knows."""
    row = store.card_by_number(card_number)
    assert row is not None, card_number
    data = load_holder("gen2-adult")
    ef05 = dict((tag, value) for tag, value in data["ef05"])
    ef05["01"] = row.identification_code
    ef05["05"] = row.issued_on.replace("-", "")
    ef05["06"] = row.expires_on.replace("-", "")
    ef05["07"] = row.card_number.encode("ascii").hex().upper()
    data["ef05"] = [[tag, value] for tag, value in ef05.items()]
    data["interface"] = "contactless" if contactless else "contact"
    return VirtualCard(data)


def read_tap(store: Any, card_number: str) -> PresentedCredential:
    """Read the virtual card through the `sim` transport and the real SSSE reader."""
    transport = SimTransport(virtual_card_for(store, card_number))
    try:
        info = read_card_info(transport)
    finally:
        transport.close()
    return PresentedCredential.from_card_info(info)
