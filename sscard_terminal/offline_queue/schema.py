"""Opening the journal file safely: identify it, check its version, migrate, never clobber.

A journal is an SQLite database in WAL mode whose ``application_id`` says "sscard
journal" and whose ``schema_versions`` table lists the migrations applied. Before
anything is written, the file at the path is checked: something that is not SQLite,
an SQLite file of another application, a file shorter than its own header says, or a
journal from a newer version is refused with an error that names the file and what to
do, and the file is left byte for byte as it was (it is evidence).

Those checks run on a read-only connection: a writer connection checkpoints the WAL into
the file and deletes it when it closes, which after a crash would rewrite the evidence
of a journal we are refusing. A WAL whose journal file is missing or empty holds records
that were reported durable: it is refused too, never replaced by a new journal.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import (
    JournalCorruptError,
    JournalError,
    JournalForeignFileError,
    JournalNewerSchemaError,
    JournalStorageError,
)
from ..sqlite_transaction import write_transaction

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "connect", "read_meta", "storage_error"]

APPLICATION_ID = 0x53534A4C  # "SSJL"
SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_HEADER_BYTES = 32

_V1 = """
CREATE TABLE schema_versions (
    version    INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL
);
CREATE TABLE journal_meta (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
CREATE TABLE records (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL,          -- UUIDv7, unique by construction (no index: speed)
    terminal_id TEXT NOT NULL,
    wall_time   TEXT NOT NULL,
    mono_ns     INTEGER NOT NULL,
    boot_id     TEXT NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    personal    BLOB,
    prev_hash   BLOB NOT NULL,
    hash        BLOB NOT NULL,
    acked_at    TEXT,
    ack_outcome TEXT,
    ack_reason  TEXT,
    ack_mac     BLOB
);
CREATE INDEX records_pending ON records(seq) WHERE acked_at IS NULL;
"""

# version -> SQL that brings the previous version to it.
_MIGRATIONS: dict[int, str] = {1: _V1}


def storage_error(path: Path, exc: sqlite3.Error) -> JournalError:
    """Translate an SQLite write failure into the error a technician can act on."""
    code = getattr(exc, "sqlite_errorcode", None)
    name = getattr(exc, "sqlite_errorname", "") or ""
    if code == sqlite3.SQLITE_FULL or name.startswith("SQLITE_FULL"):
        return JournalStorageError(
            f"journal {path}: disk full, nothing was recorded; free space on its file system")
    if name.startswith("SQLITE_READONLY") or name == "SQLITE_CANTOPEN":
        return JournalStorageError(
            f"journal {path}: file system or file is read-only, nothing was recorded; "
            f"remount it read-write or fix the permissions")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return JournalCorruptError(
            f"journal {path} is malformed ({exc}); it was left untouched: keep it and "
            f"restore from backup")
    return JournalError(f"journal {path}: {exc}")


def _check_header(path: Path) -> bool:
    """True if the file has journal content to check; False if it is new (absent/empty)."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        _refuse_orphan_wal(path, "missing")
        return False
    if size == 0:
        # Created but its first transaction never committed (the schema is written in
        # rollback mode before the switch to WAL, so a journal is never empty on disk).
        _refuse_orphan_wal(path, "empty")
        return False
    with path.open("rb") as handle:
        header = handle.read(100)
    if not header.startswith(_SQLITE_MAGIC[: len(header)]) or len(header) < 100:
        if header.startswith(_SQLITE_MAGIC[: min(len(header), 16)]) and len(header) < 100:
            raise JournalCorruptError(
                f"journal {path} is truncated ({size} bytes); keep the file, restore from backup")
        raise JournalForeignFileError(
            f"{path} is not an sscard journal (not an SQLite file); it was left untouched: "
            f"move it away or point --db/the profile at the right file")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    wal = Path(f"{path}-wal")
    wal_frames = wal.exists() and wal.stat().st_size > _WAL_HEADER_BYTES
    # With a WAL the header's page count is not authoritative: an interrupted checkpoint
    # (a full disk) leaves page 1 updated and the file short, the WAL still holding the
    # pages. SQLite then reads them from the WAL; quick_check below decides.
    if page_size < 512 or (not wal_frames and (size % page_size or size < pages * page_size)):
        raise JournalCorruptError(
            f"journal {path} is truncated ({size} bytes, header says {pages} pages of "
            f"{page_size}); it was left untouched: keep it and restore from backup")
    return True


def _refuse_orphan_wal(path: Path, state: str) -> None:
    """Refuse to create a journal beside a WAL that holds transactions.

    A journal is never empty once it has a WAL (see :func:`_check_header`), so such a WAL
    belongs to a journal that was moved, deleted or truncated; SQLite would drop it when
    the new journal switches to WAL mode, and with it the records it holds.
    """
    wal = Path(f"{path}-wal")
    try:
        wal_size = wal.stat().st_size
    except FileNotFoundError:
        return
    if wal_size > _WAL_HEADER_BYTES:
        raise JournalCorruptError(
            f"journal {path} is {state} but its write-ahead log {wal} holds {wal_size} bytes "
            f"of transactions; both were left untouched: put the journal file back beside "
            f"it (or restore it from backup), and never delete the -wal file")


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT max(version) FROM schema_versions").fetchone()
    return int(row[0] or 0)


def connect(
    path: Path,
    *,
    synchronous: str,
    on_new: Callable[[sqlite3.Connection], None],
    check_existing: Callable[[sqlite3.Connection], None],
) -> sqlite3.Connection:
    """Open (or create) the journal at ``path`` and bring it to :data:`SCHEMA_VERSION`.

    ``on_new`` runs inside the creating transaction (to store the key check);
    ``check_existing`` runs on an existing journal before anything is written.
    """
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise JournalError(f"journal {path}: synchronous must be FULL, EXTRA or NORMAL")
    if not path.parent.is_dir():
        raise JournalStorageError(
            f"journal {path}: its directory {path.parent} does not exist; create it, "
            f"writable by the daemon's user only, or fix the journal path")
    existing = _check_header(path)
    checked = existing and _checked_read_only(path, check_existing)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                               timeout=10.0)
    except sqlite3.Error as exc:
        raise storage_error(path, exc) from exc
    try:
        conn.execute(f"PRAGMA synchronous={synchronous}")
        if existing:
            if not checked:
                # A crash inside the journal's creation, or a read-only file system
                # (see _NEEDS_WRITER): the checks run here instead.
                _check_existing(path, conn)
                check_existing(conn)
            for target in range(_version(conn) + 1, SCHEMA_VERSION + 1):
                _apply(conn, target)
        else:
            _create(path, conn, on_new)
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        conn.close()
        raise storage_error(path, exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write: closing it never checkpoints or deletes the WAL."""
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True,
                           isolation_level=None, timeout=10.0)


# Where a read-only connection fails and the writer's connection is the one to ask: a
# rollback-mode transaction interrupted inside the journal's creation (only a writer rolls
# it back; nothing was committed), and a WAL-mode journal without its -wal and -shm files
# on a read-only file system (the writer reports it as read-only, and cannot checkpoint).
_NEEDS_WRITER = frozenset({"SQLITE_READONLY_ROLLBACK", "SQLITE_CANTOPEN"})


def _needs_writer(exc: BaseException) -> bool:
    cause = exc if isinstance(exc, sqlite3.Error) else exc.__cause__
    return getattr(cause, "sqlite_errorname", "") in _NEEDS_WRITER


def _checked_read_only(path: Path,
                       check_existing: Callable[[sqlite3.Connection], None]) -> bool:
    """Run every check on a read-only connection; False if only a writer can read the
    file (see :data:`_NEEDS_WRITER`): the caller then checks on its own connection."""
    try:
        conn = _read_only(path)
    except sqlite3.Error as exc:
        if _needs_writer(exc):
            return False
        raise storage_error(path, exc) from exc
    try:
        _check_existing(path, conn)
        check_existing(conn)
    except sqlite3.Error as exc:
        if _needs_writer(exc):
            return False
        raise storage_error(path, exc) from exc
    except JournalError as exc:
        if _needs_writer(exc):
            return False
        raise
    finally:
        conn.close()
    return True


def _check_existing(path: Path, conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA query_only=ON")
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        if app_id != APPLICATION_ID:
            raise JournalForeignFileError(
                f"{path} is an SQLite file of another application (application_id "
                f"{app_id:#x}); it was left untouched: move it away or fix the journal path")
        result = conn.execute("PRAGMA quick_check").fetchone()[0]
        if result != "ok":
            raise JournalCorruptError(
                f"journal {path} fails its integrity check ({result}); it was left "
                f"untouched: keep it and restore from backup")
        try:
            version = _version(conn)
        except sqlite3.OperationalError as exc:
            raise JournalCorruptError(
                f"journal {path} has no schema_versions table; it was left untouched: "
                f"keep it and restore from backup") from exc
        if version > SCHEMA_VERSION:
            raise JournalNewerSchemaError(
                f"journal {path} has schema version {version}, this software knows up to "
                f"{SCHEMA_VERSION}; upgrade sscard-terminal (the file was left untouched)")
    except sqlite3.Error as exc:
        # Malformed or not a database: corrupt. Anything else (a read-only file system,
        # permissions, a full disk) is not the file's fault: say what it is.
        raise storage_error(path, exc) from exc
    finally:
        conn.execute("PRAGMA query_only=OFF")


def _apply(conn: sqlite3.Connection, version: int) -> None:
    with write_transaction(conn):
        _migrate(conn, version)


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring the schema to ``version`` (inside the caller's transaction) and say so."""
    for statement in _MIGRATIONS[version].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO schema_versions VALUES (?, ?)",
                 (version, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))


def _create(path: Path, conn: sqlite3.Connection,
            on_new: Callable[[sqlite3.Connection], None]) -> None:
    with write_transaction(conn):
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
        for version in range(1, SCHEMA_VERSION + 1):
            _migrate(conn, version)
        on_new(conn)
    os.chmod(path, 0o600)


def read_meta(path: Path, name: str) -> bytes:
    """One value of the journal's meta table, after the same checks as :func:`connect`."""
    if not _check_header(path):
        raise JournalError(f"journal {path} is empty or missing")
    rows: list[tuple[bytes] | None] = []

    def read(conn: sqlite3.Connection) -> None:
        rows.append(conn.execute("SELECT value FROM journal_meta WHERE name=?",
                                 (name,)).fetchone())

    if not _checked_read_only(path, read):
        try:
            conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise storage_error(path, exc) from exc
        try:
            _check_existing(path, conn)
            read(conn)
        except sqlite3.Error as exc:
            raise storage_error(path, exc) from exc
        finally:
            conn.close()
    row = rows[-1]
    if row is None:
        raise JournalCorruptError(f"journal {path} has no {name}; keep it, restore from backup")
    return bytes(row[0])
