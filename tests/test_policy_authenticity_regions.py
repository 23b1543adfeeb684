"""Authenticity and cards from elsewhere as the profile's policy (issue 22.3, 22.4), through
the composition root's one pipeline: ``sim:`` cards, the central simulator over HTTP (its
HSM, and a province's central that does not know another province's cards), a real
journal and denylist."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sscard_hardware_sim.central_ecodes import issue_code
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import virtual_cards
from sscard_hardware_sim.virtual_card import VirtualCard, load_holder

from sscard_terminal.central.client import TerminalConfig
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.sim import SimTransport
from sscard_terminal.errors import ConfigError
from sscard_terminal.profiles import parse_profile
from sscard_terminal.terminal.presentation import Presentation
from sscard_terminal.terminal.root import TerminalRoot
from sscard_terminal.terminal.settings import KeySource, TerminalSettings

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"


def _profile(extra: str = "", name: str = "bus-validator") -> Any:
    text = (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8")
    # Anti-passback off: the tests present one card several times on purpose.
    text = text.replace("default_seconds = 60 ", "default_seconds = 0 ")
    return parse_profile(text + "\n" + extra, source=f"{name}+test.toml")


def _settings(tmp_path: Path, sim: CentralSim | None, profile: Any,
              **changes: object) -> TerminalSettings:
    key = tmp_path / "journal.key"
    if not key.exists():
        key.write_bytes(secrets.token_bytes(32))
        key.chmod(0o600)
    central = None if sim is None else TerminalConfig(
        sim.base_url, sim.terminal_id, sim.secret, central_public_key=sim.central_public_key)
    values: dict[str, object] = {
        "terminal_id": sim.terminal_id if sim else "T-TEST-0001", "profile": profile,
        "central": central, "state_dir": tmp_path, "journal_key": KeySource(file=key)}
    values.update(changes)
    return TerminalSettings(**values)  # type: ignore[arg-type]


def _tap(root: TerminalRoot, holder: str) -> Presentation:
    with root.open_card(Deadline.after(2.0), f"sim:{holder}") as transport:
        return root.presenter().present_card(transport, arrived_at=time.monotonic())


def _tap_data(root: TerminalRoot, data: dict[str, Any]) -> Presentation:
    transport = SimTransport(VirtualCard(data), reader_name="sim:test")
    try:
        return root.presenter().present_card(transport, arrived_at=time.monotonic())
    finally:
        transport.close()


def _as_generation_2(holder: str) -> dict[str, Any]:
    """The holder's card as a generation 2 card (holder data free, no read
    authentication): the card's identity is the same, so the central knows it alike."""
    data = load_holder(holder)
    data["ef05"] = [[t, "322E3030" if t == "03" else v] for t, v in data["ef05"]]
    data["read_auth"] = False
    return data


def _journal(root: TerminalRoot) -> list[dict[str, Any]]:
    return [dict(r.payload) for r in root.journal().records()]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CentralSim]:
    central = CentralSim(tmp_path / "central.db")
    yield central
    central.stop()


# --- authenticity (22.3) --------------------------------------------------------------------


def test_every_decision_records_how_the_card_was_authenticated(tmp_path: Path,
                                                               sim: CentralSim) -> None:
    with TerminalRoot(_settings(tmp_path, sim, _profile())) as root:
        genuine = _tap(root, "gen3-adult")
        assert genuine.accepted, genuine
        assert genuine.decision is not None and genuine.decision.authentication == "hsm"
        older = _tap(root, "gen2-adult")
        assert older.accepted and older.decision is not None
        assert older.decision.authentication == "none"     # gen 2: nothing to authenticate
        code = issue_code(sim.store, next(c for c in virtual_cards()
                                          if c.key == "gen1-adult").card_number)
        coded = root.presenter().present_code(code, arrived_at=time.monotonic())
        assert coded.decision is not None and coded.decision.authentication == "signature"
        assert [p["authentication"] for p in _journal(root)] == ["hsm", "none", "signature"]


def test_a_clone_is_refused_by_a_terminal_whose_module_it_reaches(tmp_path: Path,
                                                                  sim: CentralSim) -> None:
    with TerminalRoot(_settings(tmp_path, sim, _profile('[authentication]\n'
                                                        'unauthenticated = "always"'))) as root:
        # Even a profile that accepts unauthenticated cards: the module saw the clone.
        clone = _tap(root, "gen3-cloned")
        assert not clone.accepted and clone.reason == "card_forged"


def test_a_clone_is_refused_when_the_module_cannot_be_reached(tmp_path: Path,
                                                              sim: CentralSim) -> None:
    with TerminalRoot(_settings(tmp_path, sim, _profile())) as root:
        sim.set_faults(mode="reset")
        clone = _tap(root, "gen3-cloned")
        assert not clone.accepted
        genuine = _tap(root, "gen3-adult")
        assert not genuine.accepted    # the HSM is down: no authenticated read either


def test_without_a_module_a_generation_3_card_is_not_accepted_on_its_free_items(
        tmp_path: Path) -> None:
    profile = _profile()
    with TerminalRoot(_settings(tmp_path, None, profile, security_modules=False)) as root:
        root.denylist()
        for holder in ("gen3-cloned", "gen3-adult"):
            shown = _tap(root, holder)
            assert not shown.accepted and shown.reason == "card_not_authenticated", holder
            assert shown.decision is not None and shown.decision.authentication == "none"
        assert [p["reason"] for p in _journal(root)] == ["card_not_authenticated"] * 2


@pytest.mark.parametrize(("policy", "gen3_accepted", "gen2_accepted"),
                         [("never", False, False), ("older_generations", False, True),
                          ("always", True, True)])
def test_the_profile_says_whether_an_unauthenticated_card_may_pass(
        tmp_path: Path, sim: CentralSim, policy: str, gen3_accepted: bool,
        gen2_accepted: bool) -> None:
    profile = _profile(f'[authentication]\nunauthenticated = "{policy}"')
    with TerminalRoot(_settings(tmp_path, sim, profile, security_modules=False)) as root:
        assert _tap(root, "gen3-cloned").accepted is gen3_accepted
        shown = _tap(root, "gen2-adult")
        assert shown.accepted is gen2_accepted
        if not gen2_accepted:
            assert shown.reason == "card_not_authenticated"


def test_an_unknown_authentication_policy_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"authentication\.unauthenticated"):
        _profile('[authentication]\nunauthenticated = "sometimes"')


# --- cards from elsewhere (22.4) ------------------------------------------------------------

LOCAL = '[regions]\nlocal = ["33"]\nelsewhere = "{policy}"'


def _other_province() -> Any:
    return next(c for c in virtual_cards() if c.key == "other-province")


@pytest.mark.parametrize("policy", ["full_fare", "refuse"])
def test_a_card_from_elsewhere_gets_the_profiles_answer_online_and_offline_alike(
        tmp_path: Path, sim: CentralSim, policy: str) -> None:
    sim.store.set_home_regions(["33"])        # Zhejiang's central: Qinghai's cards unknown
    card = _other_province()
    assert card.region.startswith("63")
    profile = _profile(LOCAL.format(policy=policy))
    data = _as_generation_2("other-province")
    with TerminalRoot(_settings(tmp_path, sim, profile)) as root:
        root.denylist().refresh(root.central(), deadline=Deadline.after(3))   # type: ignore[arg-type]
        code = issue_code(sim.store, card.card_number)
        online_tap = _tap_data(root, data)
        online_code = root.presenter().present_code(code, arrived_at=time.monotonic())
        sim.set_faults(mode="reset")
        time.sleep(0.05)
        offline_tap = _tap_data(root, data) if policy == "refuse" else None
        offline_code = root.presenter().present_code(
            issue_code(sim.store, card.card_number), arrived_at=time.monotonic())
    for shown in (online_tap, online_code):
        assert shown.reason != "card_unknown", shown
        if policy == "refuse":
            assert not shown.accepted and shown.reason == "card_from_elsewhere"
        else:
            assert shown.accepted, shown
            assert shown.decision is not None
            assert shown.decision.fare_percent == 100 and shown.decision.concession is None
            assert "from_elsewhere" in shown.decision.notices
    if offline_tap is not None:
        assert not offline_tap.online and offline_tap.reason == "card_from_elsewhere"
        assert not offline_code.online and offline_code.reason == "card_from_elsewhere"
    else:
        assert not offline_code.online and offline_code.accepted, offline_code
        assert offline_code.decision is not None
        assert "from_elsewhere" in offline_code.decision.notices


def test_offline_a_card_from_elsewhere_is_accepted_at_the_full_fare(tmp_path: Path,
                                                                   sim: CentralSim) -> None:
    sim.store.set_home_regions(["33"])
    profile = _profile(LOCAL.format(policy="full_fare"))
    with TerminalRoot(_settings(tmp_path, sim, profile)) as root:
        root.denylist().refresh(root.central(), deadline=Deadline.after(3))   # type: ignore[arg-type]
        sim.set_faults(mode="reset")
        shown = _tap_data(root, _as_generation_2("other-province"))
        assert shown.accepted and not shown.online
        assert shown.decision is not None and "from_elsewhere" in shown.decision.notices
        assert shown.decision.fare_percent == 100


def test_a_local_card_the_central_does_not_know_is_still_card_unknown(tmp_path: Path,
                                                                      sim: CentralSim) -> None:
    sim.store.set_home_regions(["33"])
    data = _as_generation_2("gen2-adult")
    data["ef05"] = [[t, "330300D156000005" + "0" * 15 + "9" if t == "01" else v]
                    for t, v in data["ef05"]]
    with TerminalRoot(_settings(tmp_path, sim, _profile(LOCAL.format(policy="full_fare")))) \
            as root:
        shown = _tap_data(root, data)
        assert shown.online and shown.reason == "card_unknown"


def test_local_concessions_stay_local(tmp_path: Path, sim: CentralSim) -> None:
    # The simulated central knows the card (no home regions) and gives it entitlements;
    # a profile whose local list leaves its region out still charges the full fare.
    card = _other_province()
    sim.store.conn.execute("INSERT INTO holder_entitlements SELECT holder_id, 'senior' "
                           "FROM cards WHERE card_number = ?", (card.card_number,))
    for local, fare in (('["33", "63"]', 0), ('["33"]', 100)):
        directory = tmp_path / local.count(",").__str__()
        directory.mkdir()
        profile = _profile(f'[regions]\nlocal = {local}\nelsewhere = "full_fare"')
        with TerminalRoot(_settings(directory, sim, profile)) as root:
            shown = _tap_data(root, _as_generation_2("other-province"))
            assert shown.accepted and shown.online
            assert shown.decision is not None and shown.decision.fare_percent == fare


@pytest.mark.parametrize(("local", "why"), [('["3"]', "not a 2-, 4- or 6-digit"),
                                            ('["99"]', "no province"),
                                            ('["3300"]', "never 00"),
                                            ('["33x3"]', "not a 2-, 4- or 6-digit"),
                                            ("[33]", "string")])
def test_a_region_rule_naming_an_impossible_code_is_refused_naming_the_key(local: str,
                                                                           why: str) -> None:
    with pytest.raises(ConfigError, match=r"regions\.local") as info:
        _profile(f"[regions]\nlocal = {local}")
    assert why in str(info.value)
