"""The denylist store at scale (docs/denylist-format.md): exact lookups whatever the
filter says, temporary losses lapsing by themselves, deltas through the overlay and
compaction, the schema-1 upgrade in place, damaged files refused by name."""

from __future__ import annotations

import gc
import os
import random
import sqlite3
import threading
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from sscard_terminal.central.models import CardStatus, DenylistEntry, DenylistUpdate
from sscard_terminal.decision import Denylist
from sscard_terminal.decision import denylist_format as fmt
from sscard_terminal.decision.denylist_format import key_of, record, ref_of
from sscard_terminal.errors import DenylistError

from .decision_helpers import ManualClock, tap


def _refs(rng: random.Random, n: int) -> list[str]:
    return [ref_of(rng.randbytes(15)) for _ in range(n)]


def _records(entries: dict[bytes, CardStatus]) -> bytes:
    return b"".join(record(k, entries[k], 0) for k in sorted(entries))


def _snapshot(version: int, refs: list[str], status: CardStatus = CardStatus.FORMAL_LOSS
              ) -> DenylistUpdate:
    return DenylistUpdate(version=version, since_version=0, full=True, removed=(),
                          added=tuple(DenylistEntry(r, status) for r in refs))


def test_card_ref_key_round_trip_and_non_canonical_text() -> None:
    ref = tap(1).card_ref
    key = key_of(ref)
    assert key is not None and len(key) == 15 and ref_of(key) == ref
    for other in ("churn", ref.upper(), ref[:-1], ref + "a", ref[:-1] + "1", " " + ref[1:]):
        assert key_of(other) is None


def test_lookups_are_exact_with_the_filter_saying_yes_to_everything(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The filter only saves work: with it answering "maybe" for every key, a card is
    found if and only if it is listed, even where 64-bit prefixes repeat across block
    edges and where a listed key's bytes appear inside the file across two records."""
    monkeypatch.setattr(fmt._Filter, "may_hold", lambda self, low: True)
    rng = random.Random(20)
    # 300 keys sharing one 64-bit prefix (spanning three fence blocks), each crafted so
    # that its record's last 8 bytes and the next record's first 7 form prefix +
    # prefix[:7]: a byte string that find() meets at an offset that is no record's start,
    # followed by bytes that would read as a refusing entry (status 2, a far end date).
    until = 0x0000FF02                               # 2148: refusing, ends in byte 0x02
    prefix = b"\xab\xcd\xef\x07" + until.to_bytes(4, "big")  # key[12:15], status 7, until
    shared = {prefix + b"\x7f" + rng.randbytes(3) + b"\xab\xcd\xef": CardStatus.SUSPENDED
              for _ in range(300)}
    spread = {rng.randbytes(15): CardStatus.FORMAL_LOSS for _ in range(5000)}
    entries = shared | spread
    misaligned = prefix + prefix[:7]
    assert misaligned not in entries
    records = b"".join(record(k, entries[k], until if k in shared else 0)
                       for k in sorted(entries))
    assert records.find(misaligned) % fmt.RECORD_BYTES != 0
    with Denylist.open(tmp_path / "d.db") as denylist:
        denylist.install_snapshot(3, [records], len(entries))
        for key, status in entries.items():
            hit = denylist.lookup(ref_of(key))
            assert hit is not None and hit.status is status
        assert denylist.lookup(ref_of(misaligned)) is None
        for key in list(entries)[:500]:
            near = key[:-1] + bytes(((key[-1] + 1) % 256,))
            if near not in entries:
                assert denylist.lookup(ref_of(near)) is None
        for ref in _refs(rng, 5000):
            assert (denylist.lookup(ref) is not None) == (key_of(ref) in entries)
        assert denylist.state().entries == len(entries)
        assert denylist.verify()


def test_snapshot_records_out_of_order_or_of_unknown_status_are_refused(tmp_path: Path) -> None:
    a, b = bytes(15), b"\x01" * 15
    with Denylist.open(tmp_path / "d.db") as denylist:
        denylist.install_snapshot(1, [record(a, CardStatus.FORMAL_LOSS, 0)], 1)
        for pieces, count, why in (
                ([record(b, CardStatus.FORMAL_LOSS, 0) + record(a, CardStatus.FORMAL_LOSS, 0)],
                 2, "ascending"),
                ([record(b, CardStatus.FORMAL_LOSS, 0), record(a, CardStatus.FORMAL_LOSS, 0)],
                 2, "ascending"),
                ([record(a, CardStatus.FORMAL_LOSS, 0) * 2], 2, "ascending"),
                ([b + b"\x63" + bytes(4)], 1, "status"),
                ([record(a, None, 0)], 1, "status"),
                ([record(a, CardStatus.FORMAL_LOSS, 0)[:-1]], 1, "whole number"),
                ([record(a, CardStatus.FORMAL_LOSS, 0)], 2, "announced")):
            with pytest.raises(DenylistError, match=why):
                denylist.install_snapshot(2, pieces, count)
            assert denylist.version == 1 and denylist.lookup(ref_of(a)) is not None
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
    assert leftovers == []


def test_temporary_loss_lapses_at_midnight_china_time_without_a_rewrite(tmp_path: Path) -> None:
    """The record holds the last day; the lookup compares it with today's date in
    China Standard Time: the entry stops refusing at 00:00 CST the day after, offline,
    with the files on disk unchanged."""
    clock = ManualClock(wall=datetime(2026, 12, 1, 15, 59, 59, tzinfo=UTC))   # 23:59:59 CST
    in_base, in_overlay = tap(1).card_ref, tap(2).card_ref
    path = tmp_path / "d.db"
    with Denylist.open(path, clock=clock) as denylist:
        denylist.install(DenylistUpdate(
            version=1, since_version=0, full=True, removed=(),
            added=(DenylistEntry(in_base, CardStatus.TEMPORARY_LOSS, "2026-12-01"),)))
        denylist.install(DenylistUpdate(
            version=2, since_version=1, full=False, removed=(),
            added=(DenylistEntry(in_overlay, CardStatus.TEMPORARY_LOSS, "2026-12-01"),)))
        files = {p.name: p.read_bytes() for p in tmp_path.iterdir() if ".base-" in p.name}
        for ref in (in_base, in_overlay):
            entry = denylist.lookup(ref)
            assert entry is not None and entry.until == "2026-12-01"
        clock.advance(1)                                                          # 00:00 CST
        assert denylist.lookup(in_base) is None
        assert denylist.lookup(in_overlay) is None
        assert denylist.lookup(in_base, today=date(2026, 12, 1)) is not None
        assert denylist.state().entries == 2      # lapsed, not removed: the central removes
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if ".base-" in p.name} == files


def test_temporary_loss_reported_at_an_instant_lapses_at_that_second(tmp_path: Path) -> None:
    """An end sent as an instant with its zone (the report's time plus 15 days) is kept to
    the second, in the base file and in a delta's overlay alike, whatever its zone."""
    end = "2026-12-19T09:30:00+08:00"                    # = 01:30:00 UTC
    clock = ManualClock(wall=datetime(2026, 12, 19, 1, 29, 59, tzinfo=UTC))
    in_base, in_overlay = tap(1).card_ref, tap(2).card_ref
    with Denylist.open(tmp_path / "d.db", clock=clock) as denylist:
        denylist.install(DenylistUpdate(
            version=1, since_version=0, full=True, removed=(),
            added=(DenylistEntry(in_base, CardStatus.TEMPORARY_LOSS, end),)))
        denylist.install(DenylistUpdate(
            version=2, since_version=1, full=False, removed=(),
            added=(DenylistEntry(in_overlay, CardStatus.TEMPORARY_LOSS,
                                 "2026-12-19T01:30:00+00:00"),)))
        for ref in (in_base, in_overlay):
            entry = denylist.lookup(ref)
            assert entry is not None
            assert datetime.fromisoformat(entry.until or "") == datetime.fromisoformat(end)
        clock.advance(1)                                        # 09:30:00 CST exactly
        assert denylist.lookup(in_base) is None
        assert denylist.lookup(in_overlay) is None
        assert denylist.compact()
        assert denylist.lookup(in_overlay) is None               # merged into the base
        before = datetime(2026, 12, 19, 1, 29, 59, tzinfo=UTC)
        assert denylist.lookup(in_overlay, now=before) is not None


def test_an_unreadable_end_date_keeps_refusing(tmp_path: Path) -> None:
    ref = tap(1).card_ref
    with Denylist.open(tmp_path / "d.db") as denylist:
        denylist.install(DenylistUpdate(version=1, since_version=0, full=True, removed=(),
                                        added=(DenylistEntry(ref, CardStatus.TEMPORARY_LOSS,
                                                             "soon"),)))
        assert denylist.lookup(ref, today=date(2099, 1, 1)) is not None


def test_deltas_overlay_compaction_and_restart_agree_with_a_model(tmp_path: Path) -> None:
    """Random deltas (adds, removals, status changes, some non-canonical references),
    with compaction after every few: after each step and after a reopen, every lookup
    answers what a plain dict of the same changes says."""
    rng = random.Random(5)
    path = tmp_path / "d.db"
    model: dict[str, CardStatus] = {}
    pool = _refs(rng, 3000) + [f"legacy-{n}" for n in range(50)]
    statuses = [CardStatus.FORMAL_LOSS, CardStatus.SUSPENDED, CardStatus.CANCELLED]
    first = rng.sample(pool, 1000)
    model.update(dict.fromkeys(first, CardStatus.FORMAL_LOSS))

    def check(denylist: Denylist) -> None:
        for ref in pool:
            hit = denylist.lookup(ref)
            assert (hit.status if hit else None) is model.get(ref), ref
        assert denylist.state().entries == len(model)

    with Denylist.open(path, compact_at=400, background=False) as denylist:
        denylist.install(_snapshot(1, first))
        for version in range(2, 14):
            removed = tuple(rng.sample(sorted(model), 40)) + tuple(rng.sample(pool, 10))
            added = [DenylistEntry(ref, rng.choice(statuses)) for ref in rng.sample(pool, 120)]
            for ref in removed:
                model.pop(ref, None)
            for entry in added:
                model[entry.card_ref] = entry.status
            denylist.install(DenylistUpdate(version=version, since_version=version - 1,
                                            full=False, added=tuple(added), removed=removed))
            check(denylist)
        assert len([p for p in tmp_path.iterdir() if ".base-" in p.name]) == 1
        assert denylist.verify()
    with Denylist.open(path) as reopened:
        assert reopened.version == 13
        check(reopened)


def test_lookups_during_deltas_and_background_compactions_never_waver(tmp_path: Path) -> None:
    """A card that no delta touches is refused by every lookup while deltas and
    background compactions switch files under it; one never listed is never refused."""
    rng = random.Random(9)
    steady, never = _refs(rng, 200), _refs(rng, 200)
    churn = _refs(rng, 4000)
    wrong: list[str] = []
    stop = threading.Event()

    with Denylist.open(tmp_path / "d.db", compact_at=500) as denylist:
        denylist.install(_snapshot(1, steady + churn[:1000]))

        def reader() -> None:
            while not stop.is_set():
                for ref in steady:
                    if denylist.lookup(ref) is None:
                        wrong.append(ref)
                for ref in never:
                    if denylist.lookup(ref) is not None:
                        wrong.append(ref)

        thread = threading.Thread(target=reader)
        thread.start()
        try:
            for version in range(2, 22):
                chosen = rng.sample(churn, 300)
                denylist.install(DenylistUpdate(
                    version=version, since_version=version - 1, full=False,
                    added=tuple(DenylistEntry(r, CardStatus.SUSPENDED) for r in chosen[:200]),
                    removed=tuple(chosen[200:])))
            denylist.wait_compacted()
        finally:
            stop.set()
            thread.join()
    assert wrong == []


def _schema_1_file(path: Path, rows: list[tuple[str, str, str | None]], *, version: int = 41,
                   installed_at: str = "2026-11-20T08:00:00+00:00") -> None:
    """A denylist exactly as the previous release wrote it (schema 1: a row an entry)."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA application_id = 1397965892")
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("CREATE TABLE entries (card_ref TEXT PRIMARY KEY, status TEXT NOT NULL, "
                   "until TEXT) WITHOUT ROWID")
        db.executemany("INSERT INTO meta VALUES (?, ?)", [
            ("schema_version", "1"), ("version", str(version)), ("installed_at", installed_at)])
        db.executemany("INSERT INTO entries VALUES (?, ?, ?)", rows)


def test_a_schema_1_list_is_upgraded_in_place(tmp_path: Path) -> None:
    rng = random.Random(1)
    path = tmp_path / "denylist.db"
    refs = _refs(rng, 2000)
    rows = [(r, "formal_loss", None) for r in refs[:1990]]
    rows += [(r, "temporary_loss", "2026-12-01") for r in refs[1990:]]
    rows += [("legacy-ref", "cancelled", None)]
    _schema_1_file(path, rows)
    clock = ManualClock()
    with Denylist.open(path, clock=clock) as denylist:
        assert denylist.version == 41
        assert denylist.state().entries == 2001
        assert denylist.state().installed_at == datetime(2026, 11, 20, 8, tzinfo=UTC)
        for ref in refs[:1990]:
            hit = denylist.lookup(ref)
            assert hit is not None and hit.status is CardStatus.FORMAL_LOSS
        lapsing = denylist.lookup(refs[-1], today=date(2026, 12, 1))
        assert lapsing is not None and lapsing.until == "2026-12-01"
        assert denylist.lookup(refs[-1], today=date(2026, 12, 2)) is None
        legacy = denylist.lookup("legacy-ref")
        assert legacy is not None and legacy.status is CardStatus.CANCELLED
        assert denylist.lookup(ref_of(bytes(15))) is None
        # The upgraded list takes deltas from where the old one stood.
        denylist.install(DenylistUpdate(version=42, since_version=41, full=False,
                                        added=(), removed=(refs[0], "legacy-ref")))
        assert denylist.lookup(refs[0]) is None and denylist.lookup("legacy-ref") is None
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        schema = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    assert "entries" not in tables and schema == "2"


def test_a_schema_1_list_with_an_unknown_status_is_refused_and_left_as_it_was(
        tmp_path: Path) -> None:
    path = tmp_path / "denylist.db"
    _schema_1_file(path, [(tap(1).card_ref, "formal_loss", None),
                          (tap(2).card_ref, "misplaced", None)])
    with sqlite3.connect(path) as db:
        before = db.execute("SELECT * FROM entries ORDER BY card_ref").fetchall()
    with pytest.raises(DenylistError, match="unknown status 'misplaced'"):
        Denylist.open(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT * FROM entries ORDER BY card_ref").fetchall() == before
        assert db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"
    assert [p.name for p in tmp_path.iterdir() if ".base-" in p.name] == []


def _base_file(directory: Path) -> Path:
    (base,) = [p for p in directory.iterdir() if ".base-" in p.name]
    return base


@pytest.mark.parametrize("damage", ["fence", "filter", "header", "truncated", "missing"])
def test_a_damaged_base_file_is_a_denylist_error_naming_it(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "denylist.db"
    with Denylist.open(path) as denylist:
        denylist.install(_snapshot(1, _refs(random.Random(2), 1000)))
    base = _base_file(tmp_path)
    data = bytearray(base.read_bytes())
    records_end = fmt.RECORDS_OFFSET + 1000 * fmt.RECORD_BYTES
    if damage == "missing":
        base.unlink()
    else:
        if damage == "fence":
            data[records_end + 3] ^= 0x40
        elif damage == "filter":
            data[-5] ^= 0x01
        elif damage == "header":
            data[20] ^= 0x01
        else:
            del data[-100:]
        base.write_bytes(bytes(data))
    with pytest.raises(DenylistError, match=r"denylist\.db\.base-"):
        Denylist.open(path)


def test_records_bit_rot_is_found_by_verify(tmp_path: Path) -> None:
    path = tmp_path / "denylist.db"
    with Denylist.open(path) as denylist:
        denylist.install(_snapshot(1, _refs(random.Random(3), 1000)))
    base = _base_file(tmp_path)
    data = bytearray(base.read_bytes())
    data[fmt.RECORDS_OFFSET + 7 * fmt.RECORD_BYTES + 2] ^= 0x10
    base.write_bytes(bytes(data))
    with Denylist.open(path) as denylist:
        assert not denylist.verify()


def test_leftovers_of_a_crash_are_removed_and_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "denylist.db"
    with Denylist.open(path) as denylist:
        denylist.install(_snapshot(1, _refs(random.Random(4), 10)))
    current = _base_file(tmp_path)
    orphan = tmp_path / "denylist.db.base-v2-0123abcd"
    half = tmp_path / "denylist.db.base-v3-89abcdef.tmp"
    keep = [tmp_path / "denylist.db.base-notes.txt", tmp_path / "other.db.base-v2-0123abcd"]
    for p in (orphan, half, *keep):
        p.write_bytes(b"x")
    with Denylist.open(path) as denylist:
        assert denylist.state().entries == 10
    assert current.exists() and not orphan.exists() and not half.exists()
    assert all(p.exists() for p in keep)


def test_lookup_after_close_is_a_denylist_error(tmp_path: Path) -> None:
    denylist = Denylist.open(tmp_path / "d.db")
    denylist.install(_snapshot(1, [tap(1).card_ref]))
    denylist.close()
    with pytest.raises(DenylistError, match="closed"):
        denylist.lookup(tap(1).card_ref)


def test_resident_memory_does_not_hold_the_entries(tmp_path: Path) -> None:
    """Not a speed goal (that is the bench): a structural check that the list's entries
    are not Python objects. 100,000 entries open with a few hundred objects tracked by
    the collector, where the previous store had one dataclass per entry."""

    rng = random.Random(6)
    entries = {rng.randbytes(15): CardStatus.FORMAL_LOSS for _ in range(100_000)}
    path = tmp_path / "d.db"
    with Denylist.open(path) as denylist:
        denylist.install_snapshot(1, [_records(entries)], len(entries))
    del entries
    gc.collect()
    before = len(gc.get_objects())
    with Denylist.open(path) as denylist:
        after = len(gc.get_objects())
        assert denylist.state().entries == 100_000
    assert after - before < 1000
    assert os.path.getsize(_base_file(tmp_path)) < 100_000 * 22 + 8192


def test_a_card_removed_while_a_compaction_merges_its_addition_stays_removed(
        tmp_path: Path) -> None:
    """A delta adds a card (overlay only), a compaction starts merging it into a new base,
    and meanwhile a delta removes it: the old base never held it, so the removal drops
    the overlay row. After the switch the new base holds the card, and without a
    tombstone it would be refused again. It must stay removed, after a reopen too."""
    rng = random.Random(8)
    first = _refs(rng, 500)
    card = ref_of(rng.randbytes(15))
    path = tmp_path / "d.db"
    with Denylist.open(path, background=False) as denylist:
        denylist.install(_snapshot(1, first))
        denylist.install(DenylistUpdate(version=2, since_version=1, full=False, removed=(),
                                        added=(DenylistEntry(card, CardStatus.SUSPENDED),)))
        fired: list[bool] = []

        def remove_meanwhile() -> None:
            if not fired:
                fired.append(True)
                denylist.install(DenylistUpdate(version=3, since_version=2, full=False,
                                                added=(), removed=(card,)))

        denylist._stop_if_closing = remove_meanwhile   # type: ignore[method-assign]
        assert denylist.compact()
        assert fired
        assert denylist.lookup(card) is None
        assert denylist.state().entries == 500
    with Denylist.open(path) as reopened:
        assert reopened.lookup(card) is None
        assert all(reopened.lookup(ref) is not None for ref in first)


def test_an_empty_snapshot_installs_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "d.db"
    with Denylist.open(path) as denylist:
        denylist.install(_snapshot(1, [tap(1).card_ref]))
        denylist.install_snapshot(2, [], 0)
        assert denylist.lookup(tap(1).card_ref) is None
    with Denylist.open(path) as reopened:
        assert reopened.version == 2 and reopened.state().entries == 0
        assert reopened.lookup(tap(1).card_ref) is None
        assert reopened.verify()
