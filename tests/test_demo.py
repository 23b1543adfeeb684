"""The README's main job runs end to end: taps through pcscd, e-codes through a pty
scanner, online and offline decisions, and the journal reaching the central once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sscard_hardware_sim.central_store import virtual_cards
from sscard_hardware_sim.pcscd_runner import PcscdRunner

pytestmark = pytest.mark.timeout(240)


def test_demo_runs_end_to_end(pcscd: PcscdRunner, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sscard_hardware_sim.demo", "--json", "--use-running-pcscd",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=200, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    by_note = {(e["credential"], e["note"]): e for e in events if "credential" in e}

    first = by_note[("gen3-adult", "")]
    assert first["outcome"] == "accept" and first["online"]
    assert "psam:" in first["holder"] and "3303**********0037" in first["holder"]
    assert by_note[("expired", "")]["reason"] == "card_expired"
    # Stable reason codes, the human text in its own field (issue 21, point 10).
    forged = by_note[("gen3-cloned", "keys not derived from the master keys: forged")]
    assert forged["reason"] == "card_forged" and "forged" in forged["message"]
    bank = by_note[("bank-only", "no social security application")]
    assert bank["reason"] == "not_social_security_card"
    # Every line is one JSON object: nothing else on stdout.
    assert all(line.startswith("{") for line in done.stdout.splitlines() if line.strip())
    lost_tap = by_note[("gen3-child", "temporary loss reported")]
    lost_code = by_note[("gen3-child", "e-code of the card reported lost")]
    assert lost_tap["reason"] == lost_code["reason"] == "card_lost"
    assert by_note[("other-province", "card cancelled: its e-code is void too")]["reason"] == \
        "card_void"
    senior = by_note[("demo senior", "e-code, senior concession")]
    assert senior["outcome"] == "accept" and senior["concession"] == "senior"
    assert by_note[("demo senior", "the same code again: replay")]["outcome"] == "refuse"
    offline = by_note[("gen3-rare-name", "rare-character name, decided offline")]
    assert offline["outcome"] == "accept" and not offline["online"]
    assert by_note[("gen3-child", "lost card, on the local denylist")]["reason"] == "card_lost"
    # Personal data appears only masked, in the output and in the logs.
    for holder in virtual_cards():
        for secret in (holder.id_number, holder.name, holder.card_number):
            assert secret not in done.stdout and secret not in done.stderr, holder.key
