"""Anti-passback through the engine, per shipped profile with per-type windows: the window
comes from what the card is (all its entitlements), not from the concession that set the
fare (issue 23: a volunteer at the scenic gate, who pays full fare there, was held to the
1,800 s default and refused on re-entry). The central is the real simulator; the clock is
driven by hand so that the boundary is exact."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.client import CentralClient
from sscard_terminal.central.models import Entitlement
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Decision, DecisionEngine, Denylist, Outcome, Reason
from sscard_terminal.decision.credentials import PresentedCredential
from sscard_terminal.profiles import Profile, load_profile

from .decision_helpers import ManualClock, read_tap

pytestmark = pytest.mark.timeout(120)


def give(sim: CentralSim, key: str, *entitlements: Entitlement) -> PresentedCredential:
    """Add entitlements to a demo holder at the central, and read that holder's card."""
    card_number = DEMO_CARDS[key].card_number
    row = sim.store.card_by_number(card_number)
    assert row is not None
    with sim.store.atomic() as conn:
        conn.executemany("INSERT OR IGNORE INTO holder_entitlements VALUES (?, ?)",
                         [(row.holder_id, e.value) for e in entitlements])
    return read_tap(sim.store, card_number)


def engine_on(profile: Profile | str, client: CentralClient,
              denylist: Denylist) -> tuple[DecisionEngine, ManualClock]:
    clock = ManualClock(wall=dt.datetime.now(dt.UTC))
    chosen = load_profile(profile) if isinstance(profile, str) else profile
    return DecisionEngine(chosen, central=client, denylist=denylist, clock=clock), clock


def entered(engine: DecisionEngine, card: PresentedCredential) -> Decision:
    """A presentation whose transaction then completes (so a re-tap meets anti-passback,
    not the torn-transaction replay)."""
    decision = engine.decide(card, deadline=Deadline.after(5.0))
    if decision.accepted:
        engine.complete(decision)
    return decision


def assert_window(engine: DecisionEngine, clock: ManualClock, card: PresentedCredential,
                  window: int) -> Decision:
    """First entry accepted; a re-tap just inside the window refused; a re-tap at exactly
    the window accepted (the window is "less than N seconds ago")."""
    first = entered(engine, card)
    assert first.accepted, first
    if window > 0:
        clock.advance(window - 0.5)
        inside = entered(engine, card)
        assert (inside.outcome, inside.reason) == (Outcome.REFUSE, Reason.ANTI_PASSBACK)
        assert f"window {window} s" in inside.message
        clock.advance(0.5)
    at_window = entered(engine, card)
    assert at_window.accepted and at_window.reason is Reason.ACCEPTED, at_window
    return at_window


def test_scenic_gate_volunteer_reenters_at_once_though_volunteers_get_no_concession(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist
) -> None:
    profile = load_profile("scenic-gate")
    assert Entitlement.VOLUNTEER not in profile.concessions       # the case of the bug
    engine, clock = engine_on(profile, client, denylist)
    volunteer = give(central_sim, "spare2", Entitlement.VOLUNTEER)
    again = assert_window(engine, clock, volunteer, 0)
    assert again.online and again.concession is None and again.fare_percent == 100
    for _ in range(3):                         # in and out while on duty, same second
        assert entered(engine, volunteer).accepted


def test_scenic_gate_volunteer_window_holds_offline_from_learnt_entitlements(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist
) -> None:
    denylist.refresh(client, deadline=Deadline.after(5.0))
    engine, _clock = engine_on("scenic-gate", client, denylist)
    volunteer = give(central_sim, "spare2", Entitlement.VOLUNTEER)
    assert entered(engine, volunteer).online
    central_sim.set_faults(mode="error")
    try:
        again = entered(engine, volunteer)
    finally:
        central_sim.set_faults(mode="none")
    assert (again.online, again.accepted) == (False, True)


def test_scenic_gate_senior_volunteer_pays_the_senior_fare_with_the_volunteer_window(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist
) -> None:
    """Fare and window are two answers for one card: the senior concession sets the fare
    (free), the volunteer type sets the window (0 s)."""
    engine, clock = engine_on("scenic-gate", client, denylist)
    both = give(central_sim, "normal", Entitlement.VOLUNTEER)       # normal is a senior
    again = assert_window(engine, clock, both, 0)
    assert again.concession is Entitlement.SENIOR and again.fare_percent == 0


@pytest.mark.parametrize(("key", "extra", "concession"), [
    ("spare", (), Entitlement.TEACHER),        # a concession with no window of its own
    ("spare2", (), None),                      # no entitlement at all
])
def test_scenic_gate_default_window_boundary(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist,
    key: str, extra: tuple[Entitlement, ...], concession: Entitlement | None,
) -> None:
    engine, clock = engine_on("scenic-gate", client, denylist)
    again = assert_window(engine, clock, give(central_sim, key, *extra), 1800)
    assert again.concession is concession


@pytest.mark.parametrize(("key", "extra", "concession", "window"), [
    ("normal", (), Entitlement.SENIOR, 60),                   # by_card_type.senior
    ("spare2", (Entitlement.CHILD,), Entitlement.CHILD, 60),  # by_card_type.child
    ("spare2", (Entitlement.VOLUNTEER,), None, 60),           # no window: the default
])
def test_bus_validator_per_type_window_boundary(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist,
    key: str, extra: tuple[Entitlement, ...], concession: Entitlement | None, window: int,
) -> None:
    profile = load_profile("bus-validator")
    assert profile.anti_passback_for(
        [concession] if concession else []) == window           # the shipped value pinned
    engine, clock = engine_on(profile, client, denylist)
    again = assert_window(engine, clock, give(central_sim, key, *extra), window)
    assert again.concession is concession


def test_the_window_of_a_type_applies_whatever_concession_wins(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist
) -> None:
    """A profile whose per-type windows differ from its default (the shipped bus windows
    equal its default): a senior (free fare) who is also a child-card holder meets the
    shorter of the two windows; a teacher meets the default."""
    profile = replace(load_profile("bus-validator"), anti_passback_seconds=600,
                      anti_passback_by_type={"senior": 90, "child": 30})
    engine, clock = engine_on(profile, client, denylist)
    senior_child = give(central_sim, "normal", Entitlement.CHILD)
    again = assert_window(engine, clock, senior_child, 30)
    assert again.concession is Entitlement.SENIOR
    engine, clock = engine_on(profile, client, denylist)
    assert_window(engine, clock, give(central_sim, "spare"), 600)
