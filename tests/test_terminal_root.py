"""The composition root and its one presentation pipeline, on real parts: ``sim:`` cards,
the central simulator over HTTP on loopback, a real SQLite journal and replay cache."""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_ecodes import issue_code
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS, virtual_cards

from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.central.client import TerminalConfig
from sscard_terminal.central.models import DenylistUpdate
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision.credentials import PresentedCredential
from sscard_terminal.errors import ConfigError, JournalKeyError
from sscard_terminal.profiles import load_profile, parse_profile
from sscard_terminal.terminal.presentation import PresentationRefusal
from sscard_terminal.terminal.root import TerminalRoot
from sscard_terminal.terminal.settings import KeySource, TerminalSettings

TERMINAL = "T-TEST-0001"


def _key(tmp_path: Path) -> KeySource:
    key = tmp_path / "journal.key"
    if not key.exists():
        key.write_bytes(secrets.token_bytes(32))
        key.chmod(0o600)
    return KeySource(file=key)


def _settings(tmp_path: Path, **changes: object) -> TerminalSettings:
    values: dict[str, object] = {
        "terminal_id": TERMINAL, "profile": load_profile("bus-validator"),
        "state_dir": tmp_path, "journal_key": _key(tmp_path)}
    values.update(changes)
    return TerminalSettings(**values)  # type: ignore[arg-type]


def _profile_with(text_changes: dict[str, str]) -> str:
    text = Path("profiles/bus-validator.toml").read_text(encoding="utf-8")
    for old, new in text_changes.items():
        assert old in text
        text = text.replace(old, new)
    return text


def _tap(root: TerminalRoot, holder: str, *, arrived_at: float | None = None):  # type: ignore[no-untyped-def]
    arrived = time.monotonic() if arrived_at is None else arrived_at
    with root.open_card(Deadline.after(2.0), f"sim:{holder}") as transport:
        return root.presenter().present_card(transport, arrived_at=arrived, lane="lane-1")


def _records(root: TerminalRoot) -> list[tuple[str, dict[str, object]]]:
    return [(r.kind, dict(r.payload)) for r in root.journal().records()]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CentralSim]:
    central = CentralSim(tmp_path / "central.db")
    yield central
    central.stop()


def _central(sim: CentralSim) -> TerminalConfig:
    return TerminalConfig(sim.base_url, sim.terminal_id, sim.secret,
                          central_public_key=sim.central_public_key)


def test_a_tap_is_decided_journaled_and_completed(tmp_path: Path, sim: CentralSim) -> None:
    with TerminalRoot(_settings(tmp_path, central=_central(sim),
                                terminal_id=sim.terminal_id)) as root:
        shown = _tap(root, "gen2-adult")
        assert shown.accepted and shown.online
        assert shown.journaled and shown.decision is not None
        kinds = _records(root)
        assert [k for k, _ in kinds] == ["card_tap"]
        payload = kinds[0][1]
        assert payload["transaction_id"] == shown.transaction_id
        assert payload["reason"] == shown.reason and payload["lane"] == "lane-1"
        # Completed: a re-tap is a new presentation that meets anti-passback, not a replay.
        again = _tap(root, "gen2-adult")
        assert again.reason == "anti_passback"
        assert again.decision is not None and not again.decision.replayed


def test_read_level_refusals_are_journaled_with_a_stable_reason_and_no_personal_data(
        tmp_path: Path) -> None:
    with TerminalRoot(_settings(tmp_path)) as root:
        shown = _tap(root, "bank-only")
        assert not shown.accepted
        assert shown.reason == PresentationRefusal.NOT_SOCIAL_SECURITY_CARD.value
        assert shown.journaled
        (kind, payload), = _records(root)
        assert kind == "presentation_refused"
        assert payload["reason"] == "not_social_security_card"
        assert payload["transaction_id"] == shown.transaction_id
        text = repr(payload)
        for holder in virtual_cards():
            for secret in (holder.id_number, holder.name, holder.card_number):
                assert secret not in text


def test_a_decision_that_cannot_be_journaled_is_refused_and_forgotten(
        tmp_path: Path, sim: CentralSim) -> None:
    profile = parse_profile(_profile_with({'when_full = "alarm"': 'when_full = "refuse"',
                                           "max_records = 200000": "max_records = 1"}),
                            source="full.toml")
    with TerminalRoot(_settings(tmp_path, profile=profile, central=_central(sim),
                                terminal_id=sim.terminal_id)) as root:
        first = _tap(root, "gen1-adult")
        assert first.accepted and first.journaled
        refused = _tap(root, "gen2-adult")
        assert not refused.accepted and refused.reason == "journal_full"
        assert not refused.journaled and refused.decision is None
        # The engine forgot the accept it could not record: a re-tap is neither a replay
        # of it nor held back by anti-passback for a ride that never happened.
        with sqlite3.connect(tmp_path / "engine-state.db") as stored:
            assert stored.execute("SELECT count(*) FROM recent_decision").fetchone()[0] == 1
        stored.close()
        again = _tap(root, "gen2-adult")
        assert again.reason == "journal_full"


def test_the_journal_has_the_profiles_durability(tmp_path: Path) -> None:
    profile = parse_profile(_profile_with({'synchronous = "FULL"': 'synchronous = "NORMAL"'}),
                            source="normal.toml")
    with TerminalRoot(_settings(tmp_path, profile=profile)) as root:
        journal = root.journal()
        level = journal._db.execute("PRAGMA synchronous").fetchone()[0]
        assert level == 1   # NORMAL
    (tmp_path / "full").mkdir()
    with TerminalRoot(_settings(tmp_path / "full")) as root:
        level = root.journal()._db.execute("PRAGMA synchronous").fetchone()[0]
        assert level == 2   # FULL


def test_the_journal_key_is_never_invented(tmp_path: Path) -> None:
    with TerminalRoot(_settings(tmp_path, journal_key=None)) as root, \
            pytest.raises(ConfigError, match="journal key"):
        root.journal()
    missing = KeySource(file=tmp_path / "absent.key")
    with TerminalRoot(_settings(tmp_path, journal_key=missing)) as root, \
            pytest.raises(JournalKeyError, match=r"absent\.key"):
        root.journal()
    with pytest.raises(ConfigError):
        KeySource(file=tmp_path / "k", credential="journal-key")
    assert not (tmp_path / "journal.db").exists()


def test_the_journal_key_may_come_from_a_systemd_credential(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "journal-key").write_bytes(secrets.token_bytes(32))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    with TerminalRoot(_settings(tmp_path, journal_key=KeySource(credential="journal-key"))) as root:
        assert _tap(root, "gen2-adult").journaled


def test_an_e_code_replay_is_refused_across_restarts(tmp_path: Path, sim: CentralSim) -> None:
    state = tmp_path / "state"
    state.mkdir()
    code = issue_code(sim.store, DEMO_CARDS["normal"].card_number)
    settings = _settings(state, central=_central(sim), terminal_id=sim.terminal_id)
    with TerminalRoot(settings) as root:
        first = root.presenter().present_code(code, arrived_at=time.monotonic())
        assert first.accepted, first
    with TerminalRoot(settings) as root:     # a restart: the replay cache is on disk
        second = root.presenter().present_code(code, arrived_at=time.monotonic())
        assert not second.accepted and second.ecode_reason == "replayed"
        assert [k for k, _ in _records(root)] == ["ecode_scan", "ecode_scan"]


def test_the_deadline_starts_when_the_code_arrived(tmp_path: Path, sim: CentralSim) -> None:
    settings = _settings(tmp_path, central=_central(sim), terminal_id=sim.terminal_id)
    with TerminalRoot(settings) as root:
        presenter = root.presenter()
        fresh = presenter.present_code(issue_code(sim.store, DEMO_CARDS["normal"].card_number),
                                       arrived_at=time.monotonic())
        assert fresh.online
        # A code read long ago (the budget spent waiting in a queue) has no time left for
        # the central: it is decided offline at once, not given a fresh budget.
        stale = presenter.present_code(
            issue_code(sim.store, DEMO_CARDS["disabled"].card_number),
            arrived_at=time.monotonic() - 10.0)
        assert not stale.online


def test_online_only_codes_follow_the_profiles_policy(tmp_path: Path, sim: CentralSim) -> None:
    config = _central(sim)
    sim.set_faults(mode="reset")
    for profile, expected in (("bus-validator", "refuse"), ("hospital-desk", "defer")):
        directory = tmp_path / profile
        directory.mkdir()
        settings = _settings(directory, central=config, terminal_id=sim.terminal_id,
                             profile=load_profile(profile), code_shapes={"national": r"^NAT:.*$"})
        with TerminalRoot(settings) as root:
            verification = root.verifier().verify("NAT:0123456789", deadline=Deadline.after(1))
            assert verification.reason.value == ("deferred" if expected == "defer"
                                                 else "central_unreachable")


def test_a_closed_root_builds_nothing(tmp_path: Path) -> None:
    root = TerminalRoot(_settings(tmp_path))
    root.close()
    with pytest.raises(RuntimeError):
        root.journal()


def test_the_engines_memory_lives_in_the_state_directory(tmp_path: Path) -> None:
    """A tap, the root closed as a stopping daemon would, a new root on the same files:
    the same card inside the anti-passback window is refused."""
    with TerminalRoot(_settings(tmp_path)) as root:
        root.denylist().install(_empty_denylist())
        first = _tap(root, "gen2-adult")
        assert first.accepted and first.journaled
    with TerminalRoot(_settings(tmp_path)) as root:
        again = _tap(root, "gen2-adult")
    assert not again.accepted and again.reason == "anti_passback"
    assert (tmp_path / "engine-state.db").is_file()


def _empty_denylist() -> DenylistUpdate:
    return DenylistUpdate(version=1, since_version=0, full=True, added=(), removed=())


def test_a_torn_transaction_already_journaled_is_replayed_not_journaled_again(
        tmp_path: Path) -> None:
    """The process died after journaling the accept and before completing it: the re-tap
    after the restart replays the same transaction and the journal keeps one record."""
    with TerminalRoot(_settings(tmp_path)) as root:
        root.denylist().install(_empty_denylist())
        engine = root.engine()
        engine.complete = lambda decision: None      # type: ignore[method-assign]
        first = _tap(root, "gen2-adult")
        assert first.accepted and first.journaled
    with TerminalRoot(_settings(tmp_path)) as root:
        again = _tap(root, "gen2-adult")
        records = [r for _kind, r in _records(root)]
    assert again.accepted and again.journaled
    assert again.decision is not None and again.decision.replayed
    assert again.transaction_id == first.transaction_id
    assert [r["transaction_id"] for r in records] == [first.transaction_id]


def test_a_torn_transaction_never_journaled_is_journaled_by_its_replay(
        tmp_path: Path) -> None:
    """The process died between the decision and its journal record: the replay after
    the restart journals it, once."""
    with TerminalRoot(_settings(tmp_path)) as root:
        root.denylist().install(_empty_denylist())
        with root.open_card(Deadline.after(2.0), "sim:gen2-adult") as transport:
            info = read_card_info(transport)
        decided = root.engine().decide(PresentedCredential.from_card_info(info),
                                       deadline=Deadline.after(1.0))
        assert decided.accepted
    with TerminalRoot(_settings(tmp_path)) as root:
        again = _tap(root, "gen2-adult")
        records = [r for _kind, r in _records(root)]
    assert again.journaled and again.transaction_id == decided.transaction_id
    assert [r["transaction_id"] for r in records] == [decided.transaction_id]
