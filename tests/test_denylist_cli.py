"""``sscard denylist``: the daemon's list, as a technician sees it, against the real
central simulator over HTTP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.models import card_ref
from sscard_terminal.cli.main import main


def _ref(key: str) -> str:
    return card_ref(bytes.fromhex(DEMO_CARDS[key].identification_code))


def test_status_refresh_and_check(central_sim: CentralSim, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    config = tmp_path / "central.json"
    config.write_text(json.dumps({
        "base_url": central_sim.base_url, "terminal_id": central_sim.terminal_id,
        "secret": central_sim.secret, "central_public_key": central_sim.central_public_key}))
    os.chmod(config, 0o600)

    assert main(["denylist", "status", "--state-dir", str(state), "--json"]) == 0
    empty = json.loads(capsys.readouterr().out)
    assert empty["version"] == 0 and empty["entries"] == 0 and empty["age_hours"] is None

    assert main(["denylist", "refresh", "--central", str(config),
                 "--state-dir", str(state)]) == 0
    assert "denylist version 0 ->" in capsys.readouterr().out

    assert main(["denylist", "status", "--state-dir", str(state), "--json"]) == 0
    installed = json.loads(capsys.readouterr().out)
    assert installed["version"] > 0 and installed["entries"] >= 4
    assert installed["age_hours"] is not None and installed["age_hours"] < 0.1

    assert main(["denylist", "check", _ref("formal_loss"), "--state-dir", str(state),
                 "--json"]) == 0
    lost = json.loads(capsys.readouterr().out)
    assert lost["listed"] and lost["status"] == "formal_loss"
    assert main(["denylist", "check", _ref("normal"), "--state-dir", str(state)]) == 0
    assert "not on the denylist" in capsys.readouterr().out
