"""Offline decisions: the denylist, the chip's expiry, the profile's limits, anti-passback
and torn-transaction replays, with a real denylist file and no central."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from sscard_terminal.central.models import CardStatus, Channel
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Decision, DecisionEngine, Denylist, Outcome, Reason
from sscard_terminal.decision.credentials import ECodeOutcome, PresentedCredential
from sscard_terminal.profiles import ECodeKind, load_profile

from .decision_helpers import ManualClock, snapshot, tap


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def denylist(tmp_path: Path, clock: ManualClock) -> Iterator[Denylist]:
    with Denylist.open(tmp_path / "denylist.db", clock=clock) as store:
        store.install(snapshot(
            1,
            (tap(10).card_ref, CardStatus.FORMAL_LOSS),
            (tap(11).card_ref, CardStatus.CANCELLED),
            (tap(12).card_ref, CardStatus.SUSPENDED),
        ))
        yield store


def engine_for(name: str, denylist: Denylist, clock: ManualClock) -> DecisionEngine:
    return DecisionEngine(load_profile(name), central=None, denylist=denylist, clock=clock)


def decide(engine: DecisionEngine, credential: PresentedCredential) -> Decision:
    return engine.decide(credential, deadline=Deadline.after(1.0))


def test_clean_card_is_accepted_offline_at_full_fare(
    denylist: Denylist, clock: ManualClock
) -> None:
    decision = decide(engine_for("bus-validator", denylist, clock), tap(1))
    assert decision.outcome is Outcome.ACCEPT
    assert decision.reason is Reason.ACCEPTED
    assert not decision.online
    assert decision.central_status is None
    assert decision.concession is None and decision.fare_percent == 100


@pytest.mark.parametrize(("n", "reason"), [(10, Reason.CARD_LOST), (11, Reason.CARD_VOID),
                                           (12, Reason.CARD_SUSPENDED)])
def test_denylisted_card_is_refused_with_its_status_reason(
    denylist: Denylist, clock: ManualClock, n: int, reason: Reason
) -> None:
    decision = decide(engine_for("bus-validator", denylist, clock), tap(n))
    assert decision.outcome is Outcome.REFUSE
    assert decision.reason is reason


def test_expired_chip_is_refused_offline(denylist: Denylist, clock: ManualClock) -> None:
    decision = decide(engine_for("bus-validator", denylist, clock),
                      tap(1, expiry=date(2026, 11, 21)))
    assert decision.reason is Reason.CARD_EXPIRED
    still_valid_today = decide(engine_for("bus-validator", denylist, clock),
                               tap(2, expiry=date(2026, 11, 22)))
    assert still_valid_today.accepted


def test_stale_denylist_cannot_support_an_offline_accept(
    denylist: Denylist, clock: ManualClock
) -> None:
    engine = engine_for("bus-validator", denylist, clock)
    clock.advance(73 * 3600)
    assert decide(engine, tap(1)).reason is Reason.DENYLIST_STALE
    # the refusals a stale list still knows about stay refusals with their reason
    assert decide(engine, tap(10)).reason is Reason.CARD_LOST


def test_denylist_installed_in_the_future_is_stale_not_fresh_for_ever(
    denylist: Denylist, clock: ManualClock
) -> None:
    """A validator whose clock ran ahead when it installed the list (RTC wrong until NTP)
    and was then set back saw a negative age: the list passed for fresh until the clock
    caught up, months later. An install time well ahead of now is an unknown age: stale.
    A few seconds back (NTP slewing) is not."""
    engine = engine_for("bus-validator", denylist, clock)
    clock.advance(-30)
    assert decide(engine, tap(1)).accepted
    clock.advance(-180 * 24 * 3600)
    assert decide(engine, tap(2)).reason is Reason.DENYLIST_STALE


def test_never_installed_denylist_refuses_offline(tmp_path: Path, clock: ManualClock) -> None:
    with Denylist.open(tmp_path / "empty.db", clock=clock) as empty:
        assert decide(engine_for("bus-validator", empty, clock), tap(1)).reason \
            is Reason.DENYLIST_STALE


def test_offline_limit_counts_accepts_in_a_row(denylist: Denylist, clock: ManualClock) -> None:
    profile = replace(load_profile("bus-validator"), max_offline_decisions=3)
    engine = DecisionEngine(profile, central=None, denylist=denylist, clock=clock)
    outcomes = [decide(engine, tap(n)).reason for n in range(1, 6)]
    assert outcomes == [Reason.ACCEPTED] * 3 + [Reason.OFFLINE_LIMIT] * 2
    assert engine.status().offline_accepts_in_row == 3


def test_hospital_defers_instead_of_accepting_offline(
    denylist: Denylist, clock: ManualClock
) -> None:
    engine = engine_for("hospital-desk", denylist, clock)
    decision = decide(engine, tap(1))
    assert decision.outcome is Outcome.DEFER
    assert decision.reason is Reason.OFFLINE_NOT_ALLOWED
    # a card the denylist knows is void is refused outright, not deferred
    assert decide(engine, tap(11)).outcome is Outcome.REFUSE


def test_anti_passback_window_then_free_again(denylist: Denylist, clock: ManualClock) -> None:
    engine = engine_for("library-gate", denylist, clock)
    first = decide(engine, tap(1))
    assert first.accepted
    engine.complete(first)
    clock.advance(299)
    second = decide(engine, tap(1))
    assert second.reason is Reason.ANTI_PASSBACK
    assert decide(engine, tap(2)).accepted          # another card is not affected
    clock.advance(2)
    assert decide(engine, tap(1)).accepted


def test_anti_passback_holds_across_card_and_code_of_the_same_card(
    denylist: Denylist, clock: ManualClock
) -> None:
    engine = engine_for("library-gate", denylist, clock)
    card = tap(1)
    engine.complete(decide(engine, card))
    code = PresentedCredential.from_ecode(
        ECodeOutcome(True, ECodeKind.OURS, "accepted", "verified offline"),
        card_ref=card.card_ref, region=card.region)
    assert decide(engine, code).reason is Reason.ANTI_PASSBACK


def test_torn_transaction_retap_replays_the_earlier_result(
    denylist: Denylist, clock: ManualClock
) -> None:
    engine = engine_for("bus-validator", denylist, clock)
    first = decide(engine, tap(1))                  # card pulled before completion
    clock.advance(100)
    again = decide(engine, tap(1))
    assert again.replayed
    assert again.transaction_id == first.transaction_id
    assert again.outcome is first.outcome and again.reason is first.reason
    assert engine.status().offline_accepts_in_row == 1   # no second transaction counted


@pytest.mark.parametrize("refusal", ["expired", "replayed", "not_yet_valid"])
def test_a_refused_code_never_replays_an_unfinished_accept(
    denylist: Denylist, clock: ManualClock, refusal: str
) -> None:
    """The torn replay answered the earlier accept before looking at what was presented:
    a code the verifier refused (an old screenshot of the holder's code, the same code
    scanned a second time) opened the gate again while the first transaction was
    unfinished. Only a presentation that stands on its own (the card itself, or a code
    that verifies, such as the app's next code) replays."""
    engine = engine_for("bus-validator", denylist, clock)
    card = tap(1)
    first = decide(engine, card)                      # not completed: torn
    clock.advance(10)
    refused = PresentedCredential.from_ecode(
        ECodeOutcome(False, ECodeKind.OURS, refusal, "refused by the verifier"),
        card_ref=card.card_ref, region=card.region)
    decision = decide(engine, refused)
    assert decision.outcome is Outcome.REFUSE and not decision.replayed
    assert decision.reason is Reason.ECODE_REFUSED and refusal in decision.message
    fresh = PresentedCredential.from_ecode(
        ECodeOutcome(True, ECodeKind.OURS, "accepted", "verified offline"),
        card_ref=card.card_ref, region=card.region)
    again = decide(engine, fresh)
    assert again.replayed and again.transaction_id == first.transaction_id


def test_torn_window_passes_and_completed_transactions_are_not_replayed(
    denylist: Denylist, clock: ManualClock
) -> None:
    engine = engine_for("bus-validator", denylist, clock)
    first = decide(engine, tap(1))
    clock.advance(121)
    later = decide(engine, tap(1))
    assert not later.replayed and later.transaction_id != first.transaction_id
    engine.complete(later)
    clock.advance(1)
    assert decide(engine, tap(1)).reason is Reason.ANTI_PASSBACK


def test_refused_code_and_unaccepted_kind(denylist: Denylist, clock: ManualClock) -> None:
    engine = engine_for("bus-validator", denylist, clock)
    bad = PresentedCredential.from_ecode(
        ECodeOutcome(False, ECodeKind.OURS, "bad_signature", "the signature does not verify"),
        card_ref="", region="")
    refused = decide(engine, bad)
    assert refused.reason is Reason.ECODE_REFUSED and "bad_signature" in refused.message
    voucher = PresentedCredential.from_ecode(
        ECodeOutcome(False, ECodeKind.EVOUCHER, "central_unreachable", "offline"),
        card_ref="", region="")
    assert decide(engine, voucher).reason is Reason.ECODE_KIND_NOT_ACCEPTED


def test_online_only_code_while_offline_follows_the_profile(
    denylist: Denylist, clock: ManualClock
) -> None:
    voucher = PresentedCredential.from_ecode(
        ECodeOutcome(False, ECodeKind.EVOUCHER, "deferred", "central down", unreachable=True),
        card_ref="", region="")
    hospital = decide(engine_for("hospital-desk", denylist, clock), voucher)
    assert (hospital.outcome, hospital.reason) == (Outcome.DEFER, Reason.ONLINE_ONLY_CODE)
    national = PresentedCredential.from_ecode(
        ECodeOutcome(False, ECodeKind.NATIONAL, "central_unreachable", "down", unreachable=True),
        card_ref="", region="")
    bus = decide(engine_for("bus-validator", denylist, clock), national)
    assert (bus.outcome, bus.reason) == (Outcome.REFUSE, Reason.ONLINE_ONLY_CODE)


def test_denylisted_code_is_refused_like_the_card(denylist: Denylist, clock: ManualClock) -> None:
    card = tap(11)
    code = PresentedCredential.from_ecode(
        ECodeOutcome(True, ECodeKind.OURS, "accepted", "verified offline"),
        card_ref=card.card_ref, region=card.region)
    engine = engine_for("bus-validator", denylist, clock)
    assert decide(engine, code).reason is decide(engine, card).reason is Reason.CARD_VOID


def test_credential_repr_carries_no_card_number() -> None:
    credential = tap(7)
    assert credential.card_number is not None
    assert credential.card_number not in repr(credential)
    assert credential.card_identification_code is not None
    assert credential.card_identification_code not in repr(credential)
    assert credential.card_number not in credential.describe()


def test_card_credential_needs_no_ecode_and_code_needs_one() -> None:
    with pytest.raises(ValueError, match="e-code"):
        PresentedCredential(channel=Channel.ECODE, card_ref="x", region="330300")

