"""Profiles load strictly: every shipped one is valid, and a broken one names file, key, why."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from sscard_terminal.central.models import Application, Entitlement
from sscard_terminal.errors import ConfigError, JournalFullError
from sscard_terminal.offline_queue.journal import Journal
from sscard_terminal.profile_rules import IdentityRelease, UnauthenticatedPolicy
from sscard_terminal.profiles import (
    BUILTIN_PROFILES,
    PROFILE_ALIASES,
    ECodeKind,
    JournalFullBehaviour,
    OfflinePolicy,
    load_profile,
    parse_profile,
)

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"


def bus_text() -> str:
    return (PROFILE_DIR / "bus-validator.toml").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_every_shipped_profile_loads_by_name(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.offline_reserve_ms < profile.budget_ms
    assert profile.source == f"{name}.toml"


def test_shipped_profiles_say_what_each_deployment_needs() -> None:
    bus = load_profile("bus-validator")
    assert bus.application is Application.TRANSIT
    assert bus.budget_ms == 300
    assert bus.offline_policy is OfflinePolicy.ACCEPT
    assert bus.concessions[Entitlement.SENIOR] == 0
    assert bus.journal.when_full is JournalFullBehaviour.ALARM
    hospital = load_profile("hospital-desk")
    assert ECodeKind.EVOUCHER in hospital.ecode_kinds
    assert hospital.offline_policy is OfflinePolicy.DEFER
    assert hospital.opaque_offline is OfflinePolicy.DEFER
    library = load_profile("library-gate")
    assert library.anti_passback_seconds == 300
    scenic = load_profile("scenic-gate")
    assert scenic.anti_passback_for([Entitlement.VOLUNTEER]) == 0
    assert scenic.anti_passback_for([Entitlement.SENIOR, Entitlement.VOLUNTEER]) == 0
    assert scenic.anti_passback_for([Entitlement.SENIOR]) == 1800
    assert scenic.anti_passback_for([]) == 1800


def test_profile_file_by_path(tmp_path: Path) -> None:
    path = tmp_path / "my-bus.toml"
    path.write_text(bus_text().replace('name = "bus-validator"', 'name = "my-bus"'),
                    encoding="utf-8")
    profile = load_profile(path)
    assert profile.name == "my-bus"
    assert profile.source == str(path)


@pytest.mark.parametrize(
    ("old", "new", "key", "why"),
    [
        ("budget_ms = 300 ", "budget_ms = \"fast\" ", "timing.budget_ms", "must be int"),
        ("budget_ms = 300 ", "budget_ms = true ", "timing.budget_ms", "must be int"),
        ("budget_ms = 300 ", "budget_ms = 5 ", "timing.budget_ms", "outside"),
        ("offline_reserve_ms = 60 ", "offline_reserve_ms = 300 ", "timing.offline_reserve_ms",
         "leaves no time"),
        ('application = "transit"', 'application = "casino"', "profile.application",
         "not one of"),
        ('policy = "accept"', 'policy = "maybe"', "offline.policy", "not one of"),
        ("senior = 0\ndisabled", "senior = 150\ndisabled", "concessions.senior", "outside"),
        ("child = 50\nteacher", "child = 50\npensioner = 0\nteacher", "concessions.pensioner",
         "unknown key"),
        ('kinds = ["ours", "national"]', 'kinds = ["ours", "barcode"]', "ecode.kinds",
         "not one of"),
        ('opaque_offline = "refuse"', 'opaque_offline = "accept"', "ecode.opaque_offline",
         "cannot be accepted offline"),
        ('synchronous = "FULL"', 'synchronous = "OFF"', "journal.synchronous", "not FULL"),
        ('when_full = "alarm"', 'when_full = "ignore"', "journal.when_full", "not one of"),
        ("max_disk_mb = 512\n", "", "journal.max_disk_mb", "missing"),
        ("senior = 60\nchild = 60", "senior = -1\nchild = 60",
         "anti_passback.by_card_type.senior", "whole seconds"),
        # A misspelt card type never matched a concession: its window silently never applied.
        ("senior = 60\nchild = 60", "senoir = 60\nchild = 60",
         "anti_passback.by_card_type.senoir", "unknown card type"),
    ],
)
def test_broken_profile_names_file_key_and_why(old: str, new: str, key: str, why: str) -> None:
    text = bus_text()
    assert old in text
    with pytest.raises(ConfigError) as info:
        parse_profile(text.replace(old, new, 1), source="/etc/sscard/bus.toml")
    message = str(info.value)
    assert message.startswith("/etc/sscard/bus.toml: key ")
    assert repr(key) in message
    assert why in message


def test_unknown_table_and_missing_table_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"key 'fares': unknown table"):
        parse_profile(bus_text() + "\n[fares]\nadult = 2\n", source="x.toml")
    without_journal = re.sub(r"\[journal\][^\[]*", "", bus_text())
    with pytest.raises(ConfigError, match=r"x.toml: key 'journal': missing table"):
        parse_profile(without_journal, source="x.toml")


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[profile\nname = ", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken.toml: not valid TOML"):
        load_profile(path)


def test_unknown_profile_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ConfigError, match="bus-validator"):
        load_profile("tram-validator")


@pytest.mark.parametrize(("name", "refuses"), [("library-gate", True), ("bus-validator", False)])
def test_journal_settings_drive_a_real_journal(tmp_path: Path, name: str, refuses: bool) -> None:
    settings = replace(load_profile(name).journal, max_records=2)
    limits = settings.limits()
    assert limits.max_age_s == settings.max_age_hours * 3600
    journal = Journal.open(tmp_path / "journal.db", terminal_id="T-TEST-0001",
                           keys=bytes(range(32)), synchronous=settings.synchronous,
                           limits=limits)
    try:
        journal.enqueue("tap", {"reason": "accepted"})
        journal.enqueue("tap", {"reason": "accepted"})
        if refuses:
            with pytest.raises(JournalFullError):
                journal.enqueue("tap", {"reason": "accepted"})
            assert journal.status().queued == 2
        else:
            journal.enqueue("tap", {"reason": "accepted"})
            assert journal.status().queued == 3
    finally:
        journal.close()


SCENARIOS = ("bus-validator", "metro-gate", "library-gate", "library-borrowing",
             "museum-gate", "culture-venue", "scenic-booking", "scenic-identity-check",
             "scenic-ticket-pickup", "sports-venue", "hospital-desk", "pharmacy-counter",
             "hotel-registration", "exam-check-in", "government-service-hall")


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_scenario_the_regulations_name_loads(scenario: str) -> None:
    """Issue 19.1: each scenario loads by its own name; merged ones give their profile."""
    profile = load_profile(scenario)
    assert profile.name in BUILTIN_PROFILES


@pytest.mark.parametrize("name", BUILTIN_PROFILES)
def test_every_shipped_profile_says_whom_it_serves_and_which_clause_asks(name: str) -> None:
    text = (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8")
    header = text.split("[profile]", 1)[0]
    assert "Serves" in header or "serves" in header
    assert re.search(r"(Wenzhou 2024|Hainan|Hubei 2022) [^\n]*[§(一二三四五]", header), name


def test_merged_scenarios_are_said_so_in_their_file() -> None:
    for alias, target in PROFILE_ALIASES.items():
        text = (PROFILE_DIR / f"{target}.toml").read_text(encoding="utf-8")
        header = text.split("[profile]", 1)[0].lower()
        words = alias.split("-")[0]
        assert words in header or alias in header, alias


def test_the_readme_lists_every_shipped_profile() -> None:
    readme = (PROFILE_DIR.parent / "README.md").read_text(encoding="utf-8")
    for name in BUILTIN_PROFILES:
        assert f"| `{name}` |" in readme, name


def test_identity_desk_requires_a_complete_authenticated_read_and_no_offline_release() -> None:
    desk = load_profile("hotel-registration")
    assert desk.identity.release is IdentityRelease.COMPLETE
    assert desk.identity.require_authenticated and not desk.identity.offline
    assert desk.authentication.unauthenticated is UnauthenticatedPolicy.NEVER
