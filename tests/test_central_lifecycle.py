"""Every lifecycle status and transition, seen by a terminal through the real simulator."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

import pytest
from sscard_hardware_sim import central_lifecycle as life
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS, DemoCard

from sscard_terminal.central import (
    Application,
    CardStatus,
    CardValidation,
    CentralClient,
    Channel,
    Entitlement,
)
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Denylist

TODAY = dt.date.today()


def _check(client: CentralClient, card: DemoCard | tuple[str, str, str],
           channel: Channel = Channel.CONTACTLESS) -> CardValidation:
    if isinstance(card, DemoCard):
        card = (card.identification_code, card.card_number, card.region)
    return client.validate_card(card[0], card[1], card[2], channel, Deadline.after(3))


@pytest.mark.parametrize("key,status,reason", [
    ("normal", CardStatus.NORMAL, "ok"),
    ("temporary_loss", CardStatus.TEMPORARY_LOSS, "temporary_loss"),
    ("formal_loss", CardStatus.FORMAL_LOSS, "formal_loss"),
    ("suspended", CardStatus.SUSPENDED, "suspended"),
    ("cancelled", CardStatus.CANCELLED, "cancelled"),
    ("expired", CardStatus.EXPIRED, "expired"),
])
def test_seeded_statuses(central_sim: CentralSim, key: str, status: CardStatus,
                         reason: str) -> None:
    with central_sim.make_client() as client:
        result = _check(client, DEMO_CARDS[key])
    assert (result.status, result.reason) == (status, reason)
    assert result.usable is (status is CardStatus.NORMAL)
    assert result.holder is None  # the bus terminal is not entitled to identity


def test_normal_card_carries_apps_entitlements_and_identity_only_when_entitled(
        central_sim: CentralSim) -> None:
    card = DEMO_CARDS["disabled"]
    with central_sim.make_client() as bus, central_sim.make_client(identity=True) as his:
        seen_by_bus = _check(bus, card)
        seen_by_his = _check(his, card, Channel.CONTACT)
    assert seen_by_bus.entitlements == {Entitlement.DISABLED, Entitlement.VETERAN}
    assert Application.LIBRARY not in seen_by_bus.applications
    assert Application.TRANSIT in seen_by_bus.applications
    assert seen_by_bus.holder is None
    assert seen_by_his.holder is not None
    assert (seen_by_his.holder.name, seen_by_his.holder.id_number) == (card.name,
                                                                         card.id_number)
    assert card.name not in repr(seen_by_his) and card.id_number not in repr(seen_by_his)


def test_unknown_card_is_a_definite_unknown_status(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        unknown = _check(client, ("330302D1560000050000000000000000", "D99999990", "330302"))
        mismatch = _check(client, (DEMO_CARDS["normal"].identification_code,
                                   DEMO_CARDS["spare"].card_number, "330302"))
    assert (unknown.status, unknown.reason) == (CardStatus.UNKNOWN, "unknown_card")
    assert (mismatch.status, mismatch.reason) == (CardStatus.UNKNOWN, "card_number_mismatch")
    assert not unknown.usable and unknown.holder is None


def test_expiry_warning_in_the_last_three_months(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        expiring = _check(client, DEMO_CARDS["expiring"])
        fine = _check(client, DEMO_CARDS["normal"])
    assert expiring.status is CardStatus.NORMAL
    assert expiring.warning == "renew within 3 months"
    assert fine.warning is None


def test_temporary_loss_lapses_after_15_days_by_itself(central_sim: CentralSim) -> None:
    card = DEMO_CARDS["spare"]
    life.report_temporary_loss(central_sim.store, card.card_number, TODAY)
    with central_sim.make_client() as client:
        lost = _check(client, card)
        assert lost.status is CardStatus.TEMPORARY_LOSS
        # The instant it lapses, with its zone: the report's time plus 15 days.
        assert lost.until is not None and lost.until.endswith("+08:00")
        lapses = dt.datetime.fromisoformat(lost.until)
        assert lapses.astimezone().date() == TODAY + dt.timedelta(days=15)
        # Reported 15 days ago: it has lapsed today without anyone unlocking it.
        life.report_temporary_loss(central_sim.store, card.card_number,
                                   TODAY - dt.timedelta(days=15))
        lapsed = _check(client, card)
    assert lapsed.status is CardStatus.NORMAL and lapsed.until is None


def test_open_ended_temporary_loss_holds_until_unlocked(central_sim: CentralSim) -> None:
    card = DEMO_CARDS["spare"]
    life.report_temporary_loss(central_sim.store, card.card_number,
                               TODAY - dt.timedelta(days=400), open_ended=True)
    with central_sim.make_client() as client:
        held = _check(client, card)
        life.unlock(central_sim.store, card.card_number, TODAY)
        unlocked = _check(client, card)
    assert held.status is CardStatus.TEMPORARY_LOSS and held.until is None
    assert unlocked.status is CardStatus.NORMAL


def test_formal_loss_then_unlock(central_sim: CentralSim) -> None:
    card = DEMO_CARDS["spare"]
    life.report_formal_loss(central_sim.store, card.card_number, TODAY)
    with central_sim.make_client() as client:
        assert _check(client, card).status is CardStatus.FORMAL_LOSS
        life.unlock(central_sim.store, card.card_number, TODAY)
        assert _check(client, card).status is CardStatus.NORMAL


def test_replacement_voids_old_card_at_once_and_unlock_is_refused(
        central_sim: CentralSim) -> None:
    card = DEMO_CARDS["spare"]
    life.report_formal_loss(central_sim.store, card.card_number, TODAY)
    new_number = life.apply_replacement(central_sim.store, card.card_number, TODAY)
    new = central_sim.store.card_by_number(new_number)
    assert new is not None
    with central_sim.make_client() as client:
        old = _check(client, card)
        replacement = _check(client, (new.identification_code, new.card_number, new.region))
    assert old.status is CardStatus.REPLACED and not old.usable
    assert replacement.status is CardStatus.NORMAL
    assert replacement.entitlements == {Entitlement.TEACHER}
    with pytest.raises(life.LifecycleError, match="replacement"):
        life.unlock(central_sim.store, card.card_number, TODAY)


def test_renewal_voids_the_handed_back_card(central_sim: CentralSim) -> None:
    card = DEMO_CARDS["expiring"]
    new_number = life.renew(central_sim.store, card.card_number, TODAY)
    new = central_sim.store.card_by_number(new_number)
    assert new is not None
    with central_sim.make_client() as client:
        old = _check(client, card)
        fresh = _check(client, (new.identification_code, new.card_number, new.region))
    assert old.status is CardStatus.RENEWED
    assert fresh.status is CardStatus.NORMAL and fresh.warning is None
    assert fresh.expires_on == TODAY.replace(year=TODAY.year + 10).isoformat()


def test_cancellation_voids_card_and_ecode(central_sim: CentralSim) -> None:
    card = DEMO_CARDS["spare2"]
    life.cancel_holder(central_sim.store, card.card_number, TODAY)
    row = central_sim.store.card_by_number(card.card_number)
    assert row is not None and row.ecode_void
    with central_sim.make_client() as client:
        for channel in Channel:
            assert _check(client, card, channel).status is CardStatus.CANCELLED
    with pytest.raises(life.LifecycleError):
        life.unlock(central_sim.store, card.card_number, TODAY)


def test_suspension_and_expiry_by_admin(central_sim: CentralSim) -> None:
    life.suspend(central_sim.store, DEMO_CARDS["spare"].card_number, TODAY)
    life.set_status(central_sim.store, DEMO_CARDS["spare2"].card_number, CardStatus.EXPIRED,
                    TODAY)
    with central_sim.make_client() as client:
        assert _check(client, DEMO_CARDS["spare"]).status is CardStatus.SUSPENDED
        assert _check(client, DEMO_CARDS["spare2"]).status is CardStatus.EXPIRED


def test_applications_switch_on_and_off(central_sim: CentralSim) -> None:
    card = DEMO_CARDS["normal"]
    life.set_application(central_sim.store, card.card_number, Application.TRANSIT, False)
    with central_sim.make_client() as client:
        assert Application.TRANSIT not in _check(client, card).applications
        life.set_application(central_sim.store, card.card_number, Application.TRANSIT, True)
        assert Application.TRANSIT in _check(client, card).applications


def test_virtual_cards_of_the_card_part_are_known(central_sim: CentralSim) -> None:
    row = central_sim.store.card_by_number("W00000011")  # gen3-adult in data/
    assert row is not None
    with central_sim.make_client() as client:
        result = _check(client, (row.identification_code, row.card_number, row.region))
        expired = central_sim.store.card_by_number("W00000046")
        assert expired is not None
        old = _check(client, (expired.identification_code, expired.card_number,
                              expired.region))
    assert result.status is CardStatus.NORMAL
    assert old.status is CardStatus.EXPIRED


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sscard_terminal.cli.main", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_admin_cli_set_status_and_set_app(central_sim: CentralSim) -> None:
    card = DEMO_CARDS["spare"]
    db = str(central_sim.db)
    until = (TODAY + dt.timedelta(days=3)).isoformat()
    done = _cli("central-sim", "set-status", card.card_number, "temporary_loss", "--until",
                until, "--db", db)
    assert done.returncode == 0, done.stderr
    assert _cli("central-sim", "set-app", card.card_number, "scenic", "off", "--db",
                db).returncode == 0
    with central_sim.make_client() as client:
        result = _check(client, card)
    assert result.status is CardStatus.TEMPORARY_LOSS and result.until == until
    assert Application.SCENIC not in result.applications
    assert _cli("central-sim", "set-status", card.card_number, "replaced", "--db",
                db).returncode == 0
    refused = _cli("central-sim", "set-status", card.card_number, "normal", "--db", db)
    assert refused.returncode == 1 and "replacement" in refused.stderr


def test_boundary_days_agree_with_what_the_terminal_reads_offline(
        central_sim: CentralSim, denylist: Denylist) -> None:
    """A date in the protocol is the LAST day of what it bounds, as on the chip (EF05 tag
    06 is the last valid day; the offline rules refuse only once it has passed) and as the
    terminal's denylist reads ``until``. On that day online and offline must agree."""
    lost, ending = DEMO_CARDS["spare"], DEMO_CARDS["spare2"]
    life.report_temporary_loss(central_sim.store, lost.card_number, TODAY, until=TODAY)
    with central_sim.store.atomic() as conn:
        conn.execute("UPDATE cards SET expires_on = ? WHERE card_number = ?",
                     (TODAY.isoformat(), ending.card_number))
    with central_sim.make_client() as client:
        denylist.install(client.denylist(0, Deadline.after(3)))
        online_lost = _check(client, lost)
        online_ending = _check(client, ending)
    assert online_lost.card_ref is not None
    refused_offline = denylist.lookup(online_lost.card_ref, today=TODAY) is not None
    assert refused_offline and online_lost.status is CardStatus.TEMPORARY_LOSS
    assert online_ending.status is CardStatus.NORMAL  # the chip's expiry day itself
    assert online_ending.warning == "renew within 3 months"
    assert denylist.lookup(online_ending.card_ref or "", today=TODAY) is None


def test_a_15_day_loss_refuses_on_15_days_then_lapses(central_sim: CentralSim) -> None:
    card = DEMO_CARDS["spare"]
    with central_sim.make_client() as client:
        for reported_days_ago, held in ((14, True), (15, False)):
            life.report_temporary_loss(central_sim.store, card.card_number,
                                       TODAY - dt.timedelta(days=reported_days_ago))
            status = _check(client, card).status
            assert (status is CardStatus.TEMPORARY_LOSS) is held, reported_days_ago


@pytest.mark.parametrize("lock", ["formal_loss", "suspended"])
def test_a_temporary_loss_cannot_turn_a_lock_into_one_that_lapses(
        central_sim: CentralSim, lock: str) -> None:
    """A formal loss holds until unlocked and a suspension until reinstated: reporting a
    15-day temporary loss on top must not make the card usable again by itself."""
    card = DEMO_CARDS[lock]
    with pytest.raises(life.LifecycleError):
        life.report_temporary_loss(central_sim.store, card.card_number,
                                   TODAY - dt.timedelta(days=20))
    with central_sim.make_client() as client:
        assert _check(client, card).status is CardStatus(lock)
