"""Logs (issue 18, item 7): journald's native protocol to a datagram socket the test owns,
structured fields, masking, and the choice between journald and stderr."""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sscard_terminal.log_setup import JournaldHandler, journal_field_lines, under_journald

ID_NUMBER = "110105194912310021"
CARD_NUMBER = "A12345678"


def parse(datagram: bytes) -> dict[str, str]:
    """journald's native protocol, read independently of the writer."""
    fields: dict[str, str] = {}
    rest = datagram
    while rest:
        line, _, after = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            rest = after
        else:
            (size,) = struct.unpack("<Q", after[:8])
            fields[line.decode()] = after[8:8 + size].decode()
            assert after[8 + size:9 + size] == b"\n"
            rest = after[9 + size:]
    return fields


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "journal.socket")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(5)
    yield server, path
    server.close()


def test_records_go_as_structured_fields(journal: tuple[socket.socket, str]) -> None:
    server, path = journal
    handler = JournaldHandler("sscard-test", path=path)
    log = logging.getLogger("sscard_terminal.test.lane")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("lane %s: card refused (%s)", "gate-1", "card_lost",
                    extra={"lane": "gate-1", "reason": "card_lost",
                           "transaction_id": "ab" * 16, "holder": "张三丰"})
        fields = parse(server.recv(65536))
        assert fields["MESSAGE"] == "lane gate-1: card refused (card_lost)"
        assert fields["PRIORITY"] == "4" and fields["SYSLOG_IDENTIFIER"] == "sscard-test"
        assert fields["SSCARD_LANE"] == "gate-1" and fields["SSCARD_REASON"] == "card_lost"
        assert fields["SSCARD_TRANSACTION_ID"] == "ab" * 16
        assert fields["LOGGER"] == "sscard_terminal.test.lane"
        assert fields["CODE_FUNC"] == "test_records_go_as_structured_fields"
        assert not any("张三丰" in value for value in fields.values())
        assert "SSCARD_HOLDER" not in fields
        # Personal data that slipped into a message, or into a field, is masked / dropped.
        log.error("card %s of %s", CARD_NUMBER, ID_NUMBER,
                  extra={"lane": ID_NUMBER, "reason": "card forged"})
        fields = parse(server.recv(65536))
        assert fields["MESSAGE"] == f"card {'*' * 9} of {'*' * 18}"
        assert fields["PRIORITY"] == "3"
        assert "SSCARD_LANE" not in fields and "SSCARD_REASON" not in fields
        # A traceback is one multi-line MESSAGE, in the protocol's length-prefixed form.
        try:
            raise ValueError("bad frame")
        except ValueError:
            log.exception("decoder failed")
        fields = parse(server.recv(65536))
        assert fields["MESSAGE"].startswith("decoder failed\nTraceback")
        assert fields["MESSAGE"].endswith("ValueError: bad frame")
    finally:
        log.removeHandler(handler)
        handler.close()


def test_journald_gone_falls_back_to_stderr(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    handler = JournaldHandler(path=str(tmp_path / "nobody"))
    handler._fallback.setStream(sys.stderr)
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "still here %s",
                               (ID_NUMBER,), None)
    handler.handle(record)
    handler.close()
    assert "still here " + "*" * 18 in capsys.readouterr().err


def test_wire_format_round_trips() -> None:
    datagram = journal_field_lines({"MESSAGE": "a\nb", "PRIORITY": "6"})
    assert datagram == b"MESSAGE\n" + struct.pack("<Q", 3) + b"a\nb\nPRIORITY=6\n"
    assert parse(datagram) == {"MESSAGE": "a\nb", "PRIORITY": "6"}


def test_journald_is_used_only_when_stderr_is_its_stream(tmp_path: Path) -> None:
    assert not under_journald({})
    assert not under_journald({"JOURNAL_STREAM": "garbage"})
    info = os.fstat(sys.stderr.fileno())
    assert under_journald({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
    assert not under_journald({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"})
    # A whole process: systemd sets JOURNAL_STREAM to its stderr's device and inode.
    journal_path = tmp_path / "journal.socket"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(journal_path))
    server.settimeout(10)
    stderr_file = tmp_path / "stderr"
    script = ("import logging, os, sys\n"
              "st = os.fstat(2)\n"
              "os.environ['JOURNAL_STREAM'] = f'{st.st_dev}:{st.st_ino}'\n"
              "from sscard_terminal.log_setup import configure_logging\n"
              f"configure_logging(journal_socket={str(journal_path)!r})\n"
              "logging.getLogger('sscard_terminal.x').info('ready', extra={'lane': 'l1'})\n")
    with stderr_file.open("w") as err:
        subprocess.run([sys.executable, "-c", script], stderr=err, check=True, timeout=30)
    fields = parse(server.recv(65536))
    server.close()
    assert fields["MESSAGE"] == "ready" and fields["SSCARD_LANE"] == "l1"
    assert stderr_file.read_text() == ""
    # Without it, stderr.
    plain = subprocess.run(
        [sys.executable, "-c", script.replace("os.environ['JOURNAL_STREAM']", "_unused")],
        capture_output=True, text=True, check=True, timeout=30)
    assert "INFO sscard_terminal.x: ready" in plain.stderr
