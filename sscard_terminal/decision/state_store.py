"""Where the decision engine keeps its memory: in RAM, or in SQLite across restarts.

The engine remembers, per terminal: the last accepted decision per card (torn-transaction
replays and anti-passback), what online answers taught it about each card (offline
concessions), how many offline accepts ran in a row and when the central last answered.
A daemon that forgets all that on a restart (a crash, a kill -9, a watchdog restart, a
power cycle on a bus) would let a card through twice inside the anti-passback window,
replay nothing for a torn transaction, and reset its offline-accept cap to zero.

:class:`MemoryEngineState` keeps it in process (the SDK, the CLI and tests);
:class:`SqliteEngineState` in a SQLite file in the daemon's state directory.

Time: a remembered decision carries the moment it was made *on the store's timeline*,
which the store picks with :meth:`EngineState.now`. In memory that is the monotonic
clock (NTP cannot move a short window). Monotonic time does not survive a reboot, so the
SQLite store uses the wall clock: a wall clock that jumps backwards makes a remembered
tap look younger (anti-passback refuses a little longer), never older than it is by more
than the jump.

Durability of the SQLite file: WAL with ``synchronous=NORMAL`` by default: every commit
survives the process dying (kill -9, a crash), a power cut may lose the last few taps'
memory (a bus validator re-tapped across a power cycle within the anti-passback window).
Pass ``synchronous="FULL"`` to trade an fsync per accepted tap for that too.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from ..central.models import Application, CardStatus, Channel, Entitlement
from ..errors import StorageError
from ..sqlite_transaction import write_transaction
from .clock import Clock
from .rules import Outcome, Reason

if TYPE_CHECKING:
    from .engine import Decision

__all__ = [
    "EngineState",
    "LearntStanding",
    "MemoryEngineState",
    "RecentDecision",
    "SqliteEngineState",
]

MAX_REMEMBERED_CARDS = 100_000
_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class RecentDecision:
    """The last accepted decision for a card, when (store timeline) and whether finished."""

    decision: Decision
    at: float
    completed: bool


@dataclass(frozen=True)
class LearntStanding:
    """What an online answer said about a card, kept to serve offline concessions."""

    applications: frozenset[Application]
    entitlements: frozenset[Entitlement]
    at: datetime


class EngineState(Protocol):
    """The engine's memory. Calls come under the engine's own lock; implementations are
    thread-safe anyway."""

    def now(self, clock: Clock) -> float:
        """The current moment on the timeline recent decisions are kept on."""
        ...

    def recent(self, ref: str) -> RecentDecision | None: ...

    def remember(self, ref: str, decision: Decision, at: float, *, horizon: float) -> None:
        """Keep ``decision`` as the card's latest; drop entries older than ``horizon``
        seconds, and the oldest beyond the size cap."""
        ...

    def complete(self, ref: str, transaction_id: str) -> None:
        """Mark the card's latest decision finished if it is ``transaction_id``."""
        ...

    def withdraw(self, ref: str, transaction_id: str) -> bool:
        """Forget the card's latest decision if it is ``transaction_id``; True if it was."""
        ...

    def learnt(self, ref: str) -> LearntStanding | None: ...

    def learn(self, ref: str, standing: LearntStanding) -> None: ...

    def forget(self, ref: str) -> None: ...

    def online_answered(self, at: datetime) -> None:
        """The central answered: the offline run is over."""
        ...

    def offline_accepted(self) -> None: ...

    def offline_accept_withdrawn(self) -> None: ...

    def offline_accepts_in_row(self) -> int: ...

    def last_online_ok(self) -> datetime | None: ...

    def remembered_cards(self) -> int: ...


class MemoryEngineState:
    """In-process memory (lost on restart): the engine's behaviour before it had a store."""

    def __init__(self, max_cards: int = MAX_REMEMBERED_CARDS) -> None:
        self._max = max_cards
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, RecentDecision] = OrderedDict()
        self._learnt: OrderedDict[str, LearntStanding] = OrderedDict()
        self._in_row = 0
        self._last_ok: datetime | None = None

    def now(self, clock: Clock) -> float:
        return clock.monotonic()

    def recent(self, ref: str) -> RecentDecision | None:
        with self._lock:
            return self._recent.get(ref)

    def remember(self, ref: str, decision: Decision, at: float, *, horizon: float) -> None:
        with self._lock:
            self._recent[ref] = RecentDecision(decision, at, completed=False)
            self._recent.move_to_end(ref)
            while self._recent:
                oldest = next(iter(self._recent.values()))
                if at - oldest.at <= horizon and len(self._recent) <= self._max:
                    break
                self._recent.popitem(last=False)

    def complete(self, ref: str, transaction_id: str) -> None:
        with self._lock:
            recent = self._recent.get(ref)
            if recent is not None and recent.decision.transaction_id == transaction_id:
                self._recent[ref] = replace(recent, completed=True)

    def withdraw(self, ref: str, transaction_id: str) -> bool:
        with self._lock:
            recent = self._recent.get(ref)
            if recent is None or recent.decision.transaction_id != transaction_id:
                return False
            del self._recent[ref]
            return True

    def learnt(self, ref: str) -> LearntStanding | None:
        with self._lock:
            return self._learnt.get(ref)

    def learn(self, ref: str, standing: LearntStanding) -> None:
        with self._lock:
            self._learnt[ref] = standing
            self._learnt.move_to_end(ref)
            while len(self._learnt) > self._max:
                self._learnt.popitem(last=False)

    def forget(self, ref: str) -> None:
        with self._lock:
            self._learnt.pop(ref, None)

    def online_answered(self, at: datetime) -> None:
        with self._lock:
            self._in_row = 0
            self._last_ok = at

    def offline_accepted(self) -> None:
        with self._lock:
            self._in_row += 1

    def offline_accept_withdrawn(self) -> None:
        with self._lock:
            self._in_row = max(0, self._in_row - 1)

    def offline_accepts_in_row(self) -> int:
        with self._lock:
            return self._in_row

    def last_online_ok(self) -> datetime | None:
        with self._lock:
            return self._last_ok

    def remembered_cards(self) -> int:
        with self._lock:
            return len(self._learnt)


# --- SQLite -------------------------------------------------------------------------------

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS recent_decision ("
    " card_ref TEXT PRIMARY KEY, at REAL NOT NULL, completed INTEGER NOT NULL,"
    " decision TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS recent_decision_at ON recent_decision(at)",
    "CREATE TABLE IF NOT EXISTS learnt_standing ("
    " card_ref TEXT PRIMARY KEY, learnt_at TEXT NOT NULL, applications TEXT NOT NULL,"
    " entitlements TEXT NOT NULL, touched INTEGER NOT NULL)",
    "CREATE INDEX IF NOT EXISTS learnt_standing_touched ON learnt_standing(touched)",
    "CREATE TABLE IF NOT EXISTS engine_counter (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


def _decision_json(decision: Decision) -> str:
    return json.dumps({
        "outcome": decision.outcome.value,
        "reason": decision.reason.value,
        "message": decision.message,
        "online": decision.online,
        "central_status": (decision.central_status.value
                           if decision.central_status is not None else None),
        "concession": decision.concession.value if decision.concession is not None else None,
        "fare_percent": decision.fare_percent,
        "card_ref": decision.card_ref,
        "channel": decision.channel.value,
        "transaction_id": decision.transaction_id,
        "replayed": decision.replayed,
        "elapsed_ms": decision.elapsed_ms,
        "authentication": decision.authentication,
        "notices": list(decision.notices),
    }, separators=(",", ":"))


def _decision_from(text: str) -> Decision:
    from .engine import Decision  # noqa: PLC0415 - engine imports this module

    data: dict[str, Any] = json.loads(text)
    status = data["central_status"]
    concession = data["concession"]
    return Decision(
        outcome=Outcome(data["outcome"]),
        reason=Reason(data["reason"]),
        message=str(data["message"]),
        online=bool(data["online"]),
        central_status=CardStatus(status) if status is not None else None,
        concession=Entitlement(concession) if concession is not None else None,
        fare_percent=int(data["fare_percent"]),
        card_ref=str(data["card_ref"]),
        channel=Channel(data["channel"]),
        transaction_id=str(data["transaction_id"]),
        replayed=bool(data["replayed"]),
        elapsed_ms=float(data["elapsed_ms"]),
        authentication=str(data.get("authentication", "none")),
        notices=tuple(str(n) for n in data.get("notices", ())),
    )


class SqliteEngineState:
    """The engine's memory in a SQLite file (the daemon's ``engine-state.db``).

    One connection behind a lock, autocommit with explicit write transactions; a SQLite
    failure (disk full, read-only, a foreign file) raises :class:`StorageError` naming
    the file.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_cards: int = MAX_REMEMBERED_CARDS,
                 synchronous: str = "NORMAL") -> None:
        if synchronous not in ("NORMAL", "FULL"):
            raise ValueError("synchronous is NORMAL or FULL")
        self.path = os.fspath(path)
        self._max = max_cards
        self._lock = threading.Lock()
        self._touch = 0
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None,
                                       check_same_thread=False, timeout=2.0)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the engine state {self.path}: {exc}") from exc
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            with write_transaction(self._db) as db:
                for statement in _SCHEMA:
                    db.execute(statement)
                row = db.execute("SELECT version FROM schema_version").fetchone()
                if row is None:
                    db.execute("INSERT INTO schema_version VALUES (?)", (_SCHEMA_VERSION,))
                elif row[0] > _SCHEMA_VERSION:
                    raise StorageError(f"{self.path}: engine state written by a newer "
                                       f"version (schema {row[0]}); upgrade, keep the file")
            row = self._db.execute("SELECT max(touched) FROM learnt_standing").fetchone()
            self._touch = int(row[0] or 0)
        except sqlite3.Error as exc:
            self._db.close()
            raise StorageError(f"cannot use the engine state {self.path}: {exc} "
                               f"(not an sscard state file, or the disk is full)") from exc
        except StorageError:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteEngineState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- helpers -------------------------------------------------------------------------

    def _read(self, sql: str, args: tuple[object, ...] = ()) -> Any:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchone()
            except sqlite3.Error as exc:
                raise StorageError(f"engine state {self.path}: {exc}") from exc

    def _write(self, *statements: tuple[str, tuple[object, ...]]) -> int:
        """Run ``statements`` in one write transaction; the last one's rowcount."""
        with self._lock:
            try:
                with write_transaction(self._db) as db:
                    count = 0
                    for sql, args in statements:
                        count = db.execute(sql, args).rowcount
                    return count
            except sqlite3.Error as exc:
                raise StorageError(f"engine state {self.path}: {exc}") from exc

    def _counter(self, name: str) -> str | None:
        row = self._read("SELECT value FROM engine_counter WHERE name = ?", (name,))
        return None if row is None else str(row[0])

    # --- EngineState ---------------------------------------------------------------------

    def now(self, clock: Clock) -> float:
        return clock.now().timestamp()

    def recent(self, ref: str) -> RecentDecision | None:
        row = self._read("SELECT decision, at, completed FROM recent_decision "
                         "WHERE card_ref = ?", (ref,))
        if row is None:
            return None
        return RecentDecision(_decision_from(row[0]), float(row[1]), bool(row[2]))

    def remember(self, ref: str, decision: Decision, at: float, *, horizon: float) -> None:
        self._write(
            ("INSERT OR REPLACE INTO recent_decision(card_ref, at, completed, decision) "
             "VALUES (?, ?, 0, ?)", (ref, at, _decision_json(decision))),
            ("DELETE FROM recent_decision WHERE at < ? AND card_ref != ?", (at - horizon, ref)),
            ("DELETE FROM recent_decision WHERE card_ref IN (SELECT card_ref FROM "
             "recent_decision WHERE card_ref != ? ORDER BY at LIMIT max(0, (SELECT count(*) "
             "FROM recent_decision) - ?))", (ref, self._max)),
        )

    def complete(self, ref: str, transaction_id: str) -> None:
        self._write(("UPDATE recent_decision SET completed = 1 WHERE card_ref = ? AND "
                     "json_extract(decision, '$.transaction_id') = ?", (ref, transaction_id)))

    def withdraw(self, ref: str, transaction_id: str) -> bool:
        return self._write(("DELETE FROM recent_decision WHERE card_ref = ? AND "
                            "json_extract(decision, '$.transaction_id') = ?",
                            (ref, transaction_id))) == 1

    def learnt(self, ref: str) -> LearntStanding | None:
        row = self._read("SELECT applications, entitlements, learnt_at FROM learnt_standing "
                         "WHERE card_ref = ?", (ref,))
        if row is None:
            return None
        return LearntStanding(frozenset(Application(a) for a in json.loads(row[0])),
                              frozenset(Entitlement(e) for e in json.loads(row[1])),
                              datetime.fromisoformat(row[2]))

    def learn(self, ref: str, standing: LearntStanding) -> None:
        with self._lock:
            self._touch += 1
            touch = self._touch
        self._write(
            ("INSERT OR REPLACE INTO learnt_standing(card_ref, learnt_at, applications, "
             "entitlements, touched) VALUES (?, ?, ?, ?, ?)",
             (ref, standing.at.isoformat(),
              json.dumps(sorted(a.value for a in standing.applications)),
              json.dumps(sorted(e.value for e in standing.entitlements)), touch)),
            ("DELETE FROM learnt_standing WHERE card_ref IN (SELECT card_ref FROM "
             "learnt_standing ORDER BY touched LIMIT max(0, (SELECT count(*) FROM "
             "learnt_standing) - ?))", (self._max,)),
        )

    def forget(self, ref: str) -> None:
        self._write(("DELETE FROM learnt_standing WHERE card_ref = ?", (ref,)))

    def online_answered(self, at: datetime) -> None:
        self._write(
            ("INSERT OR REPLACE INTO engine_counter VALUES ('offline_accepts_in_row', '0')", ()),
            ("INSERT OR REPLACE INTO engine_counter VALUES ('last_online_ok', ?)",
             (at.isoformat(),)),
        )

    def offline_accepted(self) -> None:
        self._write(("INSERT INTO engine_counter VALUES ('offline_accepts_in_row', '1') "
                     "ON CONFLICT(name) DO UPDATE SET value = CAST(value AS INTEGER) + 1", ()))

    def offline_accept_withdrawn(self) -> None:
        self._write(("UPDATE engine_counter SET value = max(0, CAST(value AS INTEGER) - 1) "
                     "WHERE name = 'offline_accepts_in_row'", ()))

    def offline_accepts_in_row(self) -> int:
        value = self._counter("offline_accepts_in_row")
        return int(value) if value is not None else 0

    def last_online_ok(self) -> datetime | None:
        value = self._counter("last_online_ok")
        return datetime.fromisoformat(value) if value is not None else None

    def remembered_cards(self) -> int:
        row = self._read("SELECT count(*) FROM learnt_standing")
        return int(row[0])
