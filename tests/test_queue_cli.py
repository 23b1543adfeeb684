"""``sscard queue ...`` end to end: real journal files, real simulator, real subprocess."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.cli.main import main
from sscard_terminal.offline_queue import AckOutcome, Journal

KEY = bytes(range(32))
PERSON = {"name": "张三丰", "id_number": "330302199001011234", "card_number": "D00000013"}


@pytest.fixture
def central(central_sim: CentralSim) -> CentralSim:
    """The shared fixture: ``sscard central-sim serve`` as a subprocess on 127.0.0.1."""
    return central_sim


def _setup(tmp_path: Path, terminal: str = "T-BUS-0001", count: int = 3) -> list[str]:
    key_file = tmp_path / "journal.key"
    key_file.write_text(KEY.hex())
    key_file.chmod(0o600)
    with Journal.open(tmp_path / "journal.db", terminal_id=terminal, keys=KEY) as journal:
        for i in range(count):
            journal.enqueue("card_tap", {"fare_cents": i}, PERSON)
    return ["--db", str(tmp_path / "journal.db"), "--key-file", str(key_file)]


def test_status_reports_queue_as_json(tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path)
    assert main(["queue", "status", *args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["queued"] == 3 and data["terminal_id"] == "T-BUS-0001"
    assert data["alarms"] == [] and data["disk_bytes"] > 0


def test_status_counts_what_the_central_rejected(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A rejected record is acknowledged (never retried), so ``queued`` no longer shows
    it; finance still has to hear of it, and the technician is who tells them."""
    args = _setup(tmp_path, count=4)
    with Journal.open(tmp_path / "journal.db", terminal_id="T-BUS-0001", keys=KEY) as journal:
        first, second, *_ = [p.record for p in journal.pending(4)]
        journal.acknowledge([(first, AckOutcome.ACCEPTED, ""),
                             (second, AckOutcome.REJECTED, "bad_field:kind")])
    assert main(["queue", "status", *args, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["queued"] == 2 and data["rejected"] == 1
    assert main(["queue", "status", *args]) == 0
    assert "rejected     1" in capsys.readouterr().out


def test_export_masks_personal_data_unless_unmask(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path)
    out = tmp_path / "export.jsonl"
    assert main(["queue", "export", *args, "-o", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    text = out.read_text(encoding="utf-8")
    assert "张三丰" not in text and "330302199001011234" not in text
    assert lines[0]["personal"] == {"name": "张**", "id_number": "3303**********1234",
                                    "card_number": "D*******3"}
    assert main(["queue", "export", *args, "--unmask"]) == 0
    unmasked = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert unmasked[0]["personal"] == PERSON


def test_verify_passes_then_fails_with_journal_exit_code_after_tampering(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path)
    assert main(["queue", "verify", *args]) == 0
    assert "chain ok: 3 record(s)" in capsys.readouterr().out
    conn = sqlite3.connect(tmp_path / "journal.db")
    conn.execute("DELETE FROM records WHERE seq = 2")
    conn.commit()
    conn.close()
    assert main(["queue", "verify", *args]) == 15
    captured = capsys.readouterr()
    assert "record 2: missing" in captured.out and "hash chain broken" in captured.err


def test_wrong_key_file_is_a_journal_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path)
    other = tmp_path / "other.key"
    other.write_bytes(bytes(32))
    other.chmod(0o600)
    assert main(["queue", "status", "--db", args[1], "--key-file", str(other)]) == 15
    assert "created with another key" in capsys.readouterr().err


def test_drain_forwards_with_a_progress_bar(tmp_path: Path, central: CentralSim) -> None:
    args = _setup(tmp_path, central.terminal_id, count=450)
    config = tmp_path / "central.json"
    config.write_text(json.dumps({"base_url": central.base_url,
                                  "terminal_id": central.terminal_id,
                                  "secret": central.secret}))
    done = subprocess.run(
        [sys.executable, "-m", "sscard_terminal.cli.main", "queue", "drain", *args,
         "--config", str(config), "--batch-size", "100"],
        capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "forwarded 450, rejected 0, remaining 0" in done.stdout
    assert "100.0% 450/450" in done.stderr and "/s ETA" in done.stderr
    assert central.store.transaction_count(central.terminal_id) == 450


def test_an_unmasked_export_file_is_readable_by_its_owner_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Clear personal data must not land in a file every local user can read (umask 022).
    args = _setup(tmp_path)
    fresh, existing = tmp_path / "fresh.jsonl", tmp_path / "existing.jsonl"
    existing.write_text("")
    existing.chmod(0o644)
    for out in (fresh, existing):
        assert main(["queue", "export", *args, "--unmask", "-o", str(out)]) == 0
        assert "330302199001011234" in out.read_text(encoding="utf-8")
        assert out.stat().st_mode & 0o077 == 0, oct(out.stat().st_mode)


def test_export_of_an_edited_record_is_a_journal_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path)
    conn = sqlite3.connect(tmp_path / "journal.db")
    conn.execute("UPDATE records SET ack_outcome = 'maybe' WHERE seq = 2")
    conn.commit()
    conn.close()
    assert main(["queue", "export", *args, "-o", str(tmp_path / "out.jsonl")]) == 15
    assert "record 2 does not read back" in capsys.readouterr().err


def test_status_checks_the_profiles_limits(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Without a profile the journal has no limits, so "alarms: none" would be said of
    # a journal far over them: status takes the deployment's profile to check them.
    args = _setup(tmp_path, count=3)
    shipped = Path(__file__).resolve().parent.parent / "profiles" / "bus-validator.toml"
    profile = tmp_path / "tight.toml"
    profile.write_text(shipped.read_text(encoding="utf-8").replace(
        "max_records = 200000", "max_records = 2"), encoding="utf-8")
    assert main(["queue", "status", *args, "--json", "--profile", str(profile)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["alarms"] == ["count"] and data["limits_checked"] is True
    assert main(["queue", "status", *args]) == 0
    assert "not checked" in capsys.readouterr().out


@pytest.mark.parametrize("size", ["0", "-5", "many"])
def test_drain_refuses_a_batch_size_below_one_as_a_usage_error(
        tmp_path: Path, size: str, capsys: pytest.CaptureFixture[str]) -> None:
    args = _setup(tmp_path)
    with pytest.raises(SystemExit) as exited:
        main(["queue", "drain", *args, "--config", str(tmp_path / "central.json"),
              "--batch-size", size])
    assert exited.value.code == 2
    assert "--batch-size" in capsys.readouterr().err


def test_drain_of_a_tampered_journal_stops_at_once_with_the_journal_exit_code(
        tmp_path: Path, central: CentralSim, capsys: pytest.CaptureFixture[str]) -> None:
    # A journal error does not heal by waiting: drain must say so now (exit 15), not retry
    # until --timeout and then blame the network (exit 13).
    args = _setup(tmp_path, central.terminal_id)
    conn = sqlite3.connect(tmp_path / "journal.db")
    conn.execute("UPDATE records SET acked_at = '2026-01-01T00:00:00.000Z', "
                 "ack_outcome = 'accepted' WHERE seq = 2")
    conn.commit()
    conn.close()
    config = tmp_path / "central.json"
    config.write_text(json.dumps({"base_url": central.base_url,
                                  "terminal_id": central.terminal_id,
                                  "secret": central.secret}))
    started = time.monotonic()
    code = main(["queue", "drain", *args, "--config", str(config), "--timeout", "30"])
    assert code == 15
    assert time.monotonic() - started < 15    # well before the timeout: it did not retry on
    assert "record 2 ack-edited" in capsys.readouterr().err
    assert central.store.transaction_count(central.terminal_id) == 0


def test_verify_reports_a_well_typed_but_wrong_ack_mac_and_every_edited_ack_field(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 23: the check reduced to "a MAC is present" passed every earlier tamper test,
    which forged acks only with a NULL or wrongly typed MAC. Here each forgery keeps a
    32-byte MAC of the right type: another record's genuine ack MAC, random bytes, or the
    record's own MAC with one of the fields it covers edited."""
    args = _setup(tmp_path, count=7)
    with Journal.open(tmp_path / "journal.db", terminal_id="T-BUS-0001", keys=KEY) as journal:
        records = [p.record for p in journal.pending(7)]
        journal.acknowledge([(r, AckOutcome.REJECTED if r.seq == 4 else AckOutcome.ACCEPTED,
                              "bad_field:kind" if r.seq == 4 else "") for r in records[:6]])
    assert main(["queue", "verify", *args]) == 0
    assert "chain ok: 7 record(s)" in capsys.readouterr().out
    conn = sqlite3.connect(tmp_path / "journal.db")
    macs = dict(conn.execute("SELECT seq, ack_mac FROM records").fetchall())
    assert all(isinstance(m, bytes) and len(m) == 32 for s, m in macs.items() if s <= 6)
    tampering = [
        ("UPDATE records SET ack_mac = ? WHERE seq = 2", (macs[1],)),      # another's MAC
        ("UPDATE records SET ack_mac = ? WHERE seq = 3", (bytes(32),)),    # 32 zero bytes
        ("UPDATE records SET ack_outcome = 'accepted' WHERE seq = 4", ()),  # rejected -> ok
        ("UPDATE records SET ack_reason = '' WHERE seq = 4", ()),
        ("UPDATE records SET acked_at = '2026-01-01T00:00:00.000Z' WHERE seq = 5", ()),
        ("UPDATE records SET ack_reason = 'late' WHERE seq = 6", ()),
        # a queued record marked delivered with a genuine MAC taken from another record
        ("UPDATE records SET acked_at = (SELECT acked_at FROM records WHERE seq = 1), "
         "ack_outcome = 'accepted', ack_reason = '', ack_mac = ? WHERE seq = 7", (macs[1],)),
    ]
    for sql, params in tampering:
        conn.execute(sql, params)
    conn.commit()
    conn.close()
    assert main(["queue", "verify", *args]) == 15
    captured = capsys.readouterr()
    reported = [line.strip() for line in captured.out.splitlines() if line.strip()]
    assert reported == [f"record {seq}: ack-edited" for seq in (2, 3, 4, 5, 6, 7)]
    assert "hash chain broken at 6 place(s)" in captured.err
