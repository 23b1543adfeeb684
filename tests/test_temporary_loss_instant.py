"""A 15-day temporary loss lapses at its instant, not at a date (issue 22.6): the protocol
carries the report's time plus 15 days with its zone; the simulated central, the client and
the offline denylist all read it to the minute, whatever zone the clock is in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim import central_lifecycle as life
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.client import parse_validation
from sscard_terminal.central.models import CardStatus, Channel, DenylistEntry, DenylistUpdate
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import DecisionEngine, Denylist, Outcome, Reason
from sscard_terminal.errors import CentralProtocolError
from sscard_terminal.profiles import load_profile

from .decision_helpers import ManualClock, tap

CST = dt.timezone(dt.timedelta(hours=8))


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CentralSim]:
    central = CentralSim(tmp_path / "central.db")
    yield central
    central.stop()


def _status(sim: CentralSim, card_number: str) -> tuple[CardStatus, str | None]:
    card = next(c for c in DEMO_CARDS.values() if c.card_number == card_number)
    with sim.make_client() as client:
        answer = client.validate_card(card.identification_code, card.card_number, card.region,
                                      Channel.CONTACT, Deadline.after(3))
    return answer.status, answer.until


def test_the_central_lapses_a_loss_at_its_minute(sim: CentralSim) -> None:
    number = DEMO_CARDS["spare"].card_number
    now = dt.datetime.now(CST)
    today = now.date()
    for minutes_ago, held in ((15 * 24 * 60 - 2, True), (15 * 24 * 60 + 2, False)):
        reported = now - dt.timedelta(minutes=minutes_ago)
        life.report_temporary_loss(sim.store, number, reported.date(), at=reported)
        status, until = _status(sim, number)
        assert (status is CardStatus.TEMPORARY_LOSS) is held, minutes_ago
        if held:
            assert until == (reported + dt.timedelta(days=15)).isoformat(timespec="seconds")
    assert today    # the date alone could not tell these two apart


def test_the_denylist_carries_the_instant_and_the_terminal_lapses_it_offline(
        tmp_path: Path, sim: CentralSim) -> None:
    card = DEMO_CARDS["spare"]
    reported = dt.datetime.now(CST) - dt.timedelta(days=3)
    life.report_temporary_loss(sim.store, card.card_number, reported.date(), at=reported)
    with sim.make_client() as client:
        update = client.denylist(0, Deadline.after(3))
    entry = next(e for e in update.added if e.status is CardStatus.TEMPORARY_LOSS
                 and e.until is not None and "T" in e.until)
    assert dt.datetime.fromisoformat(entry.until or "") == reported.replace(
        microsecond=0) + dt.timedelta(days=15)


@pytest.mark.parametrize("zone", [CST, dt.UTC, dt.timezone(dt.timedelta(hours=-5))])
def test_offline_the_lapse_is_exact_to_the_minute_in_any_zone(tmp_path: Path,
                                                              zone: dt.timezone) -> None:
    lapses = dt.datetime(2026, 12, 19, 9, 30, tzinfo=CST)     # 01:30 UTC
    clock = ManualClock(wall=(lapses - dt.timedelta(minutes=1)).astimezone(zone))
    card = tap(1)
    with Denylist.open(tmp_path / "d.db", clock=clock) as denylist:
        denylist.install(DenylistUpdate(version=1, since_version=0, full=True, removed=(),
                                        added=(DenylistEntry(
                                            card.card_ref, CardStatus.TEMPORARY_LOSS,
                                            until=lapses.isoformat()),)))
        engine = DecisionEngine(load_profile("bus-validator"), central=None,
                                denylist=denylist, clock=clock)
        before = engine.decide(card, deadline=Deadline.after(1))
        assert before.outcome is Outcome.REFUSE and before.reason is Reason.CARD_LOST
        clock.advance(120)       # one minute past the instant (the same calendar day)
        after = engine.decide(card, deadline=Deadline.after(1))
        assert after.outcome is Outcome.ACCEPT, after


def test_a_lapse_time_without_its_zone_is_refused_by_the_client() -> None:
    with pytest.raises(CentralProtocolError, match="until"):
        parse_validation({"status": "temporary_loss", "reason": "temporary_loss",
                          "until": "2026-12-19T09:30:00"})
    assert parse_validation({"status": "temporary_loss", "reason": "temporary_loss",
                             "until": "2026-12-19"}).until == "2026-12-19"
