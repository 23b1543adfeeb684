"""The card commands of the ``sscard`` CLI, their output and exit codes."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable

import pytest
from sscard_hardware_sim.pcscd_runner import VPCD_READER_0, PcscdRunner, wait_card_state
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.vpcd_link import VpcdLink

from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.cli.main import main


def test_read_sim_card_is_masked_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "--reader", "sim:gen2-adult", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "刘**" and data["complete"] is True
    assert "*" in data["social_security_number"]


def test_read_unmask_is_logged_at_warning(capsys: pytest.CaptureFixture[str],
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert main(["read", "--reader", "sim:gen2-adult", "--json", "--unmask"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "刘思远"
    assert any("unmasked" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_read_generation_3_without_module_says_incomplete(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "--reader", "sim:gen3-adult"]) == ExitCode.INCOMPLETE_READ
    assert "INCOMPLETE: generation 3 card: holder data needs a PSAM or the central HSM" in \
        capsys.readouterr().out


def test_read_unified_prints_the_ireadcardbas_string(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "--reader", "sim:gen2-adult", "--unified",
                 "--terminal-number", "410100813475"]) == 0
    fields = capsys.readouterr().out.strip().split("|")
    assert fields[0] == "330300" and fields[4] == "刘思远" and fields[9] == "410100813475"


def test_not_a_social_security_card_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "--reader", "sim:bank-only"]) == ExitCode.NOT_SOCIAL_SECURITY_CARD
    assert "no social security application" in capsys.readouterr().err


def test_unknown_reader_exit_code() -> None:
    assert main(["read", "--reader", "sim:nobody"]) == ExitCode.NO_READER


def test_apdu_prints_data_and_sw_meaning(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["apdu", "00A404000F7378312E73682EC9E7BBE1B1A3D5CF",
                 "--reader", "sim:gen2-adult"]) == 0
    out = capsys.readouterr().out
    assert "SW   9000 success" in out and "9F 0C" in out


def test_apdu_rejects_non_hex() -> None:
    assert main(["apdu", "zz", "--reader", "sim:gen2-adult"]) == ExitCode.CONFIG_ERROR


def test_atr_is_decoded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["atr", "--reader", "sim:gen3-3des"]) == 0
    out = capsys.readouterr().out
    assert "contactless (PC/SC part 3 pseudo-ATR)" in out and "TCK        A6 (ok)" in out


@pytest.mark.pcsc
def test_readers_shows_state(vpcd_slot: Callable[..., VpcdLink],
                             capsys: pytest.CaptureFixture[str]) -> None:
    vpcd_slot(VirtualCard.from_holder("gen2-adult"))
    wait_card_state(VPCD_READER_0, True)
    assert main(["readers"]) == 0
    out = capsys.readouterr().out
    assert f"{VPCD_READER_0}\tcard present" in out
    assert "Virtual PCD 00 01\tempty" in out
    assert "sim:gen3-adult" in out


@pytest.mark.pcsc
def test_read_through_pcscd_no_card_exit_code(pcscd: PcscdRunner) -> None:
    assert main(["read", "--reader", VPCD_READER_0, "--timeout", "0.2"]) == ExitCode.NO_CARD


@pytest.mark.pcsc
def test_watch_prints_events_until_count(vpcd_slot: Callable[..., VpcdLink]) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "sscard_terminal.cli.main", "watch",
                             "--count", "3", "--seconds", "10"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("reader-added")
        vpcd_slot(VirtualCard.from_holder("gen2-adult"))
        out, _ = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert f"card-inserted\t{VPCD_READER_0}" in first + out


@pytest.mark.pcsc
def test_readers_says_when_pcscd_is_down(pcscd: PcscdRunner,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    pcscd.kill_daemon()
    try:
        assert main(["readers"]) == ExitCode.READER_UNAVAILABLE
        out = capsys.readouterr().out
        assert "is pcscd running?" in out and "sim:gen2-adult" in out
    finally:
        pcscd.restart()
