"""The local denylist: the central's list of cards that must be refused, kept in an
SQLite file so that a validator decides offline, after a reboot, in constant time.

Only :class:`~sscard_terminal.central.models.DenylistUpdate` values are installed, and
the central client returns those only after checking the central's Ed25519 signature:
nothing unsigned reaches the file. A delta applies only on top of the version it was
made from; a snapshot replaces everything. Each install is one SQLite transaction, so a
power cut leaves either the old list or the new one, never a mix.

Lookups go to an in-memory dict mirrored from the file at open (O(1), no disk access on
the tap path); the file is the durable copy.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Protocol

from ..central.models import CardStatus, DenylistEntry, DenylistUpdate, lapse_passed
from ..deadline import Deadline
from ..errors import CentralProtocolError, DenylistError
from ..sqlite_transaction import write_transaction
from .clock import Clock, SystemClock, local_date

__all__ = ["Denylist", "DenylistSource", "DenylistState"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_APPLICATION_ID = 0x53534444   # "SSDD": marks the file as ours


class DenylistSource(Protocol):
    """Where updates come from: the central client."""

    def denylist(self, since_version: int, deadline: Deadline) -> DenylistUpdate: ...


@dataclass(frozen=True)
class DenylistState:
    """What a status page shows: version, size and age of the installed list."""

    version: int
    entries: int
    installed_at: datetime | None


class Denylist:
    """A denylist file. Usable from several threads; close it when done."""

    def __init__(self, path: Path, *, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise DenylistError(f"{self.path}: cannot open the denylist: {exc}") from exc
        try:
            # Check whose file it is before any pragma writes to it: a foreign file at
            # our path is somebody's evidence and stays byte for byte as it was.
            self._migrate()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._entries = self._load()
            self._version, self._installed_at = self._load_meta()
        except DenylistError:
            self._db.close()
            raise
        except (sqlite3.Error, ValueError) as exc:
            # ValueError: a meta value edited or half-written (a version that is no
            # number, an install time without its offset).
            self._db.close()
            raise DenylistError(f"{self.path}: cannot open the denylist: {exc}; "
                                "move the file aside to start from an empty list") from exc

    @classmethod
    def open(cls, path: Path | str, *, clock: Clock | None = None) -> Denylist:
        return cls(Path(path), clock=clock)

    def __enter__(self) -> Denylist:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- schema ----------------------------------------------------------------------

    def _migrate(self) -> None:
        app_id = self._db.execute("PRAGMA application_id").fetchone()[0]
        tables = {row[0] for row in self._db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if app_id == 0 and not tables:
            with write_transaction(self._db) as db:
                db.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
                db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
                db.execute("CREATE TABLE entries (card_ref TEXT PRIMARY KEY, "
                           "status TEXT NOT NULL, until TEXT) WITHOUT ROWID")
                db.executemany("INSERT INTO meta VALUES (?, ?)",
                               [("schema_version", str(SCHEMA_VERSION)), ("version", "0")])
            return
        if app_id != _APPLICATION_ID:
            raise DenylistError(f"{self.path}: not a denylist file (foreign SQLite database); "
                                "it was left untouched")
        schema = int(self._meta("schema_version") or 0)
        if schema != SCHEMA_VERSION:
            raise DenylistError(f"{self.path}: denylist schema {schema} is not {SCHEMA_VERSION} "
                                "(written by another version of sscard-terminal)")

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _load(self) -> dict[str, DenylistEntry]:
        entries: dict[str, DenylistEntry] = {}
        for ref, status, until in self._db.execute("SELECT card_ref, status, until FROM entries"):
            try:
                entries[ref] = DenylistEntry(ref, CardStatus(status), until)
            except ValueError as exc:
                raise DenylistError(f"{self.path}: entry with unknown status {status!r}") from exc
        return entries

    def _load_meta(self) -> tuple[int, datetime | None]:
        installed = self._meta("installed_at")
        at = datetime.fromisoformat(installed) if installed else None
        if at is not None and at.tzinfo is None:
            # Compared with the aware clock on every offline decision: refuse it here.
            raise ValueError(f"install time {installed!r} has no UTC offset")
        return int(self._meta("version") or 0), at

    # --- reading ---------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    def state(self) -> DenylistState:
        with self._lock:
            return DenylistState(self._version, len(self._entries), self._installed_at)

    def age_hours(self) -> float | None:
        """Hours since the last successful install (or refresh that found nothing new)."""
        if self._installed_at is None:
            return None
        return (self._clock.now() - self._installed_at).total_seconds() / 3600.0

    def lookup(self, card_ref: str, *, today: date | None = None,
               now: datetime | None = None) -> DenylistEntry | None:
        """The entry that refuses this card now, or None.

        An entry with ``until`` (a 15-day temporary loss) stops refusing at that instant
        (to the second, whatever the zone it is written in), or after that last day when
        the central sent a date, as the card lapses back to normal by itself without a new
        denylist. An unreadable ``until`` keeps refusing (the safe side).
        """
        entry = self._entries.get(card_ref)
        if entry is None or entry.until is None:
            return entry
        moment = now or self._clock.now()
        day = today or local_date(moment)
        return None if lapse_passed(entry.until, moment, day) else entry

    # --- writing ---------------------------------------------------------------------

    def install(self, update: DenylistUpdate) -> None:
        """Install a verified update in one transaction.

        A delta must start from the installed version; anything else (a gap, a replay of
        an old delta) is refused so the list never silently misses entries.
        """
        with self._lock:
            if not update.full and update.since_version != self._version:
                raise CentralProtocolError(
                    f"denylist delta from version {update.since_version} does not apply to "
                    f"installed version {self._version}")
            if update.version < self._version:
                raise CentralProtocolError(
                    f"denylist version {update.version} is older than installed {self._version}")
            now = self._clock.now().astimezone(UTC)
            entries = {} if update.full else dict(self._entries)
            for ref in update.removed:
                entries.pop(ref, None)
            for entry in update.added:
                entries[entry.card_ref] = entry
            try:
                with write_transaction(self._db) as db:
                    if update.full:
                        db.execute("DELETE FROM entries")
                    db.executemany("DELETE FROM entries WHERE card_ref = ?",
                                   [(ref,) for ref in update.removed])
                    db.executemany("INSERT OR REPLACE INTO entries VALUES (?, ?, ?)",
                                   [(e.card_ref, e.status.value, e.until) for e in update.added])
                    db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                   [("version", str(update.version)),
                                    ("installed_at", now.isoformat())])
            except sqlite3.Error as exc:
                raise DenylistError(f"{self.path}: cannot install denylist "
                                    f"version {update.version}: {exc}") from exc
            self._entries = entries
            self._version = update.version
            self._installed_at = now
        log.info("denylist version %d installed (%s, %d entries)",
                 update.version, "snapshot" if update.full else "delta", len(entries))

    def refresh(self, source: DenylistSource, *, deadline: Deadline) -> int:
        """Fetch what changed since the installed version and install it; the new version.

        Raises the central client's errors (``CentralUnreachableError``, a refused
        signature as ``CentralProtocolError``/``CentralRefusedError``) with the installed
        list untouched.
        """
        update = source.denylist(self._version, deadline)
        self.install(update)
        return update.version
