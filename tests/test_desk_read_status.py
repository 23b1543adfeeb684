"""Status on every machine read for a desk (issue 22.2, Hainan §32): the SDK's read_card,
``sscard read`` and the local API's iReadCardBas carry the card's status from the central
(the simulator over HTTP) within the caller's budget, or say plainly that it is unknown
(offline); a lost or void card is answered with a documented code and its holder data
withheld; the local API verifies e-codes for the desk."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sscard_hardware_sim.central_ecodes import issue_code, issue_opaque_code
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_lifecycle import set_status
from sscard_hardware_sim.central_store import virtual_cards

from sscard_terminal import read_card
from sscard_terminal.central.models import CardStatus
from sscard_terminal.cli.main import main as cli_main
from sscard_terminal.ecode import CodeKind
from sscard_terminal.local_api.status_codes import StatusCode
from tests.test_local_api import UnixClient

HOLDER = "gen2-adult"


def _card() -> Any:
    return next(c for c in virtual_cards() if c.key == HOLDER)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CentralSim]:
    central = CentralSim(tmp_path / "central.db")
    yield central
    central.stop()


def _config(sim: CentralSim, tmp_path: Path) -> Path:
    path = tmp_path / "terminal.json"
    path.write_text(json.dumps({"base_url": sim.base_url, "terminal_id": sim.terminal_id,
                                "secret": sim.secret,
                                "central_public_key": sim.central_public_key}))
    path.chmod(0o600)
    return path


def _set(sim: CentralSim, status: CardStatus) -> None:
    set_status(sim.store, _card().card_number, status, dt.date.today())


# --- SDK --------------------------------------------------------------------------------------


def test_the_sdk_read_carries_the_status_and_withholds_a_lost_cards_holder(
        sim: CentralSim) -> None:
    with sim.make_client() as central:
        normal = read_card(f"sim:{HOLDER}", central=central)
        assert normal.card_status is not None and normal.card_status.status == "normal"
        assert normal.card_status.online and normal.name
        _set(sim, CardStatus.FORMAL_LOSS)
        lost = read_card(f"sim:{HOLDER}", central=central)
        assert lost.card_status is not None
        assert lost.card_status.status == "formal_loss" and lost.card_status.withheld
        assert lost.name == "" and lost.social_security_number == "" and lost.birth_date is None
        assert lost.card_number == normal.card_number      # the card, not the person
        shown = read_card(f"sim:{HOLDER}", central=central, withhold_unusable=False)
        assert shown.name == normal.name and shown.card_status is not None
        assert not shown.card_status.withheld


def test_the_sdk_says_plainly_when_the_status_is_unknown_and_keeps_the_budget(
        sim: CentralSim) -> None:
    sim.set_faults(mode="timeout")
    with sim.make_client() as central:
        started = time.monotonic()
        info = read_card(f"sim:{HOLDER}", timeout=1.0, central=central)
        elapsed = time.monotonic() - started
    assert info.card_status is not None
    assert info.card_status.status == "unknown" and not info.card_status.online
    assert "status unknown (offline)" in info.card_status.message
    assert info.name      # an unknown status withholds nothing: the desk decides
    assert elapsed < 3.0  # the caller's budget (1 s) bounds the central call too


# --- CLI --------------------------------------------------------------------------------------


def test_sscard_read_prints_the_status_and_exits_21_for_a_void_card(
        sim: CentralSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _config(sim, tmp_path)
    assert cli_main(["read", "--reader", f"sim:{HOLDER}", "--central", str(config),
                     "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["card_status"]["status"] == "normal"
    _set(sim, CardStatus.CANCELLED)
    assert cli_main(["read", "--reader", f"sim:{HOLDER}", "--central", str(config),
                     "--json"]) == 21
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert data["card_status"] == {"status": "cancelled", "online": True, "withheld": True,
                                   "message": "the card is void: cancelled"}
    # Withheld: null, as every missing field in the JSON (issue 21, point 13).
    assert data["name"] is None and "CARD NOT USABLE" in captured.err


# --- local API --------------------------------------------------------------------------------


def _serve(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    path = tmp_path / "api.sock"
    server = subprocess.Popen(
        [sys.executable, "-m", "sscard_terminal.local_api", "--socket", str(path),
         "--reader", f"sim:{HOLDER}", *args], stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 20
    while not path.exists() and time.monotonic() < end and server.poll() is None:
        time.sleep(0.05)
    return server


def _stop(server: subprocess.Popen[str]) -> str:
    server.send_signal(signal.SIGTERM)
    try:
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
    return server.stderr.read() if server.stderr else ""


def test_the_local_api_answers_a_lost_card_with_its_code_and_no_holder_data(
        sim: CentralSim, tmp_path: Path) -> None:
    server = _serve(tmp_path, "--central", str(_config(sim, tmp_path)))
    try:
        client = UnixClient(tmp_path / "api.sock")
        normal = client.call({"function": "iReadCardBas", "iType": 3})
        assert normal["code"] == 0 and normal["card_status"] == "normal"
        assert normal["card_status_online"] is True and normal["data"]
        assert normal["message_zh"] == "正常" and normal["message_en"] == "Normal"
        name = normal["data"].split("|")[4]
        _set(sim, CardStatus.TEMPORARY_LOSS)
        lost = client.call({"function": "iReadCardBas", "iType": 3})
        assert lost["code"] == StatusCode.CARD_LOST == -2301
        assert lost["data"] == "" and lost["holder_withheld"] is True
        assert lost["card_status"] == "temporary_loss"
        items = client.call({"function": "iReadCard", "iType": 3,
                             "fileAddr": "SSSEEF05|01|07|$SSSEEF06|08|09|$"})
        assert items["code"] == StatusCode.CARD_LOST and items["data"] == ""
        assert items["card_status"] == "temporary_loss" and items["holder_withheld"] is True
        sim.set_faults(mode="reset")
        offline = client.call({"function": "iReadCardBas", "iType": 3})
        assert offline["code"] == 0 and offline["card_status"] == "unknown"
        assert offline["card_status_online"] is False
        assert "status unknown (offline)" in offline["card_status_message"]
        client.close()
    finally:
        log = _stop(server)
    assert name and name not in log


def test_the_local_api_verifies_e_codes_for_the_desk(sim: CentralSim, tmp_path: Path) -> None:
    card = _card()
    server = _serve(tmp_path, "--central", str(_config(sim, tmp_path)))
    try:
        client = UnixClient(tmp_path / "api.sock")
        good = client.call({"function": "verifyECode",
                            "code": issue_code(sim.store, card.card_number)})
        assert good["code"] == 0, good
        assert good["data"] == "ours|accepted|normal|" and good["ecode_kind"] == "ours"
        _set(sim, CardStatus.CANCELLED)
        void = client.call({"function": "verifyECode",
                            "code": issue_code(sim.store, card.card_number)})
        assert void["code"] == StatusCode.ECODE_REFUSED and void["card_status"] == "cancelled"
        garbage = client.call({"function": "verifyECode", "code": "hello"})
        assert garbage["code"] == StatusCode.ECODE_REFUSED
        assert garbage["ecode_reason"] == "unknown_kind"
        missing = client.call({"function": "verifyECode"})
        assert missing["code"] == -23
        client.close()
    finally:
        _stop(server)


def test_sscard_verify_recognises_the_profiles_shapes(
        sim: CentralSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI takes a profile's [[ecode.shapes]] (issue 22.1) and says why in both
    languages."""
    profile = tmp_path / "bus.toml"
    text = Path("profiles/bus-validator.toml").read_text(encoding="utf-8")
    profile.write_text(text.replace("\n[journal]", '\n[[ecode.shapes]]\nkind = "national"\n'
                                    'pattern = "ESSC[0-9A-F]{32,128}"\n\n[journal]'),
                       encoding="utf-8")
    code = issue_opaque_code(sim.store, _card().card_number, CodeKind.NATIONAL)
    config = str(_config(sim, tmp_path))
    assert cli_main(["verify", code, "--central", config, "--profile", str(profile)]) == 0
    assert "ACCEPTED" in capsys.readouterr().out
    assert cli_main(["verify", code, "--central", config]) == 16     # no shape: unknown
    out = capsys.readouterr().out
    assert "unknown_kind" in out
    assert "无法识别此类二维码 / This kind of code is not recognised" in out
