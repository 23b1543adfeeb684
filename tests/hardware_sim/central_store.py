"""SQLite state of the simulated central system.

One file (WAL, so admin commands in another process can change a card while the server
answers), one connection per thread. The schema holds what the terminal protocol talks
about: holders and their cards (status with since/until, issue/expiry, replacement
pending, e-code void), applications per card, entitlements per holder, terminals (secret
and whether their profile may see holder identity), uploaded transactions keyed by
idempotency key, the denylist change log, the e-code signer keys and the central's own
Ed25519 document-signing key.

Everything here is synthetic: made-up names, ID numbers with valid check digits that
belong to nobody, card numbers with valid check characters.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sscard_terminal.cards.ssse import join_name
from sscard_terminal.central.models import Application, CardStatus, Entitlement, card_ref
from sscard_terminal.central.signed import public_key_text
from sscard_terminal.sqlite_transaction import write_transaction

__all__ = [
    "DEMO_CARDS",
    "DEMO_TERMINALS",
    "CardRow",
    "CentralStore",
    "DemoCard",
    "VirtualCardHolder",
    "card_number_check",
    "id_number_check",
    "virtual_cards",
]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS holders (
    holder_id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    id_number TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS cards (
    card_number TEXT PRIMARY KEY,
    identification_code TEXT NOT NULL UNIQUE,
    card_ref TEXT NOT NULL UNIQUE,
    region TEXT NOT NULL,
    holder_id INTEGER NOT NULL REFERENCES holders(holder_id),
    status TEXT NOT NULL,
    reason TEXT NOT NULL,
    since TEXT NOT NULL,
    until TEXT,
    issued_on TEXT NOT NULL,
    expires_on TEXT NOT NULL,
    replacement_pending INTEGER NOT NULL DEFAULT 0,
    ecode_void INTEGER NOT NULL DEFAULT 0,
    successor TEXT
);
CREATE TABLE IF NOT EXISTS card_applications (
    card_number TEXT NOT NULL REFERENCES cards(card_number),
    application TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    PRIMARY KEY (card_number, application)
);
CREATE TABLE IF NOT EXISTS holder_entitlements (
    holder_id INTEGER NOT NULL REFERENCES holders(holder_id),
    entitlement TEXT NOT NULL,
    PRIMARY KEY (holder_id, entitlement)
);
CREATE TABLE IF NOT EXISTS terminals (
    terminal_id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    profile TEXT NOT NULL,
    identity_entitled INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS transactions (
    idempotency_key TEXT PRIMARY KEY,
    terminal_id TEXT NOT NULL,
    sequence INTEGER NOT NULL,
    kind TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS denylist_changes (
    version INTEGER PRIMARY KEY AUTOINCREMENT,
    card_ref TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('add', 'remove')),
    status TEXT,
    until TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS denylist_bulk (
    key BLOB PRIMARY KEY,
    rec BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS signer_keys (
    kid TEXT PRIMARY KEY,
    alg TEXT NOT NULL,
    private_pem BLOB NOT NULL,
    public_der BLOB NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0
);
"""


def card_number_check(body: str) -> str:
    """Check character of an 8-character card number body (sscard-card.md, EF05 tag 07)."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c, 36) * w for c, w in zip(body, weights, strict=True))
    r = 11 - total % 11
    return {10: "X", 11: "0"}.get(r, str(r))


def id_number_check(body: str) -> str:
    """Check digit of a 17-digit resident ID number body (GB 11643)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]


@dataclass(frozen=True)
class DemoCard:
    """A seeded holder and card; the tests refer to them by ``key``."""

    key: str
    name: str
    id_number: str
    region: str
    card_number: str
    identification_code: str
    status: CardStatus
    entitlements: tuple[Entitlement, ...]
    apps_off: tuple[Application, ...]
    issued_years_ago: float


def _demo(key: str, index: int, name: str, region: str, birth: str, status: CardStatus,
          entitlements: tuple[Entitlement, ...] = (), apps_off: tuple[Application, ...] = (),
          issued_years_ago: float = 2.0) -> DemoCard:
    id_body = f"{region}{birth}{index:03d}"
    card_body = f"D{index:07d}"
    issuer = hashlib.sha256(f"sscard-demo:{key}".encode()).hexdigest()[:16].upper()
    return DemoCard(
        key=key, name=name, id_number=id_body + id_number_check(id_body), region=region,
        card_number=card_body + card_number_check(card_body),
        identification_code=f"{region}D156000005{issuer}", status=status,
        entitlements=entitlements, apps_off=apps_off, issued_years_ago=issued_years_ago,
    )


DEMO_CARDS: dict[str, DemoCard] = {c.key: c for c in (
    _demo("normal", 1, "张三丰", "330302", "19580312", CardStatus.NORMAL, (Entitlement.SENIOR,)),
    _demo("disabled", 2, "李四海", "330302", "19800101", CardStatus.NORMAL,
          (Entitlement.DISABLED, Entitlement.VETERAN), (Application.LIBRARY,)),
    _demo("expiring", 3, "王五岳", "460100", "19900707", CardStatus.NORMAL,
          issued_years_ago=9.9),
    _demo("expired", 4, "赵六合", "460100", "19700202", CardStatus.NORMAL,
          issued_years_ago=10.2),
    _demo("temporary_loss", 5, "钱七星", "420100", "19851111", CardStatus.TEMPORARY_LOSS),
    _demo("formal_loss", 6, "孙八方", "420100", "19920303", CardStatus.FORMAL_LOSS),
    _demo("suspended", 7, "周九州", "639900", "19750505", CardStatus.SUSPENDED),
    _demo("cancelled", 8, "吴十全", "339900", "19400404", CardStatus.CANCELLED),
    _demo("spare", 9, "郑一鸣", "330302", "20000808", CardStatus.NORMAL, (Entitlement.TEACHER,)),
    _demo("spare2", 10, "冯二可", "330302", "20010909", CardStatus.NORMAL),
)}

DEMO_TERMINALS: dict[str, tuple[str, bool]] = {
    "T-BUS-0001": ("bus-validator", False),
    "T-HIS-0001": ("hospital-his", True),
}
"""terminal id -> (profile, entitled to holder identity)."""


@dataclass(frozen=True)
class VirtualCardHolder:
    """A holder of task A's virtual cards (``data/*.json``), so taps and the central agree."""

    key: str
    name: str
    id_number: str
    region: str
    card_number: str
    identification_code: str
    issued_on: dt.date
    expires_on: dt.date


def _tag(records: list[list[str]], tag: str) -> bytes:
    return next((bytes.fromhex(v) for t, v in records if t.upper() == tag), b"")


def virtual_cards(data_dir: Path | None = None) -> list[VirtualCardHolder]:
    """Every social security virtual card in ``data/`` (bank-only cards skipped)."""
    folder = data_dir or Path(__file__).parent / "data"
    found = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not data.get("ssse"):
                continue
            ef05, ef06 = data["ef05"], data["ef06"]
            idcode = _tag(ef05, "01").hex().upper()
            found.append(VirtualCardHolder(
                key=path.stem,
                name=join_name(_tag(ef06, "09"), _tag(ef06, "4E")),
                id_number=_tag(ef06, "08").decode("ascii").strip().upper(),
                region=idcode[:6], card_number=_tag(ef05, "07").decode("ascii").strip(),
                identification_code=idcode,
                issued_on=dt.datetime.strptime(_tag(ef05, "05").hex(), "%Y%m%d").date(),
                expires_on=dt.datetime.strptime(_tag(ef05, "06").hex(), "%Y%m%d").date()))
        except (KeyError, ValueError, TypeError):
            continue  # a card file of another shape: not a central record
    return found


@dataclass(frozen=True)
class CardRow:
    card_number: str
    identification_code: str
    card_ref: str
    region: str
    holder_id: int
    status: CardStatus
    reason: str
    since: str
    until: str | None
    issued_on: str
    expires_on: str
    replacement_pending: bool
    ecode_void: bool
    successor: str | None


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


class CentralStore:
    """The simulator's database. Open with :meth:`open`; safe to use from many threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    @classmethod
    def open(cls, path: str | Path, *, today: dt.date | None = None) -> CentralStore:
        """Open (creating, migrating and seeding on first use) the database at ``path``."""
        store = cls(Path(path))
        store.conn.executescript(_SCHEMA)
        if store._meta("schema_version") is None:
            store.seed(today or dt.date.today())
        return store

    # --- plumbing -----------------------------------------------------------------------

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextlib.contextmanager
    def atomic(self) -> Iterator[sqlite3.Connection]:
        """One explicit write transaction (BEGIN IMMEDIATE ... COMMIT / ROLLBACK)."""
        with write_transaction(self.conn) as conn:
            yield conn

    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    # --- seeding ------------------------------------------------------------------------

    def seed(self, today: dt.date) -> None:
        """Demo holders, terminals, signer keys and the central's key, in one transaction."""
        central_key = Ed25519PrivateKey.generate()
        with self.atomic() as conn:
            if self._meta("schema_version") is not None:
                return  # another process seeded it first
            for card in DEMO_CARDS.values():
                self._insert_demo(conn, card, today)
            for virtual in virtual_cards():
                self._insert_virtual(conn, virtual, today)
            for terminal_id, (profile, entitled) in DEMO_TERMINALS.items():
                conn.execute("INSERT INTO terminals VALUES (?, ?, ?, ?)",
                             (terminal_id, secrets.token_hex(32), profile, int(entitled)))
            self._insert_signer(conn, "sim-es256-1", "ES256", ec.generate_private_key(
                ec.SECP256R1()), today)
            self._insert_signer(conn, "sim-ed25519-1", "EdDSA", Ed25519PrivateKey.generate(),
                                today)
            raw = central_key.private_bytes(serialization.Encoding.Raw,
                                            serialization.PrivateFormat.Raw,
                                            serialization.NoEncryption())
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("central_private_key", raw.hex()),
                ("admin_token", secrets.token_hex(16)),
                ("schema_version", str(SCHEMA_VERSION)),
            ])

    def _insert_demo(self, conn: sqlite3.Connection, card: DemoCard, today: dt.date) -> None:
        cur = conn.execute("INSERT INTO holders (name, id_number) VALUES (?, ?)",
                           (card.name, card.id_number))
        holder_id = int(cur.lastrowid or 0)
        issued = today - dt.timedelta(days=round(card.issued_years_ago * 365.25))
        # A 15-day temporary loss reported now: it lapses at that instant 15 days on.
        cst = dt.timezone(dt.timedelta(hours=8), "CST")
        now = dt.datetime.now().astimezone()
        reported = now + dt.timedelta(days=(today - now.date()).days)
        until = (reported + dt.timedelta(days=15)).astimezone(cst).isoformat(
            timespec="seconds") if (
            card.status is CardStatus.TEMPORARY_LOSS) else None
        reason = "ok" if card.status is CardStatus.NORMAL else card.status.value
        self.insert_card(conn, holder_id=holder_id, card_number=card.card_number,
                         identification_code=card.identification_code, region=card.region,
                         status=card.status, reason=reason, since=issued.isoformat()
                         if card.status is CardStatus.NORMAL else today.isoformat(),
                         until=until, issued_on=issued,
                         apps_off=card.apps_off)
        if card.status is CardStatus.CANCELLED:
            conn.execute("UPDATE cards SET ecode_void = 1 WHERE card_number = ?",
                         (card.card_number,))
        for ent in card.entitlements:
            conn.execute("INSERT INTO holder_entitlements VALUES (?, ?)", (holder_id, ent.value))
        if not card.status.usable:
            self.log_denylist(conn, card_ref(bytes.fromhex(card.identification_code)), "add",
                              card.status, until, today)

    def _insert_virtual(self, conn: sqlite3.Connection, card: VirtualCardHolder,
                        today: dt.date) -> None:
        cur = conn.execute("INSERT INTO holders (name, id_number) VALUES (?, ?)",
                           (card.name, card.id_number))
        self.insert_card(conn, holder_id=int(cur.lastrowid or 0), card_number=card.card_number,
                         identification_code=card.identification_code, region=card.region,
                         status=CardStatus.NORMAL, reason="ok", since=card.issued_on.isoformat(),
                         until=None, issued_on=card.issued_on, expires_on=card.expires_on)

    def insert_card(self, conn: sqlite3.Connection, *, holder_id: int, card_number: str,
                    identification_code: str, region: str, status: CardStatus, reason: str,
                    since: str, until: str | None, issued_on: dt.date,
                    apps_off: tuple[Application, ...] = (),
                    expires_on: dt.date | None = None) -> None:
        """A card valid 10 years from ``issued_on`` (or until ``expires_on``), every
        application on but ``apps_off``."""
        conn.execute(
            "INSERT INTO cards (card_number, identification_code, card_ref, region, holder_id,"
            " status, reason, since, until, issued_on, expires_on)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (card_number, identification_code, card_ref(bytes.fromhex(identification_code)),
             region, holder_id, status.value, reason, since, until, issued_on.isoformat(),
             (expires_on or _add_years(issued_on, 10)).isoformat()))
        conn.executemany("INSERT INTO card_applications VALUES (?, ?, ?)", [
            (card_number, app.value, int(app not in apps_off)) for app in Application])

    def _insert_signer(self, conn: sqlite3.Connection, kid: str, alg: str,
                       key: ec.EllipticCurvePrivateKey | Ed25519PrivateKey,
                       today: dt.date) -> None:
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        der = key.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.SubjectPublicKeyInfo)
        conn.execute("INSERT INTO signer_keys VALUES (?, ?, ?, ?, ?, ?, 0)",
                     (kid, alg, pem, der, (today - dt.timedelta(days=1)).isoformat(),
                      _add_years(today, 2).isoformat()))

    @staticmethod
    def log_denylist(conn: sqlite3.Connection, ref: str, action: str,
                     status: CardStatus | None, until: str | None, today: dt.date) -> int:
        """Append one denylist change; returns its version."""
        cur = conn.execute(
            "INSERT INTO denylist_changes (card_ref, action, status, until, at)"
            " VALUES (?, ?, ?, ?, ?)",
            (ref, action, None if status is None else status.value, until, today.isoformat()))
        return int(cur.lastrowid or 0)

    # --- reads --------------------------------------------------------------------------

    def set_home_regions(self, prefixes: list[str]) -> None:
        """Make this central a province's own: it knows only cards whose region starts
        with one of ``prefixes`` (empty: every card, the default). A card of another
        province is then ``unknown_card`` here, as it is at a real provincial central
        (Hainan §3 全国通用: its own province's system knows it)."""
        with self.atomic() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('home_regions', ?)",
                         (",".join(prefixes),))

    def home_regions(self) -> tuple[str, ...]:
        text = self._meta("home_regions") or ""
        return tuple(p for p in text.split(",") if p)

    def knows_region(self, region: str) -> bool:
        home = self.home_regions()
        return not home or any(region.startswith(prefix) for prefix in home)

    def secret_for(self, terminal_id: str) -> str | None:
        row = self.conn.execute("SELECT secret FROM terminals WHERE terminal_id = ?",
                                (terminal_id,)).fetchone()
        return None if row is None else str(row[0])

    def terminal(self, terminal_id: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT terminal_id, secret, profile, identity_entitled FROM terminals"
            " WHERE terminal_id = ?", (terminal_id,)).fetchone()
        if row is None:
            return None
        return {"terminal_id": row[0], "secret": row[1], "profile": row[2],
                "identity_entitled": bool(row[3])}

    def _card(self, where: str, value: str) -> CardRow | None:
        row = self.conn.execute(
            "SELECT card_number, identification_code, card_ref, region, holder_id, status,"
            " reason, since, until, issued_on, expires_on, replacement_pending, ecode_void,"
            f" successor FROM cards WHERE {where} = ?", (value,)).fetchone()
        if row is None:
            return None
        return CardRow(row[0], row[1], row[2], row[3], row[4], CardStatus(row[5]), row[6],
                       row[7], row[8], row[9], row[10], bool(row[11]), bool(row[12]), row[13])

    def card_by_number(self, card_number: str) -> CardRow | None:
        return self._card("card_number", card_number)

    def card_by_identification_code(self, code: str) -> CardRow | None:
        return self._card("identification_code", code.upper())

    def card_by_ref(self, ref: str) -> CardRow | None:
        return self._card("card_ref", ref)

    def enabled_applications(self, card_number: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT application FROM card_applications WHERE card_number = ? AND enabled = 1"
            " ORDER BY application", (card_number,)).fetchall()
        return [str(r[0]) for r in rows]

    def entitlements(self, holder_id: int) -> list[str]:
        rows = self.conn.execute(
            "SELECT entitlement FROM holder_entitlements WHERE holder_id = ?"
            " ORDER BY entitlement", (holder_id,)).fetchall()
        return [str(r[0]) for r in rows]

    def holder(self, holder_id: int) -> tuple[str, str]:
        row = self.conn.execute("SELECT name, id_number FROM holders WHERE holder_id = ?",
                                (holder_id,)).fetchone()
        return str(row[0]), str(row[1])

    def central_private_key(self) -> Ed25519PrivateKey:
        """The central's document-signing key (denylist, trust list)."""
        return Ed25519PrivateKey.from_private_bytes(
            bytes.fromhex(self._meta("central_private_key") or ""))

    def central_public_key_text(self) -> str:
        """What a terminal pins (base64url raw Ed25519)."""
        return public_key_text(self.central_private_key().public_key())

    def admin_token(self) -> str:
        return self._meta("admin_token") or ""

    def add_denylist_bulk(self, records: Iterable[bytes], today: dt.date) -> int:
        """Load synthetic denylist entries at provincial scale, as 20-byte records
        (docs/denylist-format.md), without a card row each: the bench's ten million.

        One change is logged to move the version on, and every terminal behind it gets
        a snapshot (a delta cannot carry a bulk load). Returns the new version."""
        with self.atomic() as conn:
            for piece in records:
                if len(piece) % 20:
                    raise ValueError("bulk denylist records are 20 bytes each")
                conn.executemany("INSERT OR REPLACE INTO denylist_bulk VALUES (?, ?)",
                                 ((piece[i:i + 15], piece[i + 15:i + 20])
                                  for i in range(0, len(piece), 20)))
            version = self.log_denylist(conn, "bulk-load", "remove", None, None, today)
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('denylist_bulk_version', ?)",
                         (str(version),))
        return version

    def denylist_bulk_version(self) -> int:
        """The version of the last bulk load (0: none); terminals behind it get snapshots."""
        return int(self._meta("denylist_bulk_version") or 0)

    def denylist_bulk(self) -> Iterator[tuple[bytes, bytes]]:
        """The bulk entries as (key, status and until), in key order."""
        for key, rec in self.conn.execute("SELECT key, rec FROM denylist_bulk ORDER BY key"):
            yield bytes(key), bytes(rec)

    def denylist_chunk_records(self) -> int:
        """Records per chunk of a chunked denylist snapshot (16,384 unless set)."""
        return int(self._meta("denylist_chunk_records") or 16384)

    def set_denylist_chunk_records(self, records: int) -> None:
        """Smaller chunks, so that a test's small list still comes in several."""
        if records <= 0:
            raise ValueError("a chunk holds at least one record")
        with self.atomic() as conn:
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('denylist_chunk_records', ?)",
                         (str(records),))

    def signer_keys(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT kid, alg, public_der, not_before, not_after, revoked FROM signer_keys"
            " ORDER BY kid").fetchall()
        return [{"kid": r[0], "alg": r[1], "public_der": bytes(r[2]), "not_before": r[3],
                 "not_after": r[4], "revoked": bool(r[5])} for r in rows]

    def signer_private_key(self, kid: str) -> ec.EllipticCurvePrivateKey | Ed25519PrivateKey:
        """The e-code signer's private key (for the simulator's e-code issuing, task D2)."""
        row = self.conn.execute("SELECT private_pem FROM signer_keys WHERE kid = ?",
                                (kid,)).fetchone()
        if row is None:
            raise KeyError(f"no signer key {kid!r}")
        key = serialization.load_pem_private_key(bytes(row[0]), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | Ed25519PrivateKey):
            raise TypeError(f"signer key {kid!r} has an unexpected type")
        return key

    def revoke_signer(self, kid: str) -> None:
        with self.atomic() as conn:
            conn.execute("UPDATE signer_keys SET revoked = 1 WHERE kid = ?", (kid,))

    def transaction_count(self, terminal_id: str | None = None) -> int:
        if terminal_id is None:
            return int(self.conn.execute("SELECT count(*) FROM transactions").fetchone()[0])
        return int(self.conn.execute("SELECT count(*) FROM transactions WHERE terminal_id = ?",
                                     (terminal_id,)).fetchone()[0])
