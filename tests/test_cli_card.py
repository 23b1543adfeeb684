"""The card commands of the ``sscard`` CLI, their output and exit codes."""

from __future__ import annotations

import importlib
import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.device import VirtualDevice
from sscard_hardware_sim.pcscd_runner import (
    VPCD_READER_0,
    VPCD_READER_1,
    PcscdRunner,
    wait_card_state,
)
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.virtual_psam import full_psam, psam_without_read_key
from sscard_hardware_sim.vpcd_link import VpcdLink

from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.cli.main import main


def test_read_sim_card_is_masked_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "--reader", "sim:gen2-adult", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["name"] == "刘**" and data["complete"] is True
    assert data["social_security_number"] == "3303**********007X"
    assert data["card_number"] == "W*******4"


def test_read_unmask_is_logged_at_warning(capsys: pytest.CaptureFixture[str],
                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    assert main(["read", "--reader", "sim:gen2-adult", "--json", "--unmask"]) == 0
    assert json.loads(capsys.readouterr().out)["name"] == "刘思远"
    assert any("unmasked" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_read_generation_3_without_module_says_incomplete(tmp_path: Path) -> None:
    # No pcscd to search for a PSAM in (one on this machine, with a PSAM inserted by
    # another test process, would rightly be found and used).
    done = subprocess.run(
        [sys.executable, "-m", "sscard_terminal.cli.main", "read", "--reader", "sim:gen3-adult"],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")})
    assert done.returncode == ExitCode.INCOMPLETE_READ
    assert "INCOMPLETE: generation 3 card: holder data needs a PSAM or the central HSM" in \
        done.stdout


def test_read_unified_prints_the_ireadcardbas_string(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Masked by default like every other output (issue 21, point 5): the layout stays.
    assert main(["read", "--reader", "sim:gen2-adult", "--unified",
                 "--terminal-number", "410100813475"]) == 0
    masked = capsys.readouterr().out.strip().split("|")
    assert masked[0] == "330300" and masked[9] == "410100813475"
    assert masked[4] == "刘**" and masked[1] == "3303**********007X"
    assert masked[2] == "W*******4"[:9]
    # --unmask gives the string HIS software parses, in clear.
    assert main(["read", "--reader", "sim:gen2-adult", "--unified", "--unmask",
                 "--terminal-number", "410100813475"]) == 0
    fields = capsys.readouterr().out.strip().split("|")
    assert fields[0] == "330300" and fields[4] == "刘思远" and fields[9] == "410100813475"
    assert len(fields) == len(masked)


def test_read_prints_the_security_module_once_and_warnings_as_text(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "--reader", "sim:gen3-adult", "--psam", "sim:psam"]) == 0
    out = capsys.readouterr().out
    assert out.count("psam:sim:psam") == 1
    assert "[" not in out and "authenticated_by" not in out


def test_read_json_uses_null_for_missing_fields(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["read", "--reader", "sim:gen3-adult", "--psam", "sim:psam", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["incomplete_reason"] is None and data["pan"] is None
    assert "" not in data.values()


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
    # A usage error (issue 21, point 9), as the README's exit-code table says.
    assert main(["apdu", "zz", "--reader", "sim:gen2-adult"]) == ExitCode.USAGE


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
        # The simulated readers listed still work: not "unavailable" (issue 21, point 4).
        assert main(["readers"]) == ExitCode.OK
        out = capsys.readouterr().out
        assert "is pcscd running?" in out and "sim:gen2-adult" in out
    finally:
        pcscd.restart()


# --- security modules in `sscard read`: --psam, --central, the chain closed --------------

TRACE = "sscard_terminal.apdu.trace"
SELECT_SSSE = "00A404000F7378312E73682EC9E7BBE1B1A3D5CF"


def _terminal_config(sim: CentralSim, tmp_path: Path) -> Path:
    """The terminal-config JSON ``central-sim terminal-config`` prints."""
    path = tmp_path / "terminal.json"
    path.write_text(json.dumps({"base_url": sim.base_url, "terminal_id": sim.terminal_id,
                                "secret": sim.secret,
                                "central_public_key": sim.central_public_key}))
    return path


def _in_use(reader: str) -> bool:
    """Whether some connection to the card in ``reader`` is still open (pcscd's view)."""
    scard = importlib.import_module("smartcard.scard")
    result, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    assert result == scard.SCARD_S_SUCCESS
    try:
        result, states = scard.SCardGetStatusChange(
            context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        assert result == scard.SCARD_S_SUCCESS
        return bool(states[0][1] & scard.SCARD_STATE_INUSE)
    finally:
        scard.SCardReleaseContext(context)


def _card_and_psam(vpcd_slot: Callable[..., VpcdLink], holder: str, psam: VirtualDevice,
                   *, card_slot: int = 0) -> tuple[str, str]:
    """The user card in ``card_slot``, the PSAM in the other; (card reader, PSAM reader)."""
    readers = (VPCD_READER_0, VPCD_READER_1)
    vpcd_slot(VirtualCard.from_holder(holder), slot=card_slot)
    vpcd_slot(psam, slot=1 - card_slot)
    for reader in readers:
        wait_card_state(reader, True)
    return readers[card_slot], readers[1 - card_slot]


@pytest.mark.pcsc
def test_read_says_which_psam_authenticated_and_releases_it(
        vpcd_slot: Callable[..., VpcdLink], capsys: pytest.CaptureFixture[str]) -> None:
    card_reader, psam_reader = _card_and_psam(vpcd_slot, "gen3-adult", full_psam())
    assert main(["read", "--reader", card_reader]) == ExitCode.OK
    out = capsys.readouterr().out
    assert f"security module              psam:{psam_reader}\n" in out
    # The chain's PSAM connection was closed with the command.
    assert not _in_use(psam_reader)
    assert main(["read", "--reader", card_reader, "--psam", psam_reader, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] is True and data["authenticated_by"] == f"psam:{psam_reader}"
    assert data["security_module_fallback_code"] is None
    assert not _in_use(psam_reader)


@pytest.mark.pcsc
def test_read_without_reader_never_takes_the_psam_slot(
        vpcd_slot: Callable[..., VpcdLink], capsys: pytest.CaptureFixture[str]) -> None:
    """The PSAM sits in the FIRST reader: "the first reader with a card" must skip it."""
    card_reader, psam_reader = _card_and_psam(vpcd_slot, "gen3-adult", full_psam(),
                                              card_slot=1)
    assert main(["read", "--json"]) == ExitCode.OK
    data = json.loads(capsys.readouterr().out)
    assert data["reader"] == card_reader and data["complete"] is True
    assert data["authenticated_by"] == f"psam:{psam_reader}"
    assert not _in_use(psam_reader)


@pytest.mark.pcsc
def test_read_generation_3_without_psam_completes_through_the_central_hsm(
        vpcd_slot: Callable[..., VpcdLink], central_sim: CentralSim, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    vpcd_slot(VirtualCard.from_holder("gen3-adult"), slot=0)
    wait_card_state(VPCD_READER_0, True)
    config = str(_terminal_config(central_sim, tmp_path))
    assert main(["read", "--reader", VPCD_READER_0, "--central", config, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["complete"] is True and data["authenticated_by"] == "hsm:central"
    assert data["name"] == "林**"
    # The same through the in-process sim: reader, in text.
    assert main(["read", "--reader", "sim:gen3-adult", "--central", config]) == 0
    assert "security module              hsm:central\n" in capsys.readouterr().out


@pytest.mark.pcsc
def test_read_falls_back_to_the_hsm_when_the_psam_lacks_the_read_key(
        vpcd_slot: Callable[..., VpcdLink], central_sim: CentralSim, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    card_reader, psam_reader = _card_and_psam(vpcd_slot, "gen3-adult", psam_without_read_key())
    config = str(_terminal_config(central_sim, tmp_path))
    assert main(["read", "--reader", card_reader, "--central", config]) == ExitCode.OK
    assert "security module              hsm:central (the PSAM could not serve the card: " \
        "-2203)" in capsys.readouterr().out
    assert main(["read", "--reader", card_reader, "--central", config, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["authenticated_by"] == "hsm:central"
    assert data["security_module_fallback_code"] == -2203
    assert not _in_use(psam_reader)


def test_read_central_config_errors_are_config_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere.json"
    assert main(["read", "--reader", "sim:gen3-adult", "--central", str(missing)]) == \
        ExitCode.CONFIG_ERROR
    assert "cannot read terminal config" in capsys.readouterr().err
    assert main(["read", "--reader", "sim:gen3-adult", "--no-security-module",
                 "--central", str(missing)]) == ExitCode.CONFIG_ERROR


def test_apdu_trace_level_does_not_leak_between_main_calls(
        caplog: pytest.LogCaptureFixture) -> None:
    trace = logging.getLogger(TRACE)
    before = trace.level
    caplog.set_level(logging.DEBUG)
    command = ["apdu", SELECT_SSSE, "--reader", "sim:gen2-adult"]
    try:
        trace.setLevel(logging.NOTSET)
        assert main(command) == 0
        assert trace.level == logging.NOTSET
        assert not [r for r in caplog.records if r.name == TRACE]
        # A later call with -vv gets its traces: the quiet call's choice did not stick.
        assert main(["-vv", *command]) == 0
        assert [r for r in caplog.records if r.name == TRACE]
        assert trace.level == logging.NOTSET
    finally:
        trace.setLevel(before)


@pytest.mark.parametrize("json_output", [True, False])
def test_masked_read_does_not_give_back_the_hidden_id_digits(
        capsys: pytest.CaptureFixture[str], json_output: bool) -> None:
    """The masked ID number hides the district and the birth date (3303**********007X);
    printing the birthplace code and the birth date in clear next to it gave all 18
    digits back (330302 + 19751120 + 007X)."""
    assert main(["read", "--reader", "sim:gen2-adult", "--json", "--unmask"]) == 0
    clear = json.loads(capsys.readouterr().out)
    number = clear["social_security_number"]
    assert number == "33030219751120007X"
    assert main(["read", "--reader", "sim:gen2-adult", *(["--json"] if json_output else [])]) == 0
    out = capsys.readouterr().out
    assert number not in out
    for hidden in (clear["birthplace"], clear["birth_date"], clear["birth_date"][5:]):
        assert hidden not in out, hidden
    if json_output:
        masked = json.loads(out)
        assert masked["birthplace"] == "3303**" and masked["birth_date"] == "1975-**-**"
