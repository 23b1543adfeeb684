"""Concessions and renewal (issue 19.4, 19.5) through the composition root's pipeline, with
the central simulator over HTTP and ``sim:`` cards: merged certificates learnt from the
central and applied offline; age-based concessions from the chip's birth date; the better of
two, with the journal saying which; the renewal notice in the last 3 months; the profile's
answer after expiry."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS, virtual_cards

from sscard_terminal.central.client import TerminalConfig
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.sim import SimTransport
from sscard_terminal.profiles import parse_profile
from sscard_terminal.terminal.presentation import Presentation
from sscard_terminal.terminal.root import TerminalRoot
from sscard_terminal.terminal.settings import KeySource, TerminalSettings

from .decision_helpers import virtual_card_for

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"


def _profile(name: str) -> Any:
    text = (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8")
    # Anti-passback off: these tests present one card several times on purpose.
    for seconds in ("60", "300", "1800", "3600"):
        text = text.replace(f"default_seconds = {seconds}", "default_seconds = 0")
    return parse_profile(text, source=f"{name}.toml")


def _root(tmp_path: Path, sim: CentralSim, profile: str) -> TerminalRoot:
    directory = tmp_path / profile
    directory.mkdir(exist_ok=True)
    key = directory / "journal.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    return TerminalRoot(TerminalSettings(
        terminal_id=sim.terminal_id, profile=_profile(profile),
        central=TerminalConfig(sim.base_url, sim.terminal_id, sim.secret,
                               central_public_key=sim.central_public_key),
        state_dir=directory, journal_key=KeySource(file=key)))


def _tap(root: TerminalRoot, holder: str) -> Presentation:
    with root.open_card(Deadline.after(2.0), f"sim:{holder}") as transport:
        return root.presenter().present_card(transport, arrived_at=time.monotonic())


def _tap_demo(root: TerminalRoot, sim: CentralSim, key: str) -> Presentation:
    transport = SimTransport(virtual_card_for(sim.store, DEMO_CARDS[key].card_number))
    try:
        return root.presenter().present_card(transport, arrived_at=time.monotonic())
    finally:
        transport.close()


def _entitle(sim: CentralSim, holder: str, *entitlements: str) -> None:
    card = next(c for c in virtual_cards() if c.key == holder)
    for entitlement in entitlements:
        sim.store.conn.execute("INSERT INTO holder_entitlements SELECT holder_id, ? FROM cards"
                               " WHERE card_number = ?", (entitlement, card.card_number))


def _journal(root: TerminalRoot) -> list[dict[str, Any]]:
    return [dict(r.payload) for r in root.journal().records() if r.kind == "card_tap"]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CentralSim]:
    central = CentralSim(tmp_path / "central.db")
    yield central
    central.stop()


# --- concessions (19.4) -----------------------------------------------------------------------


def test_a_senior_by_age_gets_the_concession_from_the_chips_birth_date(
        tmp_path: Path, sim: CentralSim) -> None:
    # gen1-adult was born in 1955: over 65, and no certificate at the central.
    with _root(tmp_path, sim, "bus-validator") as root:
        shown = _tap(root, "gen1-adult")
        assert shown.accepted and shown.decision is not None
        assert shown.decision.concession is not None
        assert shown.decision.concession.value == "senior" and shown.decision.fare_percent == 0
        assert "concession_by_age" in shown.decision.notices
        (record,) = _journal(root)
        assert record["concession"] == "senior" and record["concession_source"] == "age"
        younger = _tap(root, "gen2-adult")        # born 1975: full fare
        assert younger.decision is not None and younger.decision.fare_percent == 100


@pytest.mark.parametrize(("profile", "certificate", "concession", "source", "fare"), [
    ("culture-venue", "teacher", "senior", "age", 0),          # age 0 % beats teacher 50 %
    ("sports-venue", "disabled", "disabled", "certificate", 0),  # disabled 0 % beats age 50 %
    ("sports-venue", "veteran", "veteran", "certificate", 50),   # a tie keeps the certificate
])
def test_when_two_concessions_apply_the_holder_gets_the_better_and_the_journal_says_which(
        tmp_path: Path, sim: CentralSim, profile: str, certificate: str, concession: str,
        source: str, fare: int) -> None:
    _entitle(sim, "gen1-adult", certificate)
    with _root(tmp_path, sim, profile) as root:
        shown = _tap(root, "gen1-adult")
        assert shown.accepted and shown.decision is not None
        assert shown.decision.concession is not None
        assert shown.decision.concession.value == concession
        assert shown.decision.fare_percent == fare
        assert shown.decision.concession_source == source
        (record,) = _journal(root)
        assert record["concession"] == concession and record["concession_source"] == source


def test_a_certificate_learnt_online_is_applied_offline_within_the_window(
        tmp_path: Path, sim: CentralSim) -> None:
    _entitle(sim, "gen2-adult", "disabled")
    with _root(tmp_path, sim, "bus-validator") as root:
        root.denylist().refresh(root.central(), deadline=Deadline.after(3))  # type: ignore[arg-type]
        online = _tap(root, "gen2-adult")
        assert online.online and online.decision is not None
        assert online.decision.concession is not None
        sim.set_faults(mode="reset")
        offline = _tap(root, "gen2-adult")
        assert not offline.online and offline.accepted and offline.decision is not None
        assert offline.decision.concession is not None
        assert offline.decision.concession.value == "disabled"
        assert offline.decision.concession_source == "certificate"


# --- renewal (19.5) ---------------------------------------------------------------------------


@pytest.mark.parametrize("profile", ["bus-validator", "hospital-desk", "library-gate"])
def test_inside_the_last_three_months_the_decision_carries_a_renewal_notice(
        tmp_path: Path, sim: CentralSim, profile: str) -> None:
    with _root(tmp_path, sim, profile) as root:
        expiring = _tap_demo(root, sim, "expiring")
        fine = _tap_demo(root, sim, "normal")
    assert expiring.accepted and expiring.decision is not None
    assert "renewal_due" in expiring.decision.notices
    assert "此卡将于三个月内到期" in expiring.display()["zh"]
    assert fine.decision is not None and "renewal_due" not in fine.decision.notices


def test_after_expiry_the_profile_decides(tmp_path: Path, sim: CentralSim) -> None:
    with _root(tmp_path, sim, "bus-validator") as root:
        refused = _tap_demo(root, sim, "expired")
    assert not refused.accepted and refused.reason == "card_expired"
    with _root(tmp_path, sim, "hospital-desk") as root:
        served = _tap_demo(root, sim, "expired")
        assert served.accepted and served.online and served.decision is not None
        assert served.decision.notices == ("expired_accepted",)
        assert "expired_accepted" in _journal(root)[0]["notices"]
        sim.set_faults(mode="reset")
        waiting = _tap_demo(root, sim, "expired")
        # Offline the hospital accepts nothing: it waits for the central, expired or not.
        assert waiting.outcome.value == "defer" and not waiting.online
