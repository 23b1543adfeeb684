"""The journal on real SQLite files: records, chain, keys, bad input, limits, storage errors."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sscard_terminal.errors import (
    JournalCorruptError,
    JournalError,
    JournalForeignFileError,
    JournalFullError,
    JournalKeyError,
    JournalNewerSchemaError,
    JournalStorageError,
    JournalTamperedError,
)
from sscard_terminal.offline_queue import (
    AckOutcome,
    Alarm,
    ChainProblem,
    FullBehaviour,
    Journal,
    JournalKeys,
    JournalLimits,
    Uuid7Generator,
    VerifyReport,
    load_credential,
    load_key_file,
    verify_journal,
)
from sscard_terminal.offline_queue.journal import _canonical_json, record_hash
from sscard_terminal.profiles import load_profile

KEY = bytes(range(32))
PERSON = {"name": "张三丰", "id_number": "330302199001011234", "card_number": "A12345678"}


def _open(path: Path, **kw: object) -> Journal:
    return Journal.open(path, terminal_id="BUS-0042", keys=KEY, **kw)  # type: ignore[arg-type]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _filled(tmp_path: Path, count: int = 5) -> Path:
    path = tmp_path / "journal.db"
    with _open(path) as journal:
        for i in range(count):
            journal.enqueue("card_tap", {"fare_cents": 200 + i}, PERSON)
    return path


def test_uuid7_is_version_7_time_ordered_and_strictly_increasing() -> None:
    ids = [Uuid7Generator(clock_ms=lambda: 1_700_000_000_000).new() for _ in range(3)]
    generator = Uuid7Generator(clock_ms=lambda: 1_700_000_000_000)
    same_ms = [generator.new() for _ in range(5000)]   # overflows the 12-bit counter
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids + same_ms)
    assert same_ms == sorted(same_ms) and len(set(same_ms)) == len(same_ms)
    assert same_ms[0].int >> 80 == 1_700_000_000_000


def test_uuid7_text_form_is_the_canonical_uuid_string() -> None:
    generator = Uuid7Generator(clock_ms=lambda: 1_700_000_000_000)
    texts = [generator.new_text() for _ in range(100)]
    for text in texts:
        parsed = uuid.UUID(text)
        assert str(parsed) == text and parsed.version == 7 and parsed.variant == uuid.RFC_4122
        assert parsed.int >> 80 == 1_700_000_000_000
    assert texts == sorted(texts) and len(set(texts)) == 100


def test_enqueue_stores_sequence_chain_and_sealed_personal_fields(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with _open(path) as journal:
        first = journal.enqueue("card_tap", {"fare_cents": 200}, PERSON)
        second = journal.enqueue("gate_pass", {"gate": 3})
        assert (first.seq, second.seq) == (1, 2)
        assert second.prev_hash == first.hash
        assert uuid.UUID(first.id).version == 7 and first.id < second.id
        assert first.terminal_id == "BUS-0042" and first.wall_time.endswith("Z")
        assert journal.personal(first) == PERSON and journal.personal(second) == {}
        # What enqueue returns (built without the named tuple's own __new__) is exactly
        # what the journal stores and reads back, defaults included.
        assert list(journal.records()) == [first, second]
        assert first.acked_at is None and first.ack_outcome is None and first.ack_reason is None
        assert "张三丰" not in repr(first) and "330302199001011234" not in repr(
            journal.pending(1))
    raw = path.read_bytes() + (tmp_path / "journal.db-wal").read_bytes() if (
        tmp_path / "journal.db-wal").exists() else path.read_bytes()
    for secret in PERSON.values():
        assert secret.encode() not in raw
    assert os.stat(path).st_mode & 0o077 == 0


def test_the_raw_encryptor_of_the_hot_path_seals_as_encrypt_does() -> None:
    keys = JournalKeys.derive(bytes(range(32)), "BUS-0042")
    nonce, clear, bound = bytes(range(12)), b'{"name":"x"}', b"0190f5e2-id"
    sealed = nonce + keys.raw_encrypt(nonce, clear, bound)
    assert sealed == keys.encrypt(clear, bound, nonce)
    assert keys.decrypt(sealed, bound) == clear


def test_chain_link_is_the_mac_of_the_length_prefixed_fields() -> None:
    keys = JournalKeys.derive(bytes(range(32)), "BUS-0042")
    fields = dict(seq=7, record_id="0190f5e2-0000-7000-8000-000000000001",
                  terminal_id="BUS-0042", wall_time="2026-11-23T00:00:00.123Z", mono_ns=-5,
                  boot_id="b" * 36, kind="card_tap", payload='{"fare_cents":200}')
    prev = bytes(32)
    for personal in (b"sealed", None):
        expected = keys.mac(prev, (7).to_bytes(8, "big"), fields["record_id"].encode(),
                            b"BUS-0042", fields["wall_time"].encode(),
                            (-5).to_bytes(8, "big", signed=True), b"b" * 36, b"card_tap",
                            fields["payload"].encode(), personal or b"")
        assert record_hash(keys, prev, personal=personal, **fields) == expected  # type: ignore[arg-type]


def test_uuid7_takes_the_callers_clock_and_random_bits() -> None:
    generator = Uuid7Generator()
    now_ns = 1_763_856_000_123_456_789
    first = uuid.UUID(generator.new_text(bytes(range(1, 11)), now_ns))
    assert first.int >> 80 == now_ns // 1_000_000 and first.version == 7
    # rand_b is the entropy's last 8 bytes under the variant bits: nothing else random.
    assert first.int & ((1 << 62) - 1) == int.from_bytes(bytes(range(3, 11)), "big") & (
        (1 << 62) - 1)
    # The clock stepping back keeps the ids increasing.
    second = uuid.UUID(generator.new_text(bytes(10), now_ns - 5_000_000))
    assert second > first and second.int >> 80 == now_ns // 1_000_000
    with pytest.raises(ValueError, match="10 random bytes"):
        generator.new_text(bytes(9))


def test_chain_mac_is_hmac_sha256_of_the_chain_key() -> None:
    keys = JournalKeys.derive(bytes(range(32)), "BUS-0042")
    for message in (b"", b"x", bytes(range(256)) * 3):
        expected = hmac.new(keys.chain_key, message, hashlib.sha256).digest()
        assert keys.mac_framed(message) == expected
    assert keys.mac(b"a", b"bc") == hmac.new(
        keys.chain_key, b"\0\0\0\x01a\0\0\0\x02bc", hashlib.sha256).digest()


@pytest.mark.parametrize(("payload", "error", "message"), [
    ({"fare": object()}, TypeError, "'object' values are not JSON"),
    ({"fare": b"\x01"}, TypeError, "'bytes' values are not JSON"),
    ({"fare": float("nan")}, ValueError, "not JSON compliant"),
    ({"fare": float("inf")}, ValueError, "not JSON compliant"),
])
def test_enqueue_refuses_a_payload_json_cannot_hold_and_writes_nothing(
        tmp_path: Path, payload: dict[str, object], error: type[Exception],
        message: str) -> None:
    path = _filled(tmp_path, 2)
    with _open(path) as journal:
        with pytest.raises(error, match=message):
            journal.enqueue("card_tap", payload)
        with pytest.raises(error, match=message):
            journal.enqueue("card_tap", {"fare_cents": 1}, {"name": payload["fare"]})
        assert journal.enqueue("card_tap", {"fare_cents": 1}).seq == 3
        assert verify_journal(journal).ok


@pytest.mark.parametrize("value", [
    {}, {"fare_cents": 200}, {"b": 1, "a": [1.5, None, True, "张三丰"], "c": {"z": -1, "y": "\n"}},
    {"name": "张三丰", "id_number": "330302199001011234", "card_number": "D00000013"},
])
def test_canonical_json_is_the_sorted_compact_encoding(value: dict[str, object]) -> None:
    expected = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert _canonical_json(value) == expected


def test_journal_reopens_and_continues_the_chain(tmp_path: Path) -> None:
    path = _filled(tmp_path, 3)
    with _open(path) as journal:
        record = journal.enqueue("card_tap", {"fare_cents": 1}, PERSON)
        assert record.seq == 4
        report = verify_journal(journal)
    assert report.ok and report.checked == 4


def test_holds_transaction_finds_a_recent_transaction_id(tmp_path: Path) -> None:
    with _open(tmp_path / "journal.db") as journal:
        journal.enqueue("card_tap", {"transaction_id": "t-old"}, None)
        for i in range(5):
            journal.enqueue("card_tap", {"transaction_id": f"t-{i}"}, None)
        assert journal.holds_transaction("t-4")
        assert journal.holds_transaction("t-old")
        assert not journal.holds_transaction("t-never")
        assert not journal.holds_transaction("t-old", among_last=5)   # older than the window
        assert journal.holds_transaction("t-0", among_last=5)


def test_acknowledge_is_idempotent_and_prune_moves_the_anchor(tmp_path: Path) -> None:
    path = _filled(tmp_path, 6)
    with _open(path) as journal:
        pending = journal.pending(10)
        ids = [p.record for p in pending]
        assert journal.acknowledge([(ids[0], AckOutcome.ACCEPTED, ""),
                                    (ids[1], AckOutcome.DUPLICATE, ""),
                                    (ids[3], AckOutcome.REJECTED, "bad_field:kind")]) == 3
        assert journal.acknowledge([(ids[0], AckOutcome.ACCEPTED, "")]) == 0
        assert [p.record.seq for p in journal.pending(10)] == [3, 5, 6]
        assert journal.status().queued == 3
        # seq 3 is still queued: only the contiguous acknowledged prefix (1, 2) may go.
        assert journal.prune(retention_s=0) == 2
        assert [r.seq for r in journal.records()] == [3, 4, 5, 6]
        assert verify_journal(journal).ok
        journal.acknowledge([(p.record, AckOutcome.ACCEPTED, "") for p in journal.pending(9)])
        assert journal.prune(retention_s=3600) == 0   # too young
        assert journal.prune(retention_s=0) == 4
        assert list(journal.records()) == []
        after = journal.enqueue("card_tap", {}, None)
        assert after.seq == 7
        assert verify_journal(journal).ok


def test_verify_reports_how_much_it_checked_from_where_to_where(tmp_path: Path) -> None:
    """The report is evidence: how many records, and the first and last sequence seen."""
    path = tmp_path / "empty.db"
    with _open(path) as journal:
        assert verify_journal(journal) == VerifyReport(0, None, None, ())
    path = _filled(tmp_path, 6)
    with _open(path) as journal:
        assert verify_journal(journal) == VerifyReport(6, 1, 6, ())
        journal.acknowledge([(p.record, AckOutcome.ACCEPTED, "") for p in journal.pending(3)])
        assert journal.prune(retention_s=0) == 3
        assert verify_journal(journal) == VerifyReport(3, 4, 6, ())
    _tamper(path, "DELETE FROM records WHERE seq = 5")
    with _open(path) as journal:
        assert verify_journal(journal) == VerifyReport(2, 4, 6, (ChainProblem(5, "missing"),))


def _tamper(path: Path, sql: str, *params: object) -> None:
    conn = sqlite3.connect(path)
    conn.execute(sql, params)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("sql,problem", [
    ("DELETE FROM records WHERE seq = 3", "missing"),
    ("UPDATE records SET payload = '{\"fare_cents\":1}' WHERE seq = 2", "edited"),
    ("UPDATE records SET kind = 'refund' WHERE seq = 4", "edited"),
    ("UPDATE records SET seq = 99 WHERE seq = 2", "edited"),
    ("UPDATE records SET acked_at = '2026-01-01T00:00:00.000Z', ack_outcome = 'accepted' "
     "WHERE seq = 3", "ack-edited"),
    ("DELETE FROM records WHERE seq = 1", "missing"),
])
def test_verify_detects_deleted_edited_and_forged_acks(tmp_path: Path, sql: str,
                                                      problem: str) -> None:
    path = _filled(tmp_path, 5)
    with _open(path) as journal:
        assert verify_journal(journal).ok
    _tamper(path, sql)
    with _open(path) as journal:
        report = verify_journal(journal)
    assert not report.ok
    assert problem in {p.problem for p in report.problems}


def test_verify_detects_reordered_records(tmp_path: Path) -> None:
    path = _filled(tmp_path, 5)
    conn = sqlite3.connect(path)
    # Records 2 and 3 change places: the only way to reorder is to renumber them.
    conn.execute("UPDATE records SET seq = -1 WHERE seq = 2")
    conn.execute("UPDATE records SET seq = 2 WHERE seq = 3")
    conn.execute("UPDATE records SET seq = 3 WHERE seq = -1")
    conn.commit()
    conn.close()
    with _open(path) as journal:
        report = verify_journal(journal)
    assert not report.ok and {p.seq for p in report.problems} >= {2, 3}


def test_verify_detects_an_edited_anchor_hiding_pruned_records(tmp_path: Path) -> None:
    path = _filled(tmp_path, 4)
    _tamper(path, "DELETE FROM records WHERE seq <= 2")
    _tamper(path, "UPDATE journal_meta SET value = ? WHERE name = 'anchor'",
            (2).to_bytes(8, "big") + bytes(64))
    with _open(path) as journal:
        problems = {p.problem for p in verify_journal(journal).problems}
    assert "anchor-edited" in problems


def test_wrong_key_is_refused_and_the_file_untouched(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    before = _digest(path)
    with pytest.raises(JournalKeyError, match=str(path)):
        Journal.open(path, terminal_id="BUS-0042", keys=os.urandom(32))
    with pytest.raises(JournalError, match="belongs to terminal"):
        Journal.open(path, terminal_id="BUS-0043", keys=KEY)
    assert _digest(path) == before


def test_newer_schema_is_refused_and_the_file_untouched(tmp_path: Path) -> None:
    path = _filled(tmp_path)
    _tamper(path, "INSERT INTO schema_versions VALUES (7, '2031-01-01T00:00:00Z')")
    before = _digest(path)
    with pytest.raises(JournalNewerSchemaError, match=r"schema version 7.*upgrade"):
        _open(path)
    assert _digest(path) == before


def test_truncated_file_is_refused_and_the_file_untouched(tmp_path: Path) -> None:
    path = _filled(tmp_path, 300)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])
    before = _digest(path)
    with pytest.raises(JournalCorruptError, match=r"truncated.*restore"):
        _open(path)
    assert _digest(path) == before


@pytest.mark.parametrize("content", [b"this is not a database\n" * 40, b"\x00" * 8192])
def test_foreign_file_is_refused_and_the_file_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(content)
    with pytest.raises(JournalForeignFileError, match=str(path)):
        _open(path)
    assert path.read_bytes() == content


def test_foreign_sqlite_database_is_refused_and_the_file_untouched(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    conn.commit()
    conn.close()
    before = _digest(path)
    with pytest.raises(JournalForeignFileError, match="another application"):
        _open(path)
    assert _digest(path) == before


def test_refuse_profile_refuses_when_full_and_alarm_profile_keeps_accepting(
        tmp_path: Path) -> None:
    raised: list[frozenset[Alarm]] = []
    refuse = JournalLimits(max_records=3, when_full=FullBehaviour.REFUSE)
    with _open(tmp_path / "a.db", limits=refuse,
               on_alarm=lambda alarms, status: raised.append(alarms)) as journal:
        for _ in range(3):
            journal.enqueue("card_tap", {}, None)
        with pytest.raises(JournalFullError, match="count limit"):
            journal.enqueue("card_tap", {}, None)
        assert journal.status().queued == 3 and journal.status().alarms == {Alarm.COUNT}
    alarm = JournalLimits(max_records=2, max_disk_bytes=1, when_full=FullBehaviour.ALARM)
    with _open(tmp_path / "b.db", limits=alarm,
               on_alarm=lambda alarms, status: raised.append(alarms)) as journal:
        for _ in range(4):
            journal.enqueue("card_tap", {}, None)
        assert journal.status().queued == 4
    assert frozenset({Alarm.COUNT, Alarm.DISK}) in raised


def test_alarms_are_raised_once_and_cleared_once_not_on_every_enqueue(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A validator in a long outage at one tap a second: the alarm callback and the
    warning ran on every enqueue while over the limit (log spam on flash, an alert per
    passenger). They now run when the set of alarms changes, and once when it clears."""
    raised: list[frozenset[Alarm]] = []
    alarm = JournalLimits(max_records=2, when_full=FullBehaviour.ALARM)
    with caplog.at_level(logging.WARNING, logger="sscard_terminal.offline_queue"), \
            _open(tmp_path / "j.db", limits=alarm,
                  on_alarm=lambda alarms, status: raised.append(alarms)) as journal:
        for _ in range(30):
            journal.enqueue("card_tap", {}, None)
        assert raised == [frozenset({Alarm.COUNT})]
        assert len([r for r in caplog.records if "over its" in r.getMessage()]) == 1
        journal.acknowledge([(p.record, AckOutcome.ACCEPTED, "") for p in journal.pending(40)])
        assert journal.status().alarms == frozenset()
        assert raised == [frozenset({Alarm.COUNT}), frozenset()]
        for _ in range(3):
            journal.enqueue("card_tap", {}, None)
        assert journal.status().alarms == {Alarm.COUNT}
        assert raised == [frozenset({Alarm.COUNT}), frozenset(), frozenset({Alarm.COUNT})]
    refused: list[frozenset[Alarm]] = []
    refuse = JournalLimits(max_records=1, when_full=FullBehaviour.REFUSE)
    with _open(tmp_path / "r.db", limits=refuse,
               on_alarm=lambda alarms, status: refused.append(alarms)) as journal:
        journal.enqueue("card_tap", {}, None)
        for _ in range(5):   # every refusal is still an error to its caller
            with pytest.raises(JournalFullError):
                journal.enqueue("card_tap", {}, None)
        assert refused == [frozenset({Alarm.COUNT})]


def test_an_alarm_listener_that_fails_loses_no_transaction(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The daemon's alarm callback (an alert over the network, a display) raising came out
    of ``enqueue`` before the record was written: the transaction the passenger was just
    told about was never recorded, at the very moment the journal is filling up."""
    def broken(alarms: frozenset[Alarm], status: object) -> None:
        raise RuntimeError("alert channel down")

    alarm = JournalLimits(max_records=2, when_full=FullBehaviour.ALARM)
    with caplog.at_level(logging.ERROR, logger="sscard_terminal.offline_queue"), \
            _open(tmp_path / "j.db", limits=alarm, on_alarm=broken) as journal:
        for _ in range(4):
            journal.enqueue("card_tap", {}, None)
        assert journal.status().queued == 4
    assert any("alarm listener failed" in r.getMessage() for r in caplog.records)


def test_disk_full_is_a_clear_error_and_the_journal_stays_consistent(tmp_path: Path) -> None:
    path = _filled(tmp_path, 3)
    with _open(path) as journal:
        pages = journal._conn.execute("PRAGMA page_count").fetchone()[0]
        # SQLite reports SQLITE_FULL exactly as for a full file system.
        journal._conn.execute(f"PRAGMA max_page_count={pages}")
        with pytest.raises(JournalStorageError, match="disk full"):
            for _ in range(200):
                journal.enqueue("card_tap", {"pad": "x" * 2000}, PERSON)
        journal._conn.execute("PRAGMA max_page_count=1073741823")
        journal.enqueue("card_tap", {"fare_cents": 1}, PERSON)
        assert verify_journal(journal).ok


def test_read_only_journal_is_a_clear_error(tmp_path: Path) -> None:
    path = _filled(tmp_path, 2)
    with _open(path) as journal:
        journal._conn.execute("PRAGMA query_only=ON")   # what a read-only mount answers
        with pytest.raises(JournalStorageError, match="read-only"):
            journal.enqueue("card_tap", {}, None)
    with _open(path) as journal:
        assert verify_journal(journal).checked == 2


def test_key_file_must_be_private_to_the_daemon_user(tmp_path: Path) -> None:
    key_file = tmp_path / "journal.key"
    key_file.write_text(KEY.hex() + "\n")
    key_file.chmod(0o644)
    with pytest.raises(JournalKeyError, match="chmod 600"):
        load_key_file(key_file)
    key_file.chmod(0o600)
    assert load_key_file(key_file) == KEY
    key_file.write_bytes(b"short")
    with pytest.raises(JournalKeyError, match="not a journal key"):
        load_key_file(key_file)


def test_the_key_check_stored_in_journals_keeps_its_definition() -> None:
    """Journals already written hold this value: a change would call every one of them
    "created with another key"."""
    keys = JournalKeys.derive(bytes(range(32)), "BUS-0042")
    assert keys.key_check() == keys.mac(b"key-check") + hmac.new(
        keys.encryption_key, b"key-check", hashlib.sha256).digest()
    assert keys.key_check() != JournalKeys.derive(bytes(range(32)), "BUS-0043").key_check()


def test_the_two_keys_are_hkdf_sha256_of_the_master_key_salted_with_the_terminal_id() -> None:
    """The derivation is the on-disk format (docs/offline-journal.md): HKDF-SHA256, the
    terminal id as salt, one label per key; two terminals never share a key, and the
    encryption key is never the chain key."""
    master = bytes(range(32))

    def hkdf(salt: bytes, info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(master)

    keys = JournalKeys.derive(master, "BUS-0042")
    assert keys.encryption_key == hkdf(b"BUS-0042",
                                       b"sscard-journal/personal-fields/aes-256-gcm/v1")
    assert keys.chain_key == hkdf(b"BUS-0042", b"sscard-journal/hash-chain/hmac-sha256/v1")
    other = JournalKeys.derive(master, "BUS-0043")
    assert keys.encryption_key != keys.chain_key
    assert other.encryption_key != keys.encryption_key and other.chain_key != keys.chain_key
    with pytest.raises(JournalKeyError) as refused:
        JournalKeys.derive(master[:31], "BUS-0042")
    assert str(refused.value) == "journal master key must be 32 bytes, got 31"


def test_encrypt_draws_a_fresh_nonce_and_refuses_a_wrong_one() -> None:
    keys = JournalKeys.derive(bytes(range(32)), "BUS-0042")
    first, second = keys.encrypt(b"clear", b"id"), keys.encrypt(b"clear", b"id")
    assert first[:12] != second[:12] and len(first) == 12 + len(b"clear") + 16
    assert keys.decrypt(first, b"id") == keys.decrypt(second, b"id") == b"clear"
    for nonce in (bytes(11), bytes(13)):
        with pytest.raises(ValueError) as refused:
            keys.encrypt(b"clear", b"id", nonce)
        assert str(refused.value) == "an AES-GCM nonce here is 12 bytes"
    other = JournalKeys.derive(bytes(range(1, 33)), "BUS-0042")
    for sealed, bound, who in ((first, b"other id", keys), (first, b"id", other)):
        with pytest.raises(JournalKeyError) as refused_key:
            who.decrypt(sealed, bound)
        assert str(refused_key.value) == ("personal fields do not decrypt with this key "
                                          "(wrong key or edited record)")


def test_key_file_refusals_say_exactly_what_is_wrong(tmp_path: Path) -> None:
    key_file = tmp_path / "journal.key"
    key_file.write_text(KEY.hex() + "\n")
    key_file.chmod(0o600)
    link = tmp_path / "link.key"
    link.symlink_to(key_file)                     # a symlink could be swapped under us
    with pytest.raises(JournalKeyError) as refused:
        load_key_file(link)
    assert str(refused.value) == (f"cannot open journal key file {link}: "
                                  "Too many levels of symbolic links")
    folder = tmp_path / "folder"
    folder.mkdir(mode=0o700)
    with pytest.raises(JournalKeyError) as refused:
        load_key_file(folder)
    assert str(refused.value) == f"journal key file {folder} is not a regular file"
    key_file.chmod(0o640)
    with pytest.raises(JournalKeyError) as refused:
        load_key_file(key_file)
    assert str(refused.value) == (f"journal key file {key_file} has mode 0640; "
                                  f"run 'chmod 600 {key_file}'")
    key_file.chmod(0o600)
    if os.geteuid() == 0:                         # only root can give the file away
        os.chown(key_file, 4242, -1)
        with pytest.raises(JournalKeyError) as refused:
            load_key_file(key_file)
        assert str(refused.value) == (
            f"journal key file {key_file} is owned by uid 4242, not by this user (uid 0); "
            "chown it to the daemon's user")
        os.chown(key_file, 0, -1)
    key_file.write_bytes(KEY.hex().encode()[:-2])
    with pytest.raises(JournalKeyError) as refused:
        load_key_file(key_file)
    assert str(refused.value) == (
        f"journal key file {key_file}: not a journal key (want 32 raw bytes or 64 hex "
        "digits); create one with 'head -c32 /dev/urandom > FILE && chmod 600 FILE'")
    missing = tmp_path / "missing.key"
    with pytest.raises(JournalKeyError) as refused:
        load_key_file(missing)
    assert str(refused.value) == (f"cannot open journal key file {missing}: "
                                  "No such file or directory")


def test_key_from_systemd_credential_in_the_process_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "journal-key").write_text(KEY.hex())
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert load_credential("journal-key") == KEY
    with pytest.raises(JournalKeyError) as refused:
        load_credential("absent")
    assert str(refused.value) == (f"cannot read systemd credential {tmp_path / 'absent'}: "
                                  "No such file or directory")
    (tmp_path / "short").write_bytes(b"abc")
    with pytest.raises(JournalKeyError) as refused:
        load_credential("short")
    assert str(refused.value).startswith(f"systemd credential {tmp_path / 'short'}: not a "
                                         "journal key (want 32 raw bytes")


def test_key_from_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "journal-key").write_bytes(KEY)
    assert load_credential("journal-key", {"CREDENTIALS_DIRECTORY": str(tmp_path)}) == KEY
    with pytest.raises(JournalKeyError, match="LoadCredential"):
        load_credential("journal-key", {})


_IN_NAMESPACE = r"""
import sys
from sscard_terminal.errors import JournalStorageError
from sscard_terminal.offline_queue import Journal, verify_journal
path, mode = sys.argv[1], sys.argv[2]
try:
    with Journal.open(path, terminal_id="BUS-0042", keys=bytes(range(32))) as journal:
        for i in range(100000):
            journal.enqueue("card_tap", {"pad": "x" * 3000, "i": i}, {"name": "张三丰"})
except JournalStorageError as exc:
    print("STORAGE", exc)
else:
    print("NO ERROR")
if mode == "full":
    with Journal.open(path, terminal_id="BUS-0042", keys=bytes(range(32))) as journal:
        report = verify_journal(journal)
        print("VERIFIED", report.ok, report.checked)
else:   # what the CLI reads first: a read-only file system, not a corrupt journal
    from sscard_terminal.offline_queue.journal import peek_terminal_id
    try:
        print("PEEK", peek_terminal_id(path))
    except JournalStorageError as exc:
        print("PEEK-STORAGE", exc)
"""


def _in_mount_namespace(tmp_path: Path, mount: str, mode: str) -> str:
    """Run the script above in a private mount namespace with ``mount`` applied to DIR."""
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("needs mount namespaces (unshare -m) for a real read-only or full "
                    f"file system: {probe.stderr.decode().strip()}")
    directory = tmp_path / "fs"
    directory.mkdir(exist_ok=True)
    script = tmp_path / "namespace_script.py"
    script.write_text(_IN_NAMESPACE)
    shell = f"{mount.format(dir=directory)} && exec {sys.executable} {script} " \
            f"{directory / 'journal.db'} {mode}"
    done = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_real_read_only_file_system_is_a_clear_error_and_nothing_changes(
        tmp_path: Path) -> None:
    (tmp_path / "fs").mkdir()
    with _open(tmp_path / "fs" / "journal.db") as journal:
        journal.enqueue("card_tap", {}, PERSON)
    before = _digest(tmp_path / "fs" / "journal.db")
    out = _in_mount_namespace(
        tmp_path, "mount --bind {dir} {dir} && mount -o remount,bind,ro {dir}", "ro")
    assert out.startswith("STORAGE") and "read-only" in out, out
    assert out.splitlines()[-1].startswith("PEEK-STORAGE") and "read-only" in out, out
    assert _digest(tmp_path / "fs" / "journal.db") == before


def test_real_full_file_system_is_a_clear_error_and_the_journal_verifies(
        tmp_path: Path) -> None:
    out = _in_mount_namespace(tmp_path, "mount -t tmpfs -o size=512k tmpfs {dir}", "full")
    assert out.startswith("STORAGE") and "disk full" in out, out
    verified = out.splitlines()[-1].split()
    assert verified[:2] == ["VERIFIED", "True"] and int(verified[2]) > 10, out


def test_limits_follow_the_shipped_bus_validator_profile() -> None:
    settings = load_profile("bus-validator").journal
    limits = JournalLimits.from_profile(
        max_records=settings.max_records, max_age_hours=settings.max_age_hours,
        max_disk_mb=settings.max_disk_mb, when_full=settings.when_full.value)
    assert limits.max_records == settings.max_records
    assert limits.max_age_s == settings.max_age_hours * 3600
    assert limits.when_full is FullBehaviour(settings.when_full.value)


def test_a_closed_journal_raises_journal_error_not_sqlite_errors(tmp_path: Path) -> None:
    journal = _open(tmp_path / "journal.db")
    journal.close()
    with pytest.raises(JournalError, match="is closed"):
        journal.enqueue("card_tap", {}, None)
    with pytest.raises(JournalError, match="is closed"):
        journal.status()


# -- found in review: evidence left by a crash, the disk limit, unreadable records ----------

_CRASH_WRITER = r"""
import os, signal, sqlite3, sys
from sscard_terminal.offline_queue import Journal
path, count, sql = sys.argv[1], int(sys.argv[2]), sys.argv[3]
journal = Journal.open(path, terminal_id="BUS-0042", keys=bytes(range(32)))
for i in range(count):
    journal.enqueue("card_tap", {"fare_cents": i}, {"name": "张三丰"})
if sql:
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute(sql)
os.kill(os.getpid(), signal.SIGKILL)   # no close: no checkpoint, the WAL keeps the records
"""


def _crashed(tmp_path: Path, count: int = 5, sql: str = "") -> Path:
    """A journal whose writer was killed: what it recorded is still only in its WAL."""
    path = tmp_path / "journal.db"
    done = subprocess.run([sys.executable, "-c", _CRASH_WRITER, str(path), str(count), sql],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == -9, done.stderr
    assert Path(f"{path}-wal").stat().st_size > 4096
    return path


@pytest.mark.parametrize("main_file", ["missing", "empty"])
def test_a_wal_without_its_journal_is_refused_and_kept(tmp_path: Path, main_file: str) -> None:
    # The records that enqueue reported durable are in the WAL; a journal created over it
    # would make SQLite drop the WAL and start the chain again at sequence 1.
    path = _crashed(tmp_path)
    wal = Path(f"{path}-wal")
    before = _digest(wal)
    if main_file == "missing":
        path.unlink()
    else:
        path.write_bytes(b"")
    with pytest.raises(JournalCorruptError, match=rf"{wal}.*left untouched"):
        _open(path)
    assert _digest(wal) == before
    assert path.exists() is (main_file == "empty")
    if path.exists():
        assert path.read_bytes() == b""


@pytest.mark.parametrize(("refusal", "sql", "error", "message"), [
    ("wrong key", "", JournalKeyError, "another key"),
    ("other terminal", "", JournalError, "belongs to terminal"),
    ("newer schema", "INSERT INTO schema_versions VALUES (9, '2031-01-01T00:00:00Z')",
     JournalNewerSchemaError, "schema version 9"),
])
def test_a_refused_crashed_journal_keeps_its_file_and_wal_byte_for_byte(
        tmp_path: Path, refusal: str, sql: str, error: type[Exception], message: str) -> None:
    # After a crash the last records live only in the WAL. A refusal must not checkpoint
    # it into the file and delete it (SQLite does that when a writer connection closes).
    path = _crashed(tmp_path, sql=sql)
    wal = Path(f"{path}-wal")
    before = (_digest(path), _digest(wal))   # the -shm is an index SQLite rebuilds: not evidence
    key = os.urandom(32) if refusal == "wrong key" else KEY
    terminal = "BUS-0043" if refusal == "other terminal" else "BUS-0042"
    with pytest.raises(error, match=message):
        Journal.open(path, terminal_id=terminal, keys=key)
    assert (_digest(path), _digest(wal)) == before
    with _open(path) if refusal != "newer schema" else contextlib.nullcontext() as journal:
        if journal is not None:   # and the evidence is still the whole journal
            assert verify_journal(journal).checked == 5


def test_a_crashed_journal_reopens_with_every_record(tmp_path: Path) -> None:
    path = _crashed(tmp_path, count=7)
    with _open(path) as journal:
        assert [r.seq for r in journal.records()] == list(range(1, 8))
        assert journal.enqueue("card_tap", {}, None).seq == 8
        assert verify_journal(journal).ok


def test_a_missing_directory_is_named_not_called_read_only(tmp_path: Path) -> None:
    with pytest.raises(JournalStorageError, match=r"directory .*nowhere does not exist"):
        _open(tmp_path / "nowhere" / "journal.db")
    assert not (tmp_path / "nowhere").exists()


def test_the_disk_limit_clears_once_forwarded_records_are_pruned(tmp_path: Path) -> None:
    # Pruning frees pages that SQLite reuses but never gives back to the file system: a
    # limit on the files' sizes would, once reached, refuse every offline transaction for
    # good, however empty the queue. The limit counts the pages in use.
    refuse = JournalLimits(max_disk_bytes=512 * 1024, when_full=FullBehaviour.REFUSE)
    with _open(tmp_path / "journal.db", limits=refuse, synchronous="NORMAL") as journal:
        with pytest.raises(JournalFullError, match="disk limit"):
            for i in range(200_000):
                journal.enqueue("card_tap", {"pad": "x" * 1000, "i": i}, PERSON)
        while pending := journal.pending(500):
            journal.acknowledge([(p.record, AckOutcome.ACCEPTED, "") for p in pending])
        pruned = 0
        while removed := journal.prune(retention_s=0):
            pruned += removed
        assert pruned > 5000
        status = journal.status()
        assert status.queued == 0 and status.alarms == frozenset(), status
        assert journal.enqueue("card_tap", {"fare_cents": 1}, PERSON).seq == status.head_seq + 1
        assert verify_journal(journal).ok


def test_an_unreadable_record_is_a_journal_error_not_a_crash(tmp_path: Path) -> None:
    path = _filled(tmp_path, 3)
    _tamper(path, "UPDATE records SET payload = '{broken' WHERE seq = 2")
    with _open(path) as journal:
        with pytest.raises(JournalTamperedError, match=r"record 2 .*sscard queue verify"):
            journal.pending(10)
        with pytest.raises(JournalTamperedError, match="record 2"):
            list(journal.records())
        assert [p.problem for p in verify_journal(journal).problems] == ["edited"]


def test_a_deleted_anchor_is_reported_not_a_crash(tmp_path: Path) -> None:
    path = _filled(tmp_path, 3)
    _tamper(path, "DELETE FROM journal_meta WHERE name = 'anchor'")
    with _open(path) as journal:
        assert [p.problem for p in verify_journal(journal).problems] == ["anchor-edited"]


@pytest.mark.parametrize(("sql", "seq", "problem"), [
    # Two queued records marked delivered: never uploaded, then pruned without a trace.
    ("UPDATE records SET acked_at = '2000-01-01T00:00:00.000Z', ack_outcome = 'accepted' "
     "WHERE seq IN (4, 5)", 4, "ack-edited"),
    ("DELETE FROM records WHERE seq = 2", 2, "missing"),
    ("UPDATE records SET payload = '{\"fare_cents\":1}' WHERE seq = 2", 2, "edited"),
    ("UPDATE journal_meta SET value = zeroblob(72) WHERE name = 'anchor'", 0,
     "anchor-edited"),
])
def test_prune_refuses_to_launder_what_verify_reports(tmp_path: Path, sql: str, seq: int,
                                                     problem: str) -> None:
    # Pruning re-MACs the anchor past what it deletes: through tampered records it would
    # leave a chain that verifies, the evidence gone.
    path = _filled(tmp_path, 5)
    with _open(path) as journal:
        journal.acknowledge([(p.record, AckOutcome.ACCEPTED, "") for p in journal.pending(3)])
    _tamper(path, sql)
    with _open(path) as journal:
        before = [tuple(row) for row in journal.raw_rows()]
        assert (seq, problem) in {(p.seq, p.problem) for p in verify_journal(journal).problems}
        with pytest.raises(JournalTamperedError, match=r"nothing was pruned.*verify"):
            journal.prune(retention_s=0)
        assert [tuple(row) for row in journal.raw_rows()] == before
        assert (seq, problem) in {(p.seq, p.problem) for p in verify_journal(journal).problems}


def test_prune_after_prune_still_checks_from_the_moved_anchor(tmp_path: Path) -> None:
    path = _filled(tmp_path, 6)
    with _open(path) as journal:
        journal.acknowledge([(p.record, AckOutcome.ACCEPTED, "") for p in journal.pending(3)])
        assert journal.prune(retention_s=0) == 3
        journal.acknowledge([(p.record, AckOutcome.DUPLICATE, "") for p in journal.pending(9)])
        assert journal.prune(retention_s=0) == 3
        assert journal.anchor()[0] == 6 and verify_journal(journal).ok


@pytest.mark.parametrize("sql", [
    "UPDATE records SET mono_ns = 'late' WHERE seq = 2",
    "UPDATE records SET hash = 'not a blob' WHERE seq = 2",
    "UPDATE records SET personal = 'clear text' WHERE seq = 2",
    "UPDATE records SET acked_at = 20260101, ack_outcome = 'accepted', ack_mac = 'x' "
    "WHERE seq = 2",
])
def test_verify_reports_a_value_of_the_wrong_type_as_edited(tmp_path: Path, sql: str) -> None:
    # SQLite keeps whatever type is written; verify must report it, not crash on it.
    path = _filled(tmp_path, 3)
    _tamper(path, sql)
    with _open(path) as journal:
        problems = [(p.seq, p.problem) for p in verify_journal(journal).problems]
    assert problems[0] == (2, "edited"), problems


def test_verify_while_the_daemon_prunes_sees_one_consistent_journal(tmp_path: Path) -> None:
    # A technician runs `sscard queue verify` on a running validator: the forwarder
    # acknowledges and prunes meanwhile. Reading the chain in pieces across those commits
    # reports records as missing that were pruned legitimately (a false "tampered").
    path = tmp_path / "journal.db"
    with _open(path, synchronous="NORMAL") as daemon:
        for i in range(20_000):
            daemon.enqueue("card_tap", {"fare_cents": i})
    reports = []
    with _open(path, synchronous="NORMAL") as daemon, _open(path) as technician:
        def forward_and_prune() -> None:
            while pending := daemon.pending(2500):   # more than verify reads at a time
                daemon.acknowledge([(p.record, AckOutcome.ACCEPTED, "") for p in pending])
                daemon.prune(retention_s=0)
                time.sleep(0.02)   # let verify walks start in between
        forwarder = threading.Thread(target=forward_and_prune)
        forwarder.start()
        while forwarder.is_alive():
            reports.append(verify_journal(technician))
        forwarder.join()
    assert len(reports) >= 2
    assert [r.problems for r in reports if not r.ok] == []


def test_prune_removes_at_most_its_limit_per_call(tmp_path: Path) -> None:
    path = _filled(tmp_path, 7)
    with _open(path) as journal:
        journal.acknowledge([(p.record, AckOutcome.ACCEPTED, "") for p in journal.pending(9)])
        assert [journal.prune(retention_s=0, limit=3) for _ in range(4)] == [3, 3, 1, 0]
        assert journal.anchor()[0] == 7 and verify_journal(journal).ok
