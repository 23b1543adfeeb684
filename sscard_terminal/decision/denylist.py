"""The local denylist: the central's list of cards that must be refused, kept on disk so
that a validator decides offline, after a reboot, at ten million entries.

Three parts, each for a reason (docs/denylist-format.md):

- **The base file** (:mod:`.denylist_format`): every entry as 20 bytes, sorted, read in
  place with ``pread``. Opening it reads a fence and a filter, a couple of bytes an
  entry, so start-up does not grow with the list and no Python object stands for an
  entry (the garbage collector never walks the list).
- **The overlay**: deltas since the base was written, a ``bytes -> bytes`` dict in RAM
  (no objects for the collector to track) mirrored in the SQLite file at ``path``. A
  delta is one small SQLite transaction and a new dict swapped in by one assignment, so
  lookups never take a lock and never wait for an install. When the overlay grows past
  ``compact_at``, a background thread merges it into a new base file.
- **The SQLite file** at ``path`` holds the meta (version, install time, which base
  file is current), the overlay and any reference not in the canonical ``card_ref``
  form. Pointing it at a new base file is one SQLite commit, made only after the file
  was written in full, fsynced and renamed into place: a power cut at any moment leaves
  the old list or the new one, never a mix.

Only verified updates are installed: :class:`~sscard_terminal.central.models.DenylistUpdate`
values come from the central client after it checked the Ed25519 signature; a chunked
snapshot is installed from a signed manifest whose chunk hashes are checked chunk by
chunk as they arrive, and switched to only when every chunk matched. A delta applies
only on top of the version it was made from; a snapshot replaces everything.

Entries with ``until`` (a 15-day temporary loss) stop refusing the day after it by
themselves: the date is in the record and compared at lookup, nothing is rewritten.

A file of the previous format (schema 1: every entry a row) is upgraded in place at
open, with the same all-or-nothing switch.
"""

from __future__ import annotations

import glob
import hashlib
import heapq
import logging
import re
import secrets
import sqlite3
import threading
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

from ..central.models import (
    CardStatus,
    DenylistEntry,
    DenylistManifest,
    DenylistUpdate,
)
from ..deadline import Deadline
from ..errors import CentralProtocolError, CentralUnreachableError, DenylistError
from ..sqlite_transaction import write_transaction
from .clock import Clock, SystemClock, local_date
from .denylist_format import (
    FILTER_BITS_PER_ENTRY,
    KEY_BYTES,
    RECORD_BYTES,
    REMOVED,
    STATUS_CODES,
    BaseFile,
    BaseWriter,
    Pacer,
    day_of,
    key_of,
    lapsed,
    status_of,
    until_text,
)

__all__ = ["COMPACT_AT", "Denylist", "DenylistSource", "DenylistState"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
_APPLICATION_ID = 0x53534444   # "SSDD": marks the file as ours
COMPACT_AT = 65536
"""Overlay entries (about 100 bytes of RAM each) past which the overlay is merged into a
new base file in the background."""
_TOMBSTONE = bytes(5)
_BASE_NAME = re.compile(r"[A-Za-z0-9._-]+\.base-v[0-9]+-[0-9a-f]+\Z")


class DenylistSource(Protocol):
    """Where updates come from: the central client."""

    def denylist_update(self, since_version: int, deadline: Deadline
                        ) -> DenylistUpdate | DenylistManifest: ...

    def denylist_chunk(self, manifest: DenylistManifest, index: int,
                       deadline: Deadline) -> bytes: ...


@dataclass(frozen=True)
class DenylistState:
    """What a status page shows: version, size and age of the installed list."""

    version: int
    entries: int
    installed_at: datetime | None


class _View:
    """What lookups read: replaced whole, never changed, so a lookup needs no lock."""

    __slots__ = ("base", "overlay", "text")

    def __init__(self, base: BaseFile | None, overlay: dict[bytes, bytes],
                 text: dict[str, bytes]) -> None:
        self.base = base
        self.overlay = overlay
        self.text = text


class _Stopped(Exception):
    """Internal: the list is closing; a background compaction gives up."""


class Denylist:
    """A denylist file. Lookups from any number of threads; installs are serialised.
    Close it when done."""

    def __init__(self, path: Path, *, clock: Clock | None = None,
                 compact_at: int = COMPACT_AT, background: bool = True) -> None:
        self.path = Path(path)
        self._clock: Clock = clock or SystemClock()
        self._compact_at = compact_at
        self._background = background
        self._lock = threading.Lock()          # installs, compaction switches, close
        self._closing = threading.Event()
        self._compactor: threading.Thread | None = None
        self._generation = 0                   # bumped whenever the base file changes
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise DenylistError(f"{self.path}: cannot open the denylist: {exc}") from exc
        try:
            # Check whose file it is before any pragma writes to it: a foreign file at
            # our path is somebody's evidence and stays byte for byte as it was.
            schema = self._check_owner()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            if schema == 1:
                self._upgrade_from_1()
            self._version, self._installed_at, self._entries, base_name = self._load_meta()
            base = self._open_base(base_name)
            self._view: _View | None = _View(base, self._load_overlay(), self._load_text())
            self._remove_leftovers(base_name)
        except DenylistError:
            self._db.close()
            raise
        except (sqlite3.Error, ValueError, OSError) as exc:
            # ValueError: a meta value edited or half-written (a version that is no
            # number, an install time without its offset).
            self._db.close()
            raise DenylistError(f"{self.path}: cannot open the denylist: {exc}; "
                                "move the file aside to start from an empty list") from exc

    @classmethod
    def open(cls, path: Path | str, *, clock: Clock | None = None,
             compact_at: int = COMPACT_AT, background: bool = True) -> Denylist:
        return cls(Path(path), clock=clock, compact_at=compact_at, background=background)

    def __enter__(self) -> Denylist:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop a background compaction, close the files. Lookups after this raise."""
        self._closing.set()
        compactor = self._compactor
        if compactor is not None:
            compactor.join()
        with self._lock:
            view, self._view = self._view, None
            if view is not None and view.base is not None:
                view.base.close()
            self._db.close()

    # --- schema ----------------------------------------------------------------------

    def _check_owner(self) -> int:
        """The schema of our file (creating it when empty); refuses anything else."""
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id == 0 and not tables:
            with write_transaction(self._db) as db:
                db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                self._create_tables(db)
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [("schema_version", str(SCHEMA_VERSION)), ("version", "0"),
                                ("base", ""), ("entries", "0")])
            return SCHEMA_VERSION
        if app_id != _APPLICATION_ID:
            raise DenylistError(f"{self.path}: not a denylist file (foreign SQLite database); "
                                "it was left untouched")
        schema = int(self._meta("schema_version") or 0)
        if schema not in (1, SCHEMA_VERSION):
            raise DenylistError(f"{self.path}: denylist schema {schema} is not {SCHEMA_VERSION} "
                                "(written by another version of sscard-terminal)")
        return schema

    @staticmethod
    def _create_tables(db: sqlite3.Connection) -> None:
        db.execute("CREATE TABLE overlay (key BLOB PRIMARY KEY, rec BLOB NOT NULL) "
                   "WITHOUT ROWID")
        db.execute("CREATE TABLE text_entries (card_ref TEXT PRIMARY KEY, rec BLOB NOT NULL) "
                   "WITHOUT ROWID")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _load_meta(self) -> tuple[int, datetime | None, int, str]:
        installed = self._meta("installed_at")
        at = datetime.fromisoformat(installed) if installed else None
        if at is not None and at.tzinfo is None:
            # Compared with the aware clock on every offline decision: refuse it here.
            raise ValueError(f"install time {installed!r} has no UTC offset")
        base = self._meta("base") or ""
        if base and not _BASE_NAME.match(base):
            raise ValueError(f"base file name {base!r} is not one this program writes")
        return int(self._meta("version") or 0), at, int(self._meta("entries") or 0), base

    def _open_base(self, name: str) -> BaseFile | None:
        return BaseFile(self.path.with_name(name)) if name else None

    def _load_overlay(self) -> dict[bytes, bytes]:
        overlay: dict[bytes, bytes] = {}
        for key, rec in self._db.execute("SELECT key, rec FROM overlay"):
            if not isinstance(key, bytes) or len(key) != KEY_BYTES or not _valid_rec(rec):
                raise DenylistError(f"{self.path}: damaged overlay row")
            overlay[key] = rec
        return overlay

    def _load_text(self) -> dict[str, bytes]:
        text: dict[str, bytes] = {}
        for ref, rec in self._db.execute("SELECT card_ref, rec FROM text_entries"):
            if not isinstance(ref, str) or not _valid_rec(rec) or rec[0] == REMOVED:
                raise DenylistError(f"{self.path}: damaged entry row")
            text[ref] = rec
        return text

    def _remove_leftovers(self, current: str) -> None:
        """Base files no longer (or never) pointed at: a crash between writing a new
        base and committing it, or an old base a reader held at the last switch."""
        prefix = self.path.name + ".base-"
        for candidate in self.path.parent.glob(glob.escape(prefix) + "*"):
            if candidate.name != current and (
                    _BASE_NAME.match(candidate.name)
                    or (candidate.name.endswith(".tmp")
                        and _BASE_NAME.match(candidate.name[:-4]))):
                _unlink(candidate)

    def _upgrade_from_1(self) -> None:
        """Rewrite a schema-1 list (one row per entry) into a base file, in place.

        The rows are read in key order (SQLite sorts them, with the key computed by a
        function registered here), so memory stays flat whatever the size. The switch
        is one transaction; a crash before it leaves the old file as it was.
        """
        db = self._db
        db.create_function("ssdl_key", 1, key_of, deterministic=True)
        version = int(self._meta("version") or 0)
        count = db.execute("SELECT count(*) FROM entries WHERE ssdl_key(card_ref) IS NOT NULL"
                           ).fetchone()[0]
        name = self._new_base_name(version)
        writer = BaseWriter(self.path.with_name(name), list_version=version, count=count)
        text: list[tuple[str, bytes]] = []
        try:
            batch: list[bytes] = []
            for key, status, until in db.execute(
                    "SELECT ssdl_key(card_ref) AS k, status, until FROM entries "
                    "WHERE k IS NOT NULL ORDER BY k"):
                batch.append(key + _rec(_old_status(self.path, status), until))
                if len(batch) >= 65536:
                    writer.add(b"".join(batch))
                    batch.clear()
            writer.add(b"".join(batch))
            for ref, status, until in db.execute(
                    "SELECT card_ref, status, until FROM entries WHERE ssdl_key(card_ref) IS NULL"):
                text.append((ref, _rec(_old_status(self.path, status), until)))
            writer.finish()
        except BaseException:
            writer.abort()
            raise
        with write_transaction(db):
            self._create_tables(db)
            db.executemany("INSERT INTO text_entries VALUES (?, ?)", text)
            db.execute("DROP TABLE entries")
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                           [("schema_version", str(SCHEMA_VERSION)), ("base", name),
                            ("entries", str(count + len(text)))])
        log.info("denylist %s upgraded to schema %d (%d entries)", self.path.name,
                 SCHEMA_VERSION, count + len(text))

    def _new_base_name(self, version: int) -> str:
        return f"{self.path.name}.base-v{version}-{secrets.token_hex(4)}"

    # --- reading ---------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def state(self) -> DenylistState:
        return DenylistState(self._version, self._entries, self._installed_at)

    def age_hours(self) -> float | None:
        """Hours since the last successful install (or refresh that found nothing new)."""
        if self._installed_at is None:
            return None
        return (self._clock.now() - self._installed_at).total_seconds() / 3600.0

    def lookup(self, card_ref: str, *, today: date | None = None,
               now: datetime | None = None) -> DenylistEntry | None:
        """The entry that refuses this card now, or None. Exact: a card not on the
        list is never refused, one on it never missed.

        An entry with ``until`` (a 15-day temporary loss) stops refusing at that instant
        (to the second, whatever the zone it is written in), or after that last day when
        the central sent a date, as the card lapses back to normal by itself without a new
        denylist. An unreadable ``until`` keeps refusing (the safe side).
        """
        view = self._view
        if view is None:
            raise DenylistError(f"{self.path}: the denylist is closed")
        key = key_of(card_ref)
        if key is None:
            rec = view.text.get(card_ref)
        else:
            rec = view.overlay.get(key)
            if rec is None:
                base = view.base
                if base is None:
                    return None
                try:
                    rec = base.get(key, int.from_bytes(key, "big"))
                except (OSError, ValueError) as exc:    # ValueError: closed meanwhile
                    raise DenylistError(f"{base.path}: cannot read the denylist: {exc}") from exc
        if rec is None or rec[0] == REMOVED:
            return None
        until = int.from_bytes(rec[1:], "big")
        if until:
            moment = now or self._clock.now()
            if lapsed(until, moment, today or local_date(moment)):
                return None
        return DenylistEntry(card_ref, status_of(rec[0]), until_text(until))

    def verify(self) -> bool:
        """Read the whole base file back against its digest (slow; for a technician)."""
        view = self._view
        return view is None or view.base is None or view.base.verify()

    # --- writing ---------------------------------------------------------------------

    def _check_applies(self, version: int, since: int, full: bool) -> None:
        if self._view is None:
            raise DenylistError(f"{self.path}: the denylist is closed")
        if not full and since != self._version:
            raise CentralProtocolError(
                f"denylist delta from version {since} does not apply to "
                f"installed version {self._version}")
        if version < self._version:
            raise CentralProtocolError(
                f"denylist version {version} is older than installed {self._version}")

    def install(self, update: DenylistUpdate) -> None:
        """Install a verified update: a snapshot replaces the list, a delta amends it.

        A delta must start from the installed version; anything else (a gap, a replay of
        an old delta) is refused so the list never silently misses entries.
        """
        with self._lock:
            self._check_applies(update.version, update.since_version, update.full)
            if update.full:
                self._install_inline_snapshot(update)
            else:
                self._install_delta(update)
        log.info("denylist version %d installed (%s, %d entries)",
                 update.version, "snapshot" if update.full else "delta", self._entries)
        if len(self._overlay()) >= self._compact_at:
            self._start_compaction()

    def _overlay(self) -> dict[bytes, bytes]:
        view = self._view
        return {} if view is None else view.overlay

    def _install_inline_snapshot(self, update: DenylistUpdate) -> None:
        keyed: dict[bytes, bytes] = {}
        text: dict[str, bytes] = {}
        for entry in update.added:
            key = key_of(entry.card_ref)
            rec = _rec(entry.status, entry.until)
            if key is None:
                text[entry.card_ref] = rec
            else:
                keyed[key] = rec
        pacer = Pacer()
        records = bytearray()
        for key in _paced_sorted(list(keyed), pacer):
            records += key + keyed[key]
            pacer.tick()
        self._install_base(update.version, [bytes(records)], len(keyed), text)

    def install_snapshot(self, version: int, records: Iterable[bytes], count: int) -> None:
        """Install a snapshot given as sorted 20-byte records (docs/denylist-format.md),
        in pieces, without holding it in memory: the old list serves lookups until the
        new one is complete on disk, then one commit switches.

        ``records`` must already be verified (the central's chunks, checked against the
        signed manifest); each piece is still checked for shape and order before it is
        written, and a count other than ``count`` is refused.
        """
        with self._lock:
            self._check_applies(version, 0, True)
            self._install_base(version, records, count, {})
        log.info("denylist version %d installed (snapshot, %d entries)", version, count)

    def _install_base(self, version: int, pieces: Iterable[bytes], count: int,
                      text: dict[str, bytes], *, writer: BaseWriter | None = None,
                      resumable: tuple[type[BaseException], ...] = ()) -> None:
        """Write a new base file from ``pieces`` and switch to it (lock held)."""
        name = self._new_base_name(version)
        final = self.path.with_name(name)
        if writer is None:
            writer = BaseWriter(final, list_version=version, count=count, pacer=Pacer())
        else:
            writer.final = final
        try:
            for piece in pieces:
                writer.add(piece)
            writer.finish()
            base = BaseFile(final)
        except resumable:
            writer.detach()
            raise
        except BaseException:
            writer.abort()
            raise
        now = self._clock.now().astimezone(UTC)
        try:
            with write_transaction(self._db) as db:
                db.execute("DELETE FROM overlay")
                db.execute("DELETE FROM text_entries")
                db.executemany("INSERT INTO text_entries VALUES (?, ?)", text.items())
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               [("version", str(version)), ("installed_at", now.isoformat()),
                                ("base", name), ("entries", str(count + len(text)))])
        except sqlite3.Error as exc:
            base.close()
            _unlink(final)
            raise DenylistError(f"{self.path}: cannot install denylist "
                                f"version {version}: {exc}") from exc
        self._switch(_View(base, {}, text))
        self._version, self._installed_at, self._entries = version, now, count + len(text)

    def _switch(self, view: _View) -> None:
        """Publish a view with a new base file (lock held); the old file goes once no
        lookup reads it (its descriptor closes when the last reference drops)."""
        old = self._view.base if self._view is not None else None
        self._view = view
        self._generation += 1
        if old is not None and old is not view.base:
            _unlink(old.path)

    def _install_delta(self, update: DenylistUpdate) -> None:
        view = self._view
        assert view is not None
        pacer = Pacer()
        changes: dict[bytes, bytes] = {}
        text_changes: dict[str, bytes] = {}
        for ref in update.removed:
            pacer.tick()
            key = key_of(ref)
            if key is None:
                text_changes[ref] = _TOMBSTONE
            else:
                changes[key] = _TOMBSTONE
        for entry in update.added:
            pacer.tick()
            key = key_of(entry.card_ref)
            if key is None:
                text_changes[entry.card_ref] = _rec(entry.status, entry.until)
            else:
                changes[key] = _rec(entry.status, entry.until)
        self._apply_changes(update.version, changes, text_changes, pacer)

    def _apply_changes(self, version: int, changes: dict[bytes, bytes],
                       text_changes: dict[str, bytes], pacer: Pacer) -> None:
        """Put a delta's changes (key -> status and until; status 0 removes) into the
        overlay: one transaction, then one new dict swapped in (lock held)."""
        view = self._view
        assert view is not None
        overlay = dict(view.overlay)
        upsert: list[tuple[bytes, bytes]] = []
        drop: list[tuple[bytes]] = []
        entries = self._entries
        base = view.base
        for key, rec in changes.items():
            pacer.tick()
            in_base = base is not None and base.get(key, int.from_bytes(key, "big")) is not None
            before = overlay.get(key)
            entries += (rec[0] != REMOVED) - (in_base if before is None else before[0] != REMOVED)
            if rec[0] == REMOVED and not in_base:
                overlay.pop(key, None)          # nothing underneath to hide
                drop.append((key,))
            else:
                overlay[key] = rec
                upsert.append((key, rec))
        text = dict(view.text)
        text_drop: list[tuple[str]] = []
        text_upsert: list[tuple[str, bytes]] = []
        for ref, rec in text_changes.items():
            entries += (rec[0] != REMOVED) - (ref in text)
            if rec[0] == REMOVED:
                text.pop(ref, None)
                text_drop.append((ref,))
            else:
                text[ref] = rec
                text_upsert.append((ref, rec))
        now = self._clock.now().astimezone(UTC)
        try:
            with write_transaction(self._db) as db:
                db.executemany("DELETE FROM overlay WHERE key = ?", drop)
                db.executemany("INSERT OR REPLACE INTO overlay VALUES (?, ?)", upsert)
                db.executemany("DELETE FROM text_entries WHERE card_ref = ?", text_drop)
                db.executemany("INSERT OR REPLACE INTO text_entries VALUES (?, ?)", text_upsert)
                db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                               [("version", str(version)),
                                ("installed_at", now.isoformat()), ("entries", str(entries))])
        except sqlite3.Error as exc:
            raise DenylistError(f"{self.path}: cannot install denylist "
                                f"version {version}: {exc}") from exc
        self._view = _View(base, overlay, text)
        self._version, self._installed_at, self._entries = version, now, entries

    # --- compaction ------------------------------------------------------------------

    def _start_compaction(self) -> None:
        if not self._background:
            self.compact()
            return
        with self._lock:
            if self._closing.is_set() or (self._compactor is not None
                                          and self._compactor.is_alive()):
                return
            self._compactor = threading.Thread(target=self._compact_quietly,
                                               name="denylist-compact", daemon=True)
            self._compactor.start()

    def _compact_quietly(self) -> None:
        try:
            self.compact()
        except _Stopped:
            pass
        except (DenylistError, OSError, sqlite3.Error) as exc:
            # The overlay stays as it was: the list is still whole, only larger in RAM.
            log.warning("denylist compaction failed (the list stays as it is): %s", exc)

    def wait_compacted(self) -> None:
        """Wait for a background compaction in progress (tests, the bench)."""
        compactor = self._compactor
        if compactor is not None:
            compactor.join()

    def compact(self) -> bool:
        """Merge the overlay into a new base file and switch to it; False when there was
        nothing to merge or a snapshot replaced the list meanwhile.

        The merge runs without the lock: deltas and lookups go on. What the overlay
        gained meanwhile stays in the overlay after the switch.
        """
        with self._lock:
            view = self._view
            if view is None or not view.overlay:
                return False
            generation, version = self._generation, self._version
        frozen = view.overlay
        base = view.base
        # The plan in flat containers (no tuple an entry): allocating and freeing 70,000
        # tuples held the GIL for 15 ms.
        order: list[bytes] = []
        positions = array("q")
        found_flags = bytearray()
        count = base.count if base is not None else 0
        pacer = Pacer()
        for key in _paced_sorted(list(frozen), pacer):
            pacer.tick()
            at, found = base.position(key) if base is not None else (0, False)
            order.append(key)
            positions.append(at)
            found_flags.append(found)
            count += (frozen[key][0] != REMOVED) - found
        inherit = base is not None and (
            count * FILTER_BITS_PER_ENTRY <= base.filter.size * 3 // 2)
        name = self._new_base_name(version)
        final = self.path.with_name(name)
        writer = BaseWriter(final, list_version=version, count=count, pacer=pacer,
                            inherit_filter=base.filter.bits if base is not None and inherit
                            else None)
        try:
            position = 0
            for key, at, flag in zip(order, positions, found_flags, strict=True):
                rec = frozen[key]
                if base is not None:
                    for piece in base.records(position, at):
                        self._stop_if_closing()
                        writer.add(piece, trusted=True)
                        pacer.tick()
                if rec[0] != REMOVED:
                    writer.add(key + rec)
                position = at + 1 if flag else at
                pacer.tick()
            if base is not None:
                for piece in base.records(position, base.count):
                    self._stop_if_closing()
                    writer.add(piece, trusted=True)
                    pacer.tick()
            writer.finish()
            new_base = BaseFile(final)
        except BaseException:
            writer.abort()
            raise
        with self._lock:
            current = self._view
            if current is None or self._generation != generation:
                new_base.close()
                _unlink(final)
                return False
            # What changed since the merge began stays in the overlay; and a card the
            # merge put into the new base that a delta has since removed (its overlay row
            # dropped, as the old base did not hold it) needs a tombstone now.
            remaining: dict[bytes, bytes] = {}
            for k, v in current.overlay.items():
                if frozen.get(k) != v:
                    remaining[k] = v
                pacer.tick()
            for k, v in frozen.items():
                if v[0] != REMOVED and k not in current.overlay:
                    remaining[k] = _TOMBSTONE
                pacer.tick()
            try:
                with write_transaction(self._db) as db:
                    db.execute("DELETE FROM overlay")
                    db.executemany("INSERT INTO overlay VALUES (?, ?)", remaining.items())
                    db.execute("INSERT OR REPLACE INTO meta VALUES ('base', ?)", (name,))
            except sqlite3.Error as exc:
                new_base.close()
                _unlink(final)
                raise DenylistError(f"{self.path}: cannot switch to the compacted "
                                    f"denylist: {exc}") from exc
            self._switch(_View(new_base, remaining, current.text))
        log.info("denylist compacted: %d entries in the base file, %d left in the overlay",
                 count, len(remaining))
        return True

    def _stop_if_closing(self) -> None:
        if self._closing.is_set():
            raise _Stopped

    # --- from the central ------------------------------------------------------------

    def refresh(self, source: DenylistSource, *, deadline: Deadline) -> int:
        """Fetch what changed since the installed version and install it; the new version.

        A chunked snapshot is downloaded chunk by chunk, each checked against the signed
        manifest before it is written; the switch happens only when all matched. An
        interrupted download resumes at the next refresh (the chunks on disk are checked
        again, never trusted). Raises the central client's errors
        (``CentralUnreachableError``, a refused signature as ``CentralProtocolError``)
        with the installed list untouched.
        """
        update = source.denylist_update(self._version, deadline)
        if isinstance(update, DenylistManifest):
            self.install_manifest(update, lambda i: source.denylist_chunk(update, i, deadline))
        else:
            self.install(update)
        return self._version

    def install_manifest(self, manifest: DenylistManifest,
                         fetch: Callable[[int], bytes]) -> None:
        """Install a chunked snapshot from its verified manifest; ``fetch(i)`` returns
        chunk ``i``, which is checked against the manifest's hash before use.

        The download goes to a file named for the manifest's digest; if a refresh is cut
        short (deadline, network), the chunks already written stay and the next refresh
        for the same manifest re-checks them against their hashes and goes on from there.
        """
        if manifest.record_bytes != RECORD_BYTES:
            raise CentralProtocolError(f"denylist manifest: only {RECORD_BYTES}-byte records "
                                       "are understood")
        if sum(c.records for c in manifest.chunks) != manifest.entries:
            raise CentralProtocolError("denylist manifest: chunk sizes do not add up")
        if not manifest.full:
            self._install_chunked_delta(manifest, fetch)
            return
        with self._lock:
            self._check_applies(manifest.version, manifest.since_version, True)
            download = self.path.with_name(
                f"{self.path.name}.download-{manifest.digest.hex()[:32]}")
            for stale in self.path.parent.glob(glob.escape(self.path.name) + ".download-*"):
                if stale != download:
                    _unlink(stale)
            writer = BaseWriter(download, list_version=manifest.version,
                                count=manifest.entries, pacer=Pacer(), tmp=download,
                                resume=True)
            # Unreachable (deadline, network): keep what arrived, resume later. Anything
            # else (a chunk that does not match, a refusal) drops the download.
            self._install_base(manifest.version, self._chunks(manifest, fetch, writer),
                               manifest.entries, {}, writer=writer,
                               resumable=(CentralUnreachableError,))
        log.info("denylist version %d installed (chunked snapshot, %d entries)",
                 manifest.version, manifest.entries)

    def _install_chunked_delta(self, manifest: DenylistManifest,
                               fetch: Callable[[int], bytes]) -> None:
        """A large delta as records (status 0: a removal): read byte by byte with the
        interpreter handed over every millisecond, where its JSON would have been one
        parse holding it for tens of milliseconds."""
        with self._lock:
            self._check_applies(manifest.version, manifest.since_version, False)
            pacer = Pacer()
            changes: dict[bytes, bytes] = {}
            last = b""
            for i in range(len(manifest.chunks)):
                data = _checked_chunk(manifest, i, fetch(i))
                codes = data[KEY_BYTES::RECORD_BYTES]
                if codes and max(codes) > max(STATUS_CODES.values()):
                    raise DenylistError("denylist delta records: unknown status code")
                for at in range(0, len(data), RECORD_BYTES):
                    key = data[at:at + KEY_BYTES]
                    if key <= last:
                        raise DenylistError("denylist delta records: keys not strictly "
                                            "ascending")
                    changes[key] = data[at + KEY_BYTES:at + RECORD_BYTES]
                    last = key
                    if not at % 20480:
                        pacer.tick()
            self._apply_changes(manifest.version, changes, {}, pacer)
        log.info("denylist version %d installed (chunked delta, %d changes)",
                 manifest.version, manifest.entries)
        if len(self._overlay()) >= self._compact_at:
            self._start_compaction()

    @staticmethod
    def _chunks(manifest: DenylistManifest, fetch: Callable[[int], bytes],
                writer: BaseWriter) -> Iterator[bytes]:
        """The chunks still to write: those on disk from an interrupted download are
        read back and checked against the manifest first."""
        index = 0
        for chunk in manifest.chunks:
            if writer.count + chunk.records > writer.resumable:
                break
            data = writer.replay(chunk.records)
            if hashlib.sha256(data).digest() != chunk.sha256:
                raise DenylistError("denylist download on disk does not match the manifest")
            index += 1
        writer.truncate_rest()
        if index:
            log.info("denylist download resumed at chunk %d of %d", index, len(manifest.chunks))
        for i in range(index, len(manifest.chunks)):
            yield _checked_chunk(manifest, i, fetch(i))


# --- helpers -------------------------------------------------------------------------


def _checked_chunk(manifest: DenylistManifest, index: int, data: bytes) -> bytes:
    """The client checked the chunk already; checked again here so that no source can
    hand over a chunk the signed manifest does not cover."""
    chunk = manifest.chunks[index]
    if (len(data) != chunk.records * RECORD_BYTES
            or hashlib.sha256(data).digest() != chunk.sha256):
        raise CentralProtocolError(f"denylist chunk {index} does not match the signed "
                                   "manifest")
    return data


def _paced_sorted(items: list[bytes], pacer: Pacer) -> Iterator[bytes]:
    """``sorted(items)`` without holding the GIL for long: one ``sorted`` of 65,536
    entries holds it 35 ms, a tap's whole wait budget seven times over. Runs of 2,048
    are sorted (about 1 ms each) with a hand-over between them, then merged by
    ``heapq.merge`` (Python code: the caller's pacer hands over while it consumes)."""
    runs = []
    for start in range(0, len(items), 2048):
        runs.append(sorted(items[start:start + 2048]))
        pacer.tick()
    return heapq.merge(*runs)



def _rec(status: CardStatus | str, until: str | None) -> bytes:
    code = STATUS_CODES[status] if isinstance(status, CardStatus) else STATUS_CODES[
        CardStatus(status)]
    return bytes((code,)) + day_of(until).to_bytes(4, "big")


def _old_status(path: Path, text: str) -> CardStatus:
    try:
        return CardStatus(text)
    except ValueError as exc:
        raise DenylistError(f"{path}: entry with unknown status {text!r}") from exc


def _valid_rec(rec: object) -> bool:
    return isinstance(rec, bytes) and len(rec) == RECORD_BYTES - KEY_BYTES and (
        rec[0] == REMOVED or rec[0] in STATUS_CODES.values())


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass    # gone already, or (Windows) still open: removed at the next open


