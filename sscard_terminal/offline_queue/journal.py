"""The durable, hash-chained, encrypted journal of transactions.

Every :meth:`Journal.enqueue` is one SQLite transaction (a single ``INSERT`` in
autocommit mode) in WAL mode with ``synchronous=FULL`` by default: when it returns, the
record is on stable storage and survives a power cut. ``NORMAL`` is faster but a power cut may
lose the last transactions that returned (never corrupts the file); a profile chooses.

Each record carries ``prev_hash`` and ``hash = HMAC(chain key, prev_hash, fields)``, so
a deleted, reordered or edited record breaks the chain (see :mod:`.verify`). Pruning
removes only a contiguous prefix of acknowledged records and moves the chain's *anchor*
(the last pruned sequence and hash, itself MACed) in the same transaction.

Personal fields (name, ID number, card number...) are sealed with AES-GCM before they
reach SQLite; the record id is the associated data, so a sealed blob cannot be moved to
another record unnoticed.
"""

from __future__ import annotations

import calendar
import contextlib
import json
import json.encoder
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import JournalError, JournalFullError, JournalKeyError, JournalTamperedError
from ..sqlite_transaction import write_transaction
from .crypto import LENGTH_PREFIX, NONCE_BYTES, JournalKeys
from .records import (
    AckOutcome,
    Alarm,
    FullBehaviour,
    JournalLimits,
    JournalRecord,
    JournalStatus,
)
from .schema import connect, read_meta, storage_error
from .uuid7 import ENTROPY_BYTES as ID_ENTROPY_BYTES
from .uuid7 import Uuid7Generator

__all__ = ["Journal", "PendingRecord", "peek_terminal_id"]

_log = logging.getLogger(__name__)

_SELECT_AFTER = (
    "SELECT seq, id, terminal_id, wall_time, mono_ns, boot_id, kind, payload, personal, "
    "prev_hash, hash, acked_at, ack_outcome, ack_reason, ack_mac "
    "FROM records WHERE seq > ? ORDER BY seq LIMIT ?")
_SELECT_ALL = (
    "SELECT seq, id, terminal_id, wall_time, mono_ns, boot_id, kind, payload, personal, "
    "prev_hash, hash, acked_at, ack_outcome, ack_reason, ack_mac FROM records ORDER BY seq")
_SELECT_DELIVERED = (
    "SELECT seq, id, terminal_id, wall_time, mono_ns, boot_id, kind, payload, personal, "
    "prev_hash, hash, acked_at, ack_outcome, ack_reason, ack_mac "
    "FROM records WHERE seq > ? AND seq < ? ORDER BY seq LIMIT ?")
_CHECK_SLICE = 1000
_NO_SEQ = 1 << 62   # above any sequence number: "nothing is queued"
_SELECT_PENDING = (
    "SELECT seq, id, terminal_id, wall_time, mono_ns, boot_id, kind, payload, personal, "
    "prev_hash, hash, acked_at, ack_outcome, ack_reason, ack_mac "
    "FROM records WHERE acked_at IS NULL ORDER BY seq LIMIT ?")
_INSERT = ("INSERT INTO records (seq, id, terminal_id, wall_time, mono_ns, boot_id, kind, "
           "payload, personal, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?,?)")
# The Python types of a row as _SELECT_AFTER reads it, when the journal wrote it.
_ROW_TYPES: tuple[type | tuple[type, ...], ...] = (
    int, str, str, str, int, str, str, str, (bytes, type(None)), bytes, bytes,
    (str, type(None)), (str, type(None)), (str, type(None)), (bytes, type(None)))
_LIMIT_REFRESH_S = 1.0
_ENTROPY_PER_RECORD = ID_ENTROPY_BYTES + NONCE_BYTES
# ".mmmZ" for every millisecond: the end of a record's wall time without formatting it.
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))
_new_tuple = tuple.__new__
_LENGTH = LENGTH_PREFIX   # the framing JournalKeys.mac uses, shared so the two agree
_EIGHT = _LENGTH(8)


def _not_json(value: object) -> object:
    raise TypeError(f"journal payload: {type(value).__name__!r} values are not JSON "
                    f"(use str, int, float, bool, None, list or dict)")


# Canonical JSON (sorted keys, no spaces): the stored text is what the chain hashes.
_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"),
                         allow_nan=False, default=_not_json)
# The same encoder's C core, built once. ``JSONEncoder.encode`` builds it again on every
# call, which is a third of an enqueue's JSON cost; the output is identical (a test pins it).
_MAKE_C_ENCODER: Callable[..., Callable[[object, int], Sequence[str]]] | None = getattr(
    json.encoder, "c_make_encoder", None)
_C_JSON = (_MAKE_C_ENCODER(None, _not_json, json.encoder.encode_basestring, None, ":", ",",
                           True, False, False) if _MAKE_C_ENCODER is not None else None)


def _canonical_json(value: Mapping[str, Any]) -> str:
    """Sorted keys, no spaces, UTF-8 left as is: the text the chain hashes.

    Raises ``TypeError`` for a value JSON cannot hold, ``ValueError`` for NaN or infinity
    (not JSON: the central would refuse the record).
    """
    data = value if type(value) is dict else dict(value)
    if _C_JSON is None:
        return _JSON.encode(data)
    return "".join(_C_JSON(data, 0))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
    except OSError:
        return "unknown"


def _utc_iso(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 1_000_000:03d}Z"


def _parse_iso(text: str) -> float:
    base, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) + float(f"0.{frac or 0}")


def record_hash(keys: JournalKeys, prev_hash: bytes, *, seq: int, record_id: str,
                terminal_id: str, wall_time: str, mono_ns: int, boot_id: str, kind: str,
                payload: str, personal: bytes | None) -> bytes:
    """The chain link of one record: everything stored about it except its ack state.

    Equal to ``keys.mac(prev_hash, seq, record_id, ...)``, each part length-prefixed.
    """
    return _chain_link(keys, prev_hash, seq, record_id.encode(), _framed(terminal_id),
                       wall_time, mono_ns, _framed(boot_id), kind, payload, personal)


def _framed(text: str) -> bytes:
    data = text.encode()
    return _LENGTH(len(data)) + data


def _chain_link(keys: JournalKeys, prev_hash: bytes, seq: int,  # noqa: PLR0917
                record_id_b: bytes, terminal_framed: bytes, wall_time: str, mono_ns: int,
                boot_framed: bytes, kind: str, payload: str, personal: bytes | None) -> bytes:
    # Framed inline, with the per-journal constants framed once by the caller, and called
    # with positional arguments: every durable enqueue pays for this (see bench/queue.py).
    # The id comes encoded: enqueue needs its bytes for the encryption too.
    wall_b, kind_b, payload_b = wall_time.encode(), kind.encode(), payload.encode()
    personal = personal or b""
    return keys.mac_framed(b"".join((
        _LENGTH(len(prev_hash)), prev_hash, _EIGHT, seq.to_bytes(8, "big"),
        _LENGTH(len(record_id_b)), record_id_b, terminal_framed,
        _LENGTH(len(wall_b)), wall_b, _EIGHT, mono_ns.to_bytes(8, "big", signed=True),
        boot_framed, _LENGTH(len(kind_b)), kind_b,
        _LENGTH(len(payload_b)), payload_b, _LENGTH(len(personal)), personal)))


def ack_mac(keys: JournalKeys, record_hash_: bytes, outcome: str, reason: str,
            acked_at: str) -> bytes:
    """MAC of an acknowledgement, so nobody marks a record delivered that was not."""
    return keys.mac(b"ack", record_hash_, outcome.encode(), reason.encode(), acked_at.encode())


def chain_problem(keys: JournalKeys, row: Sequence[Any], expected_seq: int,
                  expected_prev: bytes) -> tuple[int, str] | None:
    """The first problem of one stored row (as :data:`_SELECT_AFTER` reads it) that
    should follow ``expected_seq`` / ``expected_prev``: ``(seq, problem)`` or None.

    ``edited`` (its hash does not cover what is stored), ``missing`` (a gap before it),
    ``reordered`` (out of place) or ``ack-edited`` (an acknowledgement without a valid MAC).
    """
    if not all(isinstance(value, kind) for value, kind in zip(row, _ROW_TYPES, strict=True)):
        return int(row[0]), "edited"   # SQLite stores any type a tamperer writes
    (seq, record_id, terminal_id, wall, mono, boot, kind, payload, personal,
     prev_hash, hash_, acked_at, outcome, reason, mac) = row
    computed = record_hash(keys, prev_hash, seq=seq, record_id=record_id,
                           terminal_id=terminal_id, wall_time=wall, mono_ns=int(mono),
                           boot_id=boot, kind=kind, payload=payload,
                           personal=personal)
    if computed != hash_:
        return seq, "edited"
    if seq > expected_seq:
        return expected_seq, "missing"
    if seq != expected_seq or prev_hash != expected_prev:
        return seq, "reordered"
    if acked_at is not None and (
            mac is None or mac != ack_mac(keys, hash_, outcome or "", reason or "", acked_at)):
        return seq, "ack-edited"
    return None


def anchor_mac(keys: JournalKeys, seq: int, hash_: bytes) -> bytes:
    return keys.mac(b"anchor", seq.to_bytes(8, "big"), hash_)


def genesis_hash(keys: JournalKeys, terminal_id: str) -> bytes:
    return keys.mac(b"genesis", terminal_id.encode())


def peek_terminal_id(path: Path) -> str:
    """The terminal a journal belongs to (needs no key: the id is not secret)."""
    return read_meta(Path(path), "terminal_id").decode()


class PendingRecord:
    """A record waiting to be forwarded, with its personal fields decrypted (in memory)."""

    __slots__ = ("personal", "record")

    def __init__(self, record: JournalRecord, personal: Mapping[str, Any]) -> None:
        self.record = record
        self.personal = personal

    def __repr__(self) -> str:
        return f"PendingRecord({self.record!r}, personal=<{len(self.personal)} fields sealed>)"


class Journal:
    """One terminal's offline journal. Thread-safe; use as a context manager."""

    def __init__(self, path: Path, conn: sqlite3.Connection, *, terminal_id: str,
                 keys: JournalKeys, limits: JournalLimits,
                 on_alarm: Callable[[frozenset[Alarm], JournalStatus], None] | None) -> None:
        self.path = path
        self.terminal_id = terminal_id
        self._limits = limits
        self._limited = (limits.max_records is not None or limits.max_age_s is not None
                         or limits.max_disk_bytes is not None)
        self._conn = conn
        self._keys = keys
        self._seal = keys.raw_encrypt
        self._on_alarm = on_alarm
        self._lock = threading.RLock()
        self._ids = Uuid7Generator()
        self._boot_id = _boot_id()
        self._terminal_framed, self._boot_framed = _framed(terminal_id), _framed(self._boot_id)
        self._status: JournalStatus | None = None
        self._raised: frozenset[Alarm] = frozenset()   # as last told to on_alarm
        self._cached_head: tuple[int, bytes] | None = None
        self._status_at = 0.0
        self._added_since_status = 0     # enqueues since ``_status`` was read
        self._wall_second = (-1, "")    # (Unix second, its ISO text up to the seconds)
        self._closed = False
        # (seq, hash) up to which the records marked delivered were checked (pending()).
        self._delivered_checked: tuple[int, bytes] | None = None

    @property
    def limits(self) -> JournalLimits:
        """The limits this journal was opened with (fixed for its life)."""
        return self._limits

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, *, terminal_id: str, keys: JournalKeys | bytes,
             synchronous: str = "FULL", limits: JournalLimits | None = None,
             on_alarm: Callable[[frozenset[Alarm], JournalStatus], None] | None = None,
             ) -> Journal:
        """Open or create the journal at ``path`` for ``terminal_id``.

        ``keys`` is the terminal's 32-byte master key (or keys already derived from it).
        An existing file that is not a journal, is damaged, is newer, belongs to another
        terminal or was made with another key raises a :class:`JournalError` subclass and
        is left untouched.
        """
        path = Path(path)
        derived = keys if isinstance(keys, JournalKeys) else JournalKeys.derive(keys, terminal_id)

        def on_new(conn: sqlite3.Connection) -> None:
            genesis = genesis_hash(derived, terminal_id)
            conn.executemany("INSERT INTO journal_meta VALUES (?, ?)", [
                ("terminal_id", terminal_id.encode()),
                ("key_check", derived.key_check()),
                ("anchor", (0).to_bytes(8, "big") + genesis + anchor_mac(derived, 0, genesis)),
            ])

        def check_existing(conn: sqlite3.Connection) -> None:
            meta = dict(conn.execute("SELECT name, value FROM journal_meta").fetchall())
            owner = bytes(meta.get("terminal_id", b"")).decode()
            if owner != terminal_id:
                raise JournalError(
                    f"journal {path} belongs to terminal {owner!r}, not {terminal_id!r}; it was "
                    f"left untouched: use that terminal id or another journal path")
            if bytes(meta.get("key_check", b"")) != derived.key_check():
                raise JournalKeyError(
                    f"journal {path} was created with another key; it was left untouched: "
                    f"use the key file or credential this journal was created with")

        conn = connect(path, synchronous=synchronous, on_new=on_new,
                       check_existing=check_existing)
        return cls(path, conn, terminal_id=terminal_id, keys=derived,
                   limits=limits or JournalLimits(), on_alarm=on_alarm)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        return self._conn

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Journal({str(self.path)!r}, terminal_id={self.terminal_id!r})"

    # -- writing -------------------------------------------------------------------------

    def _read_head(self) -> tuple[int, bytes]:
        try:
            return self._head()
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from exc

    def _head(self) -> tuple[int, bytes]:
        row = self._db.execute(
            "SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        if row is not None:
            return int(row[0]), bytes(row[1])
        return self._anchor()

    def _anchor_value(self) -> bytes | None:
        row = self._db.execute("SELECT value FROM journal_meta WHERE name='anchor'").fetchone()
        return bytes(row[0]) if row is not None and isinstance(row[0], bytes) else None

    def _anchor(self) -> tuple[int, bytes]:
        raw = self._anchor_value()
        if raw is None:
            raise JournalTamperedError(
                f"journal {self.path} has lost its chain anchor (edited); keep the file as "
                f"evidence and run 'sscard queue verify'")
        return int.from_bytes(raw[:8], "big"), raw[8:40]

    def anchor(self) -> tuple[int, bytes, bool]:
        """The chain anchor (last pruned sequence and hash) and whether its MAC holds.

        A deleted anchor reads as the genesis, not valid: verification still walks the
        records from sequence 1 and reports the anchor as edited.
        """
        with self._lock:
            return self._parse_anchor(self._anchor_value())

    def _parse_anchor(self, raw: bytes | None) -> tuple[int, bytes, bool]:
        if raw is None:
            return 0, genesis_hash(self._keys, self.terminal_id), False
        seq, hash_ = int.from_bytes(raw[:8], "big"), raw[8:40]
        return seq, hash_, raw[40:] == anchor_mac(self._keys, seq, hash_)

    @contextlib.contextmanager
    def chain_snapshot(self) -> Iterator[tuple[tuple[int, bytes, bool],
                                               Iterator[tuple[Any, ...]]]]:
        """The anchor (as :meth:`anchor`) and every stored row, as of one moment.

        Read in one transaction on a connection of its own, so that acknowledgements and
        pruning committed meanwhile (by this process or another) are not half seen: read
        in pieces, a prune between two pieces looks like deleted records. The journal's
        own connection stays open, so closing this one never checkpoints.
        """
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from exc
        try:
            conn.execute("PRAGMA query_only=ON")
            conn.execute("BEGIN")
            row = conn.execute("SELECT value FROM journal_meta WHERE name='anchor'").fetchone()
            raw = bytes(row[0]) if row is not None and isinstance(row[0], bytes) else None
            yield self._parse_anchor(raw), iter(conn.execute(_SELECT_ALL))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from exc
        finally:
            conn.close()

    def enqueue(self, kind: str, payload: Mapping[str, Any],
                personal: Mapping[str, Any] | None = None) -> JournalRecord:
        """Record one transaction durably; when this returns it survives a crash.

        ``payload`` is stored in clear (no personal data in it); ``personal`` is sealed.
        Raises :class:`JournalFullError` when a limit is reached and the profile refuses,
        :class:`JournalStorageError` on a full disk or read-only file system.
        """
        if self._limited:
            self._enforce_limits()
        # Everything below runs right after the previous commit's fsync, with the CPU
        # caches cold, where each step costs several times its warm price: keep it lean
        # (docs/offline-journal.md).
        # A plain dict (the usual case) goes straight to the C encoder: no Python frame.
        payload_json = ("".join(_C_JSON(payload, 0)) if type(payload) is dict and _C_JSON
                        else _canonical_json(payload))
        entropy = os.urandom(_ENTROPY_PER_RECORD)   # the id's random bits and the nonce
        now = time.time_ns()
        record_id = self._ids.new_text(entropy[:ID_ENTROPY_BYTES], now)
        record_id_b = record_id.encode()
        if personal:
            nonce = entropy[ID_ENTROPY_BYTES:]      # fresh for every record, never reused
            clear = ("".join(_C_JSON(personal, 0)) if type(personal) is dict and _C_JSON
                     else _canonical_json(personal)).encode()
            sealed: bytes | None = nonce + self._seal(nonce, clear, record_id_b)
        else:
            sealed = None
        seconds, rest = divmod(now, 1_000_000_000)
        cached_second, prefix = self._wall_second   # one tuple: safe between threads
        if seconds != cached_second:   # the formatted second is reused within it
            prefix = _utc_iso(seconds * 1_000_000_000)[:-5]
            self._wall_second = (seconds, prefix)
        wall, mono = prefix + _MILLIS[rest // 1_000_000], time.monotonic_ns()
        with self._lock:
            for _attempt in range(3):
                if self._cached_head is None:
                    self._cached_head = self._read_head()
                head_seq, head_hash = self._cached_head
                seq = head_seq + 1
                hash_ = _chain_link(self._keys, head_hash, seq, record_id_b,
                                    self._terminal_framed, wall, mono, self._boot_framed, kind,
                                    payload_json, sealed)
                try:
                    # One statement in autocommit mode: exactly one SQLite transaction.
                    # The head is cached; if another writer moved it, the sequence number
                    # collides with the primary key and we re-read and re-link.
                    self._db.execute(
                        _INSERT, (seq, record_id, self.terminal_id, wall, mono, self._boot_id,
                                  kind, payload_json, sealed, head_hash, hash_))
                except sqlite3.IntegrityError:
                    self._cached_head = None
                    continue
                except sqlite3.Error as exc:
                    self._cached_head = None
                    raise storage_error(self.path, exc) from exc
                break
            else:
                raise JournalError(f"journal {self.path}: another process keeps writing to it; "
                                   f"only one daemon may own a journal")
            self._cached_head = (seq, hash_)
            self._added_since_status += 1
        # tuple.__new__ builds the named tuple without its Python-level __new__ frame
        # (which is also what fills in the defaults: here the three unacknowledged Nones).
        return _new_tuple(JournalRecord, (seq, record_id, self.terminal_id, wall, mono,
                                          self._boot_id, kind, dict(payload),
                                          sealed is not None, head_hash, hash_,
                                          None, None, None))

    def _enforce_limits(self) -> None:
        limits = self.limits
        now = time.monotonic()
        status = self._status
        if status is None or now - self._status_at >= _LIMIT_REFRESH_S:
            status = self.status()
        elif self._added_since_status:
            # Between refreshes only the count moves (by our own enqueues).
            status = JournalStatus(status.queued + self._added_since_status,
                                   status.oldest_queued_age_s, status.disk_bytes,
                                   status.head_seq + self._added_since_status, frozenset())
            status = JournalStatus(status.queued, status.oldest_queued_age_s,
                                   status.disk_bytes, status.head_seq, self._alarms_for(status))
            self._note_alarms(status)
        alarms = status.alarms
        if alarms and limits.when_full is FullBehaviour.REFUSE:
            names = ", ".join(sorted(a.value for a in alarms))
            raise JournalFullError(
                f"journal {self.path} is full ({names} limit reached, {status.queued} queued); "
                f"new offline transactions are refused until the forwarder catches up")

    def _note_alarms(self, status: JournalStatus) -> None:
        """Tell ``on_alarm`` and the log when the set of raised alarms changes.

        An edge, not a level: a validator in a long outage would otherwise log a warning
        and raise an alert for every passenger. An empty set tells that all cleared.
        """
        with self._lock:
            if status.alarms == self._raised:
                return
            self._raised = status.alarms
        if status.alarms:
            names = ", ".join(sorted(a.value for a in status.alarms))
            then = ("refusing new offline transactions"
                    if self.limits.when_full is FullBehaviour.REFUSE else "still accepting")
            _log.warning("journal %s over its %s limit (%d queued); %s",
                         self.path, names, status.queued, then)
        else:
            _log.info("journal %s back within its limits (%d queued)", self.path, status.queued)
        if self._on_alarm is not None:
            try:
                self._on_alarm(status.alarms, status)
            except Exception:  # a listener's bug must not cost the transaction being recorded
                _log.exception("journal %s: alarm listener failed", self.path)

    def _alarms_for(self, status: JournalStatus) -> frozenset[Alarm]:
        limits = self.limits
        alarms = set()
        if limits.max_records is not None and status.queued >= limits.max_records:
            alarms.add(Alarm.COUNT)
        if (limits.max_age_s is not None and status.oldest_queued_age_s is not None
                and status.oldest_queued_age_s >= limits.max_age_s):
            alarms.add(Alarm.AGE)
        if limits.max_disk_bytes is not None and status.disk_bytes >= limits.max_disk_bytes:
            alarms.add(Alarm.DISK)
        return frozenset(alarms)

    # -- reading -------------------------------------------------------------------------

    def holds_transaction(self, transaction_id: str, *, among_last: int = 10_000) -> bool:
        """Whether one of the newest ``among_last`` records carries ``transaction_id``.

        A torn transaction's replay (the process died after journaling a decision and
        before completing it) must not be journaled a second time. Only replays ask, and
        the newest rows are found by their primary key: never on an ordinary tap's path.
        """
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT 1 FROM records WHERE seq > (SELECT coalesce(max(seq), 0) "
                    "FROM records) - ? AND json_extract(payload, '$.transaction_id') = ? "
                    "LIMIT 1", (among_last, transaction_id)).fetchone()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from exc
        return row is not None

    def rejected_count(self) -> int:
        """Records the central refused that are still in the journal (until pruned).

        They are acknowledged, so neither ``queued`` nor the limits count them; a
        technician reports them to finance. A full scan: for ``sscard queue status``,
        never the enqueue path.
        """
        with self._lock:
            try:
                row = self._db.execute("SELECT count(*) FROM records WHERE ack_outcome = ?",
                                       (AckOutcome.REJECTED.value,)).fetchone()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from exc
        return int(row[0])

    def status(self) -> JournalStatus:
        """Queued count, age of the oldest queued record, bytes in use, alarms."""
        with self._lock:
            try:
                queued = int(self._db.execute(
                    "SELECT count(*) FROM records WHERE acked_at IS NULL").fetchone()[0])
                oldest = self._db.execute(
                    "SELECT wall_time FROM records WHERE acked_at IS NULL ORDER BY seq LIMIT 1"
                ).fetchone()
                head_seq, _ = self._head()
                disk = self._bytes_in_use()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from exc
        age = max(0.0, time.time() - _parse_iso(oldest[0])) if oldest else None
        partial = JournalStatus(queued, age, disk, head_seq, frozenset())
        status = JournalStatus(queued, age, disk, head_seq, self._alarms_for(partial))
        self._status, self._status_at = status, time.monotonic()
        self._added_since_status = 0
        self._note_alarms(status)
        return status

    def _bytes_in_use(self) -> int:
        """The bytes of the pages that hold data, as the last commit left them.

        Not the files' sizes: SQLite reuses the pages that pruning frees but never gives
        them back to the file system, so a limit on the sizes, once reached, would stay
        reached (and a refusing profile refuse for good) however empty the queue. The
        files are at most this plus the free pages and the WAL (bounded by checkpoints).
        """
        pages = int(self._db.execute("PRAGMA page_count").fetchone()[0])
        free = int(self._db.execute("PRAGMA freelist_count").fetchone()[0])
        page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        return (pages - free) * page_size

    def _row_to_record(self, row: Sequence[Any]) -> JournalRecord:
        try:
            return JournalRecord(
                seq=int(row[0]), id=row[1], terminal_id=row[2], wall_time=row[3],
                mono_ns=row[4], boot_id=row[5], kind=row[6], payload=json.loads(row[7]),
                has_personal=row[8] is not None, prev_hash=bytes(row[9]),
                hash=bytes(row[10]), acked_at=row[11],
                ack_outcome=AckOutcome(row[12]) if row[12] else None, ack_reason=row[13])
        except (TypeError, ValueError) as exc:
            # Only an edited or damaged row gets here (the journal writes canonical JSON
            # and known outcomes). The message names the row, never what it holds.
            raise JournalTamperedError(
                f"journal {self.path}: record {row[0]} does not read back (edited or "
                f"damaged); keep the file as evidence and run 'sscard queue verify'") from exc

    def raw_rows(self, batch: int = 1000) -> Iterator[tuple[Any, ...]]:
        """Every stored row in sequence order, exactly as on disk (for verification)."""
        after = -1
        while True:
            with self._lock:
                rows = self._db.execute(
                    _SELECT_AFTER, (after, batch)).fetchall()
            if not rows:
                return
            yield from rows
            after = int(rows[-1][0])

    def records(self) -> Iterator[JournalRecord]:
        """Every record still in the journal, in sequence order."""
        for row in self.raw_rows():
            yield self._row_to_record(row)

    def personal(self, record: JournalRecord) -> dict[str, Any]:
        """Decrypt one record's personal fields (raises JournalKeyError if they do not open)."""
        with self._lock:
            row = self._db.execute("SELECT personal FROM records WHERE seq=?",
                                     (record.seq,)).fetchone()
        if row is None or row[0] is None:
            return {}
        opened: dict[str, Any] = json.loads(self._keys.decrypt(bytes(row[0]),
                                                               record.id.encode()))
        return opened

    def pending(self, limit: int) -> list[PendingRecord]:
        """The oldest ``limit`` records not yet acknowledged, in order, personal opened.

        Raises :class:`JournalTamperedError` if a record before them is marked delivered
        by a mark the journal did not make (see :meth:`_check_delivered_below`).
        """
        with self._lock:
            try:
                rows = self._db.execute(_SELECT_PENDING, (limit,)).fetchall()
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from exc
        self._check_delivered_below(int(rows[-1][0]) + 1 if rows else _NO_SEQ)
        out = []
        for row in rows:
            record = self._row_to_record(row)
            personal: dict[str, Any] = {}
            if row[8] is not None:
                personal = json.loads(self._keys.decrypt(bytes(row[8]), record.id.encode()))
            out.append(PendingRecord(record, personal))
        return out

    def _check_delivered_below(self, below: int) -> None:
        """Check the chain of the records before ``below`` before the forwarder relies on
        what it says about them.

        Marking a queued record acknowledged takes no key (only a valid ``ack_mac`` does):
        skipped on such a forged mark, a record would never reach the central, and the
        next prune would delete it. The records up to the first one still queued are
        checked once per journal object (from the chain anchor on); the rest, up to
        ``below``, at every call (a mark may be forged on them later). In slices that
        hold the lock briefly.
        """
        settled = self._delivered_checked   # checked, and marked delivered when checked
        walked: tuple[int, bytes] | None = None
        while True:
            with self._lock:
                try:
                    if walked is None:
                        anchor_seq, anchor_hash, anchor_ok = self._parse_anchor(
                            self._anchor_value())
                        if settled is None or anchor_seq > settled[0]:   # first, or pruned
                            if not anchor_ok:
                                raise JournalTamperedError(
                                    f"journal {self.path}: its chain anchor was edited; "
                                    f"forwarding stops: keep the file as evidence and run "
                                    f"'sscard queue verify'")
                            settled = (anchor_seq, anchor_hash)
                        walked = settled
                    rows = self._db.execute(_SELECT_DELIVERED,
                                            (walked[0], below, _CHECK_SLICE)).fetchall()
                except sqlite3.Error as exc:
                    raise storage_error(self.path, exc) from exc
            for row in rows:
                problem = chain_problem(self._keys, row, walked[0] + 1, walked[1])
                if problem is not None:
                    raise JournalTamperedError(
                        f"journal {self.path}: record {problem[0]} {problem[1]}; forwarding "
                        f"stops: keep the file as evidence and run 'sscard queue verify'")
                walked = (int(row[0]), bytes(row[10]))
                if row[11] is not None and settled is not None and settled[0] + 1 == walked[0]:
                    settled = walked
            self._delivered_checked = settled
            if len(rows) < _CHECK_SLICE:
                return

    @property
    def keys(self) -> JournalKeys:
        return self._keys

    # -- acknowledging and pruning -------------------------------------------------------

    def acknowledge(self, acks: Sequence[tuple[JournalRecord, AckOutcome, str]]) -> int:
        """Mark records delivered (or rejected) in ONE transaction; returns how many changed.

        Already acknowledged records are left as they were (a retried upload is idempotent).
        """
        if not acks:
            return 0
        acked_at = _utc_iso(time.time_ns())
        changed = 0
        with self._write() as conn:
            for record, outcome, reason in acks:
                row = conn.execute(
                    "SELECT hash FROM records WHERE seq=? AND id=? AND acked_at IS NULL",
                    (record.seq, record.id)).fetchone()
                if row is None:
                    continue
                mac = ack_mac(self._keys, bytes(row[0]), outcome.value, reason, acked_at)
                conn.execute(
                    "UPDATE records SET acked_at=?, ack_outcome=?, ack_reason=?, "
                    "ack_mac=? WHERE seq=?",
                    (acked_at, outcome.value, reason, mac, record.seq))
                changed += 1
        return changed

    def prune(self, retention_s: float, limit: int = 5000) -> int:
        """Delete acknowledged records older than ``retention_s``, oldest first.

        Only a contiguous prefix goes (the chain anchor moves to its last record in the
        same transaction), so verification still covers everything that remains. At most
        ``limit`` records per call: enqueues wait while it runs (it checks the chain of
        what it deletes); call it again while it returns ``limit``.
        """
        cutoff = _utc_iso(time.time_ns() - int(retention_s * 1e9))
        removed = 0
        with self._write() as conn:
            boundary = conn.execute(
                "SELECT min(seq) FROM records WHERE acked_at IS NULL OR acked_at > ?",
                (cutoff,)).fetchone()[0]
            if boundary is None:
                boundary = conn.execute(
                    "SELECT coalesce(max(seq), 0) + 1 FROM records").fetchone()[0]
            boundary = min(int(boundary), self._anchor()[0] + 1 + limit)
            last = conn.execute(
                "SELECT seq, hash FROM records WHERE seq < ? ORDER BY seq DESC LIMIT 1",
                (boundary,)).fetchone()
            if last is not None:
                self._check_prunable(conn, int(last[0]))
                removed = conn.execute("DELETE FROM records WHERE seq <= ?",
                                       (last[0],)).rowcount
                seq, hash_ = int(last[0]), bytes(last[1])
                conn.execute(
                    "UPDATE journal_meta SET value=? WHERE name='anchor'",
                    (seq.to_bytes(8, "big") + hash_ + anchor_mac(self._keys, seq, hash_),))
        return removed

    def _check_prunable(self, conn: sqlite3.Connection, last_seq: int) -> None:
        """Refuse to prune through anything ``sscard queue verify`` would report.

        Pruning re-MACs the anchor past what it deletes: without this check it would
        launder a forged acknowledgement (a queued record marked delivered, so never
        uploaded, then deleted), a deleted or edited record or an edited anchor into a
        chain that verifies.
        """
        anchor_seq, expected_prev, anchor_ok = self.anchor()
        if not anchor_ok:
            raise JournalTamperedError(
                f"journal {self.path}: its chain anchor was edited; nothing was pruned: keep "
                f"the file as evidence and run 'sscard queue verify'")
        expected_seq = anchor_seq + 1
        rows = conn.execute(_SELECT_AFTER, (anchor_seq, last_seq - anchor_seq))
        for row in rows:
            problem = chain_problem(self._keys, row, expected_seq, expected_prev)
            if problem is not None:
                raise JournalTamperedError(
                    f"journal {self.path}: record {problem[0]} {problem[1]}; nothing was "
                    f"pruned: keep the file as evidence and run 'sscard queue verify'")
            expected_seq, expected_prev = int(row[0]) + 1, bytes(row[10])

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the journal's lock; SQLite failures become the
        storage error a technician can act on, and the cached status is dropped."""
        with self._lock:
            try:
                with write_transaction(self._db) as conn:
                    yield conn
            except sqlite3.Error as exc:
                raise storage_error(self.path, exc) from exc
            self._status = None
