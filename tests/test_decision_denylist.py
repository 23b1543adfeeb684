"""The local denylist file: installs verified updates atomically, by version, and survives
restarts; foreign or newer files are refused without being touched."""

from __future__ import annotations

import sqlite3
from datetime import date
from pathlib import Path

import pytest

from sscard_terminal.central.models import CardStatus, DenylistEntry, DenylistUpdate
from sscard_terminal.decision import Denylist
from sscard_terminal.errors import CentralProtocolError, DenylistError

from .decision_helpers import ManualClock, snapshot, tap


def test_snapshot_then_delta_then_restart(tmp_path: Path) -> None:
    path = tmp_path / "denylist.db"
    clock = ManualClock()
    lost, void, back = tap(1).card_ref, tap(2).card_ref, tap(3).card_ref
    with Denylist.open(path, clock=clock) as denylist:
        assert denylist.version == 0
        assert denylist.age_hours() is None
        denylist.install(snapshot(5, (lost, CardStatus.FORMAL_LOSS), (back, CardStatus.SUSPENDED)))
        denylist.install(DenylistUpdate(version=7, since_version=5, full=False,
                                        added=(DenylistEntry(void, CardStatus.CANCELLED),),
                                        removed=(back,)))
        clock.advance(3600)
        assert denylist.age_hours() == pytest.approx(1.0)
    with Denylist.open(path, clock=clock) as reopened:
        assert reopened.version == 7
        assert reopened.state().entries == 2
        entry = reopened.lookup(lost)
        assert entry is not None and entry.status is CardStatus.FORMAL_LOSS
        cancelled = reopened.lookup(void)
        assert cancelled is not None and cancelled.status is CardStatus.CANCELLED
        assert reopened.lookup(back) is None
        assert reopened.age_hours() == pytest.approx(1.0)


def test_snapshot_replaces_everything(tmp_path: Path) -> None:
    with Denylist.open(tmp_path / "d.db") as denylist:
        denylist.install(snapshot(3, (tap(1).card_ref, CardStatus.FORMAL_LOSS)))
        denylist.install(snapshot(9, (tap(2).card_ref, CardStatus.REPLACED)))
        assert denylist.lookup(tap(1).card_ref) is None
        assert denylist.lookup(tap(2).card_ref) is not None
        assert denylist.version == 9


def test_delta_with_a_gap_or_an_old_version_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with Denylist.open(path) as denylist:
        denylist.install(snapshot(5, (tap(1).card_ref, CardStatus.FORMAL_LOSS)))
        gap = DenylistUpdate(version=9, since_version=6, full=False,
                             added=(DenylistEntry(tap(2).card_ref, CardStatus.CANCELLED),),
                             removed=(tap(1).card_ref,))
        with pytest.raises(CentralProtocolError, match="does not apply to installed version 5"):
            denylist.install(gap)
        with pytest.raises(CentralProtocolError, match="older than installed"):
            denylist.install(snapshot(4))
        assert denylist.version == 5
        assert denylist.lookup(tap(1).card_ref) is not None
        assert denylist.lookup(tap(2).card_ref) is None
    with Denylist.open(path) as reopened:
        assert reopened.version == 5
        assert reopened.state().entries == 1


def test_temporary_loss_entry_lapses_after_its_until_date(tmp_path: Path) -> None:
    ref = tap(1).card_ref
    with Denylist.open(tmp_path / "d.db") as denylist:
        denylist.install(DenylistUpdate(version=1, since_version=0, full=True, removed=(),
                                        added=(DenylistEntry(ref, CardStatus.TEMPORARY_LOSS,
                                                             until="2026-12-01"),)))
        assert denylist.lookup(ref, today=date(2026, 12, 1)) is not None
        assert denylist.lookup(ref, today=date(2026, 12, 2)) is None


def test_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE evidence (x)")
        db.execute("INSERT INTO evidence VALUES (42)")
    before = path.read_bytes()
    with pytest.raises(DenylistError, match="not a denylist file"):
        Denylist.open(path)
    assert path.read_bytes() == before


def test_garbage_file_is_a_denylist_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DenylistError, match=r"garbage\.db"):
        Denylist.open(path)


@pytest.mark.parametrize(("key", "value"), [
    ("installed_at", "yesterday"),
    ("installed_at", "2026-11-20T08:00:00"),       # no offset: naive, cannot be compared
    ("version", "seven"),
    ("schema_version", "one"),
])
def test_edited_meta_is_a_denylist_error_not_a_crash_later(
        tmp_path: Path, key: str, value: str) -> None:
    """An edited or half-written meta row raised a raw ValueError at open, or, for an
    install time without its offset, a TypeError later, at the first offline decision
    (``age_hours`` subtracting a naive time from an aware one): a gate that stops on
    every tap. Each is a DenylistError naming the file, at open."""
    path = tmp_path / "denylist.db"
    clock = ManualClock()
    with Denylist.open(path, clock=clock) as store:
        store.install(snapshot(1, (tap(1).card_ref, CardStatus.FORMAL_LOSS)))
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    with pytest.raises(DenylistError, match=r"denylist\.db"):
        Denylist.open(path, clock=clock)
