"""``sscard verify`` and ``sscard scan`` end to end: real simulator over HTTP, real pty."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import pytest
import zxingcpp
from sscard_hardware_sim.central_ecodes import handle_verify, issue_code, issue_opaque_code
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS, CentralStore
from sscard_hardware_sim.virtual_scanner import VirtualScanner

from sscard_terminal.cli.main import main
from sscard_terminal.ecode import CodeKind

pytestmark = pytest.mark.timeout(120)


def _config(sim: CentralSim, tmp_path: Path) -> Path:
    path = tmp_path / "terminal.json"
    path.write_text(json.dumps({"base_url": sim.base_url, "terminal_id": sim.terminal_id,
                                "secret": sim.secret,
                                "central_public_key": sim.central_public_key}))
    return path


def _sscard(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sscard_terminal.cli.main", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_verify_accepts_online_then_offline_from_the_cached_trust_list(
        central_sim: CentralSim, tmp_path: Path) -> None:
    config, trust = _config(central_sim, tmp_path), tmp_path / "trust.json"
    normal = DEMO_CARDS["normal"].card_number
    done = _sscard("verify", issue_code(central_sim.store, normal), "--central", str(config),
                   "--trust-list", str(trust))
    assert done.returncode == 0, done.stderr
    assert "ACCEPTED (accepted)" in done.stdout and "verified online" in done.stdout
    assert "card status: normal" in done.stdout and trust.exists()
    code = issue_code(central_sim.store, normal, alg="EdDSA")
    offline = _sscard("verify", code, "--trust-list", str(trust),
                      # "=": a key whose base64url text starts with "-" is no option
                      f"--central-key={central_sim.central_public_key}")
    assert offline.returncode == 0 and "verified offline" in offline.stdout
    # The file is trusted only as the central signed it: no key, no trust.
    keyless = _sscard("verify", code, "--trust-list", str(trust))
    assert keyless.returncode == 16 and "REFUSED (no_trust_list)" in keyless.stdout
    # One message for one refusal, on stdout with the verdict (issue 21, point 7).
    assert "--central-key" in keyless.stdout and keyless.stderr == ""


def test_verify_refuses_a_cancelled_cards_code_with_exit_16(
        central_sim: CentralSim, tmp_path: Path) -> None:
    code = issue_code(central_sim.store, DEMO_CARDS["cancelled"].card_number)
    done = _sscard("verify", code, "--central", str(_config(central_sim, tmp_path)))
    assert done.returncode == 16
    assert "REFUSED (card_not_usable)" in done.stdout and "cancelled" in done.stdout
    assert code not in done.stdout  # shortened: a code is a bearer credential


def test_verify_without_trust_list_or_central_says_what_is_missing(tmp_path: Path) -> None:
    done = _sscard("verify", "SC1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5")
    assert done.returncode == 16
    assert "REFUSED" in done.stdout
    garbage = _sscard("verify", "hello world")
    assert garbage.returncode == 16 and "unknown_kind" in garbage.stdout


def test_verify_hospital_evoucher_online_and_deferred_when_central_down(
        central_sim: CentralSim, tmp_path: Path) -> None:
    config = _config(central_sim, tmp_path)
    code = issue_opaque_code(central_sim.store, DEMO_CARDS["normal"].card_number,
                             CodeKind.EVOUCHER)
    done = _sscard("verify", code, "--central", str(config), "--sim-shapes")
    assert done.returncode == 0 and "kind: evoucher; verified online" in done.stdout
    central_sim.stop()
    down = _sscard("verify", code, "--central", str(config), "--sim-shapes", "--opaque",
                   "defer", "--timeout", "1")
    assert down.returncode == 16 and "DEFERRED (deferred)" in down.stdout


def test_scan_reads_codes_from_a_serial_scanner_and_verifies_each(
        central_sim: CentralSim, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    link = tmp_path / "by-id" / "usb-Virtual_QR_Scanner-if00"
    config = _config(central_sim, tmp_path)
    good = issue_code(central_sim.store, DEMO_CARDS["normal"].card_number)
    bad = issue_code(central_sim.store, DEMO_CARDS["suspended"].card_number)
    exit_codes: list[int] = []
    with VirtualScanner(link, terminator="CRLF") as device:
        runner = threading.Thread(target=lambda: exit_codes.append(main(
            ["scan", "--port", str(link), "--count", "3", "--seconds", "20",
             "--central", str(config)])))
        runner.start()
        time.sleep(0.8)
        device.scan(good)
        device.scan(bad)
        time.sleep(2.5)  # past the scanner's 2 s repeat window: the replay cache decides
        device.scan(good)
        runner.join(30)
    assert exit_codes == [0]
    out = capsys.readouterr().out
    assert out.count("ACCEPTED") == 1
    assert "REFUSED (card_not_usable)" in out and "card status: suspended" in out
    assert "REFUSED (replayed)" in out
    assert "3 code(s) read" in out and good not in out


def test_central_sim_issue_code_prints_the_code_and_renders_a_readable_qr(
        tmp_path: Path) -> None:
    db, png = tmp_path / "central.db", tmp_path / "code.png"
    card = DEMO_CARDS["normal"].card_number
    done = _sscard("central-sim", "issue-code", card, "--db", str(db), "--png", str(png),
                   "--alg", "EdDSA")
    assert done.returncode == 0, done.stderr
    text = done.stdout.strip()
    assert text.startswith("SC1:")
    decoded = [r.text for r in zxingcpp.read_barcodes(cv2.imread(str(png)))]
    assert decoded == [text]
    store = CentralStore.open(db)
    try:
        status, answer = handle_verify(store, {"code": text}, {"identity_entitled": False})
        assert status == 200 and answer["accepted"] and answer["kind"] == "ours"
        assert answer["card"]["status"] == "normal" and "holder" not in answer["card"]
    finally:
        store.close()
    national = _sscard("central-sim", "issue-code", card, "--db", str(db), "--kind",
                       "national")
    assert national.returncode == 0 and national.stdout.startswith("ESSC")
    missing = _sscard("central-sim", "issue-code", "D9999999X", "--db", str(db))
    assert missing.returncode != 0


@pytest.mark.parametrize("skew", ["nan", "inf", "-5"])
def test_verify_refuses_a_skew_that_is_not_a_finite_tolerance(
        skew: str, capsys: pytest.CaptureFixture[str]) -> None:
    """``--skew nan`` used to switch the validity window off (every expired code passed);
    now it is a usage error, before any code is judged."""
    with pytest.raises(SystemExit) as exited:
        main(["verify", "SC1:00", "--skew", skew])
    assert exited.value.code == 2
    assert "--skew" in capsys.readouterr().err
