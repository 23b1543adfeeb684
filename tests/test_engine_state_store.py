"""The decision engine's memory in SQLite: nothing is forgotten when the process goes.

Each test decides with a real engine on real files (the engine state and the denylist),
closes everything as a dying process would leave it, reopens from the same files and
decides again."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.demo import DEMO_CARDS

from sscard_terminal.central.client import CentralClient
from sscard_terminal.central.models import Entitlement
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Decision, DecisionEngine, Denylist, Outcome, Reason
from sscard_terminal.decision.credentials import PresentedCredential
from sscard_terminal.decision.state_store import (
    EngineState,
    LearntStanding,
    MemoryEngineState,
    SqliteEngineState,
    _decision_json,
)
from sscard_terminal.errors import StorageError
from sscard_terminal.profiles import Profile, load_profile, parse_profile

from .decision_helpers import ManualClock, read_tap, snapshot, tap

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Terminal:
    """The parts of one daemon run that hold state: engine state and denylist files."""

    engine: DecisionEngine
    state: SqliteEngineState
    denylist: Denylist

    def decide(self, credential: PresentedCredential) -> Decision:
        return self.engine.decide(credential, deadline=Deadline.after(2.0))


@contextmanager
def terminal(directory: Path, clock: ManualClock, profile: Profile | None = None,
             central: CentralClient | None = None) -> Iterator[Terminal]:
    state = SqliteEngineState(directory / "engine-state.db")
    denylist = Denylist.open(directory / "denylist.db", clock=clock)
    try:
        if denylist.version == 0:
            denylist.install(snapshot(1))
        engine = DecisionEngine(profile or load_profile("bus-validator"), central=central,
                                denylist=denylist, clock=clock, state=state)
        yield Terminal(engine, state, denylist)
    finally:
        state.close()
        denylist.close()


def rebooted(clock: ManualClock, seconds: float) -> ManualClock:
    """The machine rebooted: the wall clock moved on, the monotonic clock started over."""
    return ManualClock(wall=clock.wall + dt.timedelta(seconds=seconds), mono=3.0)


def test_a_retap_inside_the_anti_passback_window_is_refused_after_a_restart(
        tmp_path: Path) -> None:
    clock = ManualClock()
    with terminal(tmp_path, clock) as first:
        decision = first.decide(tap(1))
        assert decision.outcome is Outcome.ACCEPT
        first.engine.complete(decision)
    later = rebooted(clock, 20)
    with terminal(tmp_path, later) as second:
        again = second.decide(tap(1))
        assert again.outcome is Outcome.REFUSE
        assert again.reason is Reason.ANTI_PASSBACK
        assert second.decide(tap(2)).outcome is Outcome.ACCEPT    # another card passes
        later.advance(45)                                        # 65 s: window (60 s) over
        assert second.decide(tap(1)).outcome is Outcome.ACCEPT


def test_without_the_store_a_restart_forgets_the_tap(tmp_path: Path) -> None:
    """The same sequence on the in-memory state: the refusal above is the store's doing."""
    clock = ManualClock()
    with Denylist.open(tmp_path / "denylist.db", clock=clock) as denylist:
        denylist.install(snapshot(1))
        profile = load_profile("bus-validator")
        first = DecisionEngine(profile, central=None, denylist=denylist, clock=clock)
        first.complete(first.decide(tap(1), deadline=Deadline.after(2.0)))
        clock.advance(20)
        second = DecisionEngine(profile, central=None, denylist=denylist, clock=clock)
        assert second.decide(tap(1), deadline=Deadline.after(2.0)).outcome is Outcome.ACCEPT


def test_a_torn_transaction_replays_after_a_restart(tmp_path: Path) -> None:
    clock = ManualClock()
    with terminal(tmp_path, clock) as first:
        torn = first.decide(tap(1))          # never completed: the card left mid-way
    later = rebooted(clock, 30)
    with terminal(tmp_path, later) as second:
        replay = second.decide(tap(1))
    assert replay.replayed
    assert replay.transaction_id == torn.transaction_id
    # Every field comes back from the file (a field added to Decision but not stored fails).
    assert replay == replace(torn, replayed=True, elapsed_ms=replay.elapsed_ms)


def test_the_offline_accept_cap_counts_across_restarts(tmp_path: Path) -> None:
    text = (REPO / "profiles" / "bus-validator.toml").read_text()
    profile = parse_profile(text.replace("max_decisions = 2000", "max_decisions = 2"),
                            source="capped.toml")
    clock = ManualClock()
    with terminal(tmp_path, clock, profile) as first:
        assert first.decide(tap(1)).accepted
        assert first.decide(tap(2)).accepted
        assert first.engine.status().offline_accepts_in_row == 2
    with terminal(tmp_path, rebooted(clock, 5), profile) as second:
        assert second.engine.status().offline_accepts_in_row == 2
        third = second.decide(tap(3))
    assert third.outcome is Outcome.REFUSE and third.reason is Reason.OFFLINE_LIMIT


def test_entitlements_learnt_online_serve_offline_after_a_restart(
        tmp_path: Path, central_sim: CentralSim, client: CentralClient) -> None:
    clock = ManualClock(wall=dt.datetime.now(dt.UTC))
    senior = read_tap(central_sim.store, DEMO_CARDS["normal"].card_number)
    with terminal(tmp_path, clock, central=client) as first:
        first.denylist.refresh(client, deadline=Deadline.after(5.0))
        online = first.decide(senior)
        assert online.online and online.concession is Entitlement.SENIOR
        first.engine.complete(online)
        last_ok = first.engine.status().last_online_ok
    later = rebooted(clock, 61)
    with terminal(tmp_path, later, central=None) as second:
        offline = second.decide(senior)
        assert second.engine.status().last_online_ok == last_ok
    assert (offline.online, offline.accepted, offline.concession) == (
        False, True, Entitlement.SENIOR)


def exercise(state: EngineState, clock: ManualClock) -> list[object]:
    """One sequence of engine-state calls; the answers must not depend on the store."""
    profile = load_profile("bus-validator")
    decision = DecisionEngine(profile, central=None, denylist=_NoDenylist(),
                              clock=clock, state=state).decide(tap(1),
                                                               deadline=Deadline.after(2.0))
    at = state.now(clock)
    seen: list[object] = [state.recent(decision.card_ref) is not None]
    state.complete(decision.card_ref, "not-this-one")
    seen.append(state.recent(decision.card_ref).completed)  # type: ignore[union-attr]
    state.complete(decision.card_ref, decision.transaction_id)
    seen.append(state.recent(decision.card_ref).completed)  # type: ignore[union-attr]
    seen.append(state.withdraw(decision.card_ref, "not-this-one"))
    seen.append(state.withdraw(decision.card_ref, decision.transaction_id))
    seen.append(state.recent(decision.card_ref))
    standing = LearntStanding(frozenset(), frozenset({Entitlement.CHILD}), clock.now())
    state.learn("a", standing)
    seen.append(state.learnt("a") == standing)
    state.forget("a")
    seen.append(state.learnt("a"))
    state.offline_accepted()
    state.offline_accepted()
    state.offline_accept_withdrawn()
    seen.append(state.offline_accepts_in_row())
    state.online_answered(clock.now())
    seen.append((state.offline_accepts_in_row(), state.last_online_ok() == clock.now()))
    for n in range(5):                      # three fit; the oldest go first
        state.remember(f"card-{n}", decision, at + n, horizon=1000.0)
    seen.append([state.recent(f"card-{n}") is not None for n in range(5)])
    state.remember("card-late", decision, at + 2000.0, horizon=1000.0)   # horizon prunes
    seen.append([state.recent(f"card-{n}") is not None for n in range(5)])
    return seen


class _NoDenylist:
    def lookup(self, card_ref: str, *, today: dt.date | None = None,
               now: dt.datetime | None = None) -> None:
        return None

    def age_hours(self) -> float:
        return 1.0


def test_sqlite_and_memory_stores_answer_alike(tmp_path: Path) -> None:
    memory = exercise(MemoryEngineState(max_cards=3), ManualClock())
    with SqliteEngineState(tmp_path / "s.db", max_cards=3) as sqlite_state:
        stored = exercise(sqlite_state, ManualClock())
    assert memory == stored
    assert memory[-2] == [False, False, True, True, True]
    assert memory[-1] == [False] * 5


def test_the_sqlite_timeline_is_the_wall_clock(tmp_path: Path) -> None:
    clock = ManualClock()
    with SqliteEngineState(tmp_path / "s.db") as state:
        assert state.now(clock) == clock.wall.timestamp()
    assert MemoryEngineState().now(clock) == clock.mono


def test_a_foreign_file_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "engine-state.db"
    path.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(StorageError, match=r"engine-state\.db"):
        SqliteEngineState(path)
    assert path.read_bytes().startswith(b"this is not")      # left as evidence


def test_a_newer_schema_is_refused_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "engine-state.db"
    SqliteEngineState(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE schema_version SET version = 99")
    db.close()
    with pytest.raises(StorageError, match="newer version"):
        SqliteEngineState(path)


def test_every_field_of_a_decision_is_stored() -> None:
    """A field added to Decision must be added to the file too, or a replay after a
    restart would come back without it."""
    decision = DecisionEngine(load_profile("bus-validator"), central=None,
                              denylist=_NoDenylist(), clock=ManualClock()).decide(
        tap(1), deadline=Deadline.after(2.0))
    stored = set(json.loads(_decision_json(decision)))
    assert stored == {field.name for field in dataclasses.fields(Decision)}
