"""Remember which codes this terminal has accepted, so the same code is refused next time.

An entry lives only until its code expires (plus the clock skew): after that the validity
window refuses the code anyway, so the cache stays small on its own. It is also bounded:
when full, the entries closest to expiry go first (they are the least useful to keep),
except the code just accepted, which is the one most likely to be shown again.
"""

from __future__ import annotations

import heapq
import os
import sqlite3
import threading
from typing import Protocol

from ..errors import JournalError
from ..sqlite_transaction import write_transaction

__all__ = ["MemoryReplayCache", "ReplayCache", "SqliteReplayCache"]


class ReplayCache(Protocol):
    """The verifier's view of a replay cache."""

    def remember_once(self, key: bytes, keep_until: float, now: float) -> bool:
        """Record ``key`` until ``keep_until``; return False if it was already recorded
        (a replay). ``now`` is the verifier's clock, used to prune expired entries."""
        ...

    def seen(self, key: bytes, now: float) -> bool:
        """Whether ``key`` is recorded and not yet expired at ``now``; records nothing.

        A cheap early look, so a replay is refused before the central is asked;
        :meth:`remember_once` stays the decision (two scans may race past this)."""
        ...


class MemoryReplayCache:
    """In-process cache (lost on restart: a daemon that must survive restarts uses SQLite)."""

    def __init__(self, max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("a replay cache holds at least one entry")
        self._max = max_entries
        self._until: dict[bytes, float] = {}
        self._heap: list[tuple[float, bytes]] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._until)

    def remember_once(self, key: bytes, keep_until: float, now: float) -> bool:
        with self._lock:
            self._prune(now)
            if key in self._until:
                return False
            self._until[key] = keep_until
            heapq.heappush(self._heap, (keep_until, key))
            held: tuple[float, bytes] | None = None
            while len(self._until) > self._max:
                entry = heapq.heappop(self._heap)
                if entry[1] == key:     # never the code just accepted: it would replay
                    held = entry
                    continue
                self._until.pop(entry[1], None)
            if held is not None:
                heapq.heappush(self._heap, held)
            return True

    def seen(self, key: bytes, now: float) -> bool:
        with self._lock:
            until = self._until.get(key)
        return until is not None and until >= now

    def _prune(self, now: float) -> None:
        while self._heap and self._heap[0][0] < now:
            _, key = heapq.heappop(self._heap)
            self._until.pop(key, None)


class SqliteReplayCache:
    """Replay cache in a SQLite file, so a restart does not reopen accepted codes.

    One transaction per insert (``INSERT`` on a primary key decides atomically, also
    across processes sharing the file); WAL with ``synchronous=NORMAL``: a power cut may
    lose the last accepted code, which then expires within a minute anyway.
    """

    def __init__(self, path: str | os.PathLike[str], max_entries: int = 100_000) -> None:
        if max_entries < 1:
            raise ValueError("a replay cache holds at least one entry")
        self._max = max_entries
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(os.fspath(path), isolation_level=None,
                                       check_same_thread=False, timeout=2.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS ecode_replay ("
                             "key BLOB PRIMARY KEY, keep_until REAL NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS ecode_replay_until "
                             "ON ecode_replay(keep_until)")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the e-code replay cache {path}: {exc}") from exc

    def remember_once(self, key: bytes, keep_until: float, now: float) -> bool:
        with self._lock:
            try:
                with write_transaction(self._db) as db:
                    db.execute("DELETE FROM ecode_replay WHERE keep_until < ?", (now,))
                    inserted = db.execute(
                        "INSERT OR IGNORE INTO ecode_replay(key, keep_until) VALUES (?, ?)",
                        (key, keep_until)).rowcount == 1
                    if inserted:
                        # Never the code just accepted: evicted, it would replay.
                        db.execute(
                            "DELETE FROM ecode_replay WHERE key IN (SELECT key FROM "
                            "ecode_replay WHERE key != ? ORDER BY keep_until LIMIT max(0, "
                            "(SELECT count(*) FROM ecode_replay) - ?))", (key, self._max))
            except sqlite3.Error as exc:
                raise JournalError(f"e-code replay cache failed: {exc}") from exc
            return inserted

    def seen(self, key: bytes, now: float) -> bool:
        with self._lock:
            try:
                row = self._db.execute("SELECT 1 FROM ecode_replay WHERE key = ? AND "
                                       "keep_until >= ?", (key, now)).fetchone()
            except sqlite3.Error as exc:
                raise JournalError(f"e-code replay cache failed: {exc}") from exc
        return row is not None

    def __len__(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT count(*) FROM ecode_replay").fetchone()
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
