"""Identity presentations (issue 19.2): at an identity desk the identity goes to the local
API caller that asked and to nobody else (not the journal in clear, the display, the logs or
events); the journal records that it was released; a complete authenticated read is needed;
offline no identity is released where the profile says so. Through the local API entry point
(a real process on a Unix socket) and the composition root, with the central simulator."""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_lifecycle import set_status
from sscard_hardware_sim.central_store import virtual_cards

from sscard_terminal.central.client import TerminalConfig
from sscard_terminal.central.models import CardStatus
from sscard_terminal.deadline import Deadline
from sscard_terminal.local_api.status_codes import StatusCode
from sscard_terminal.profiles import load_profile, parse_profile
from sscard_terminal.terminal.root import TerminalRoot
from sscard_terminal.terminal.settings import KeySource, TerminalSettings
from tests.test_local_api import UnixClient

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"


def _holder(key: str) -> Any:
    return next(c for c in virtual_cards() if c.key == key)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CentralSim]:
    central = CentralSim(tmp_path / "central.db")
    yield central
    central.stop()


def _key(tmp_path: Path) -> Path:
    key = tmp_path / "journal.key"
    if not key.exists():
        key.write_bytes(secrets.token_bytes(32))
        key.chmod(0o600)
    return key


def _config(sim: CentralSim, tmp_path: Path) -> Path:
    path = tmp_path / "terminal.json"
    path.write_text(json.dumps({"base_url": sim.base_url, "terminal_id": sim.terminal_id,
                                "secret": sim.secret,
                                "central_public_key": sim.central_public_key}))
    path.chmod(0o600)
    return path


def _serve(tmp_path: Path, sim: CentralSim, holder: str,
           profile: str = "hotel-registration") -> subprocess.Popen[str]:
    path = tmp_path / "api.sock"
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    server = subprocess.Popen(
        [sys.executable, "-m", "sscard_terminal.local_api", "--socket", str(path),
         "--reader", f"sim:{holder}", "--central", str(_config(sim, tmp_path)),
         "--profile", profile, "--state-dir", str(state), "--journal-key", str(_key(tmp_path))],
        stderr=subprocess.PIPE, text=True)
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


def _journal(tmp_path: Path, sim: CentralSim) -> list[tuple[str, dict[str, Any]]]:
    settings = TerminalSettings(terminal_id=sim.terminal_id, profile=load_profile("identity-desk"),
                                state_dir=tmp_path / "state",
                                journal_key=KeySource(file=_key(tmp_path)))
    with TerminalRoot(settings) as root:
        return [(r.kind, dict(r.payload)) for r in root.journal().records()]


def test_a_complete_authenticated_identity_goes_to_the_caller_and_only_there(
        tmp_path: Path, sim: CentralSim) -> None:
    holder = _holder("gen3-adult")
    server = _serve(tmp_path, sim, "gen3-adult")
    try:
        client = UnixClient(tmp_path / "api.sock")
        answer = client.call({"function": "readIdentity", "iType": 3})
        client.close()
    finally:
        log = _stop(server)
    assert answer["code"] == 0, answer
    name, number = answer["data"].split("|")[:2]
    assert (name, number) == (holder.name, holder.id_number)
    assert answer["identity_release"] == "complete" and answer["reason"] == "accepted"
    records = _journal(tmp_path, sim)
    assert [kind for kind, _ in records] == ["card_tap", "identity_released"]
    released = records[1][1]
    assert released["level"] == "complete" and released["lane"] == "desk"
    assert released["caller"].startswith("unix:") and released["card_ref"]
    assert released["authentication"] == "hsm"
    assert released["transaction_id"] == answer["transaction_id"]
    for _, payload in records:          # the journal in clear: no identity
        assert holder.name not in repr(payload) and holder.id_number not in repr(payload)
    assert holder.name not in log and holder.id_number not in log
    assert "identity released (complete) to unix" in log


def test_an_unauthenticated_card_releases_no_identity(tmp_path: Path, sim: CentralSim) -> None:
    server = _serve(tmp_path, sim, "gen2-adult")
    try:
        client = UnixClient(tmp_path / "api.sock")
        answer = client.call({"function": "readIdentity", "iType": 3})
        client.close()
    finally:
        _stop(server)
    assert answer["code"] == StatusCode.IDENTITY_NOT_AUTHENTICATED and answer["data"] == ""
    assert answer["identity_release"] is None
    assert [kind for kind, _ in _journal(tmp_path, sim)] == ["card_tap"]


def test_a_lost_card_releases_no_identity(tmp_path: Path, sim: CentralSim) -> None:
    set_status(sim.store, _holder("gen3-adult").card_number, CardStatus.TEMPORARY_LOSS,
               dt.date.today())
    server = _serve(tmp_path, sim, "gen3-adult")
    try:
        client = UnixClient(tmp_path / "api.sock")
        answer = client.call({"function": "readIdentity", "iType": 3})
        client.close()
    finally:
        _stop(server)
    assert answer["code"] == StatusCode.CARD_LOST and answer["data"] == ""
    assert answer["message_en"] == "This card is reported lost"


def _desk_profile(offline: str) -> Any:
    """An identity desk that takes generation 2 cards (no module here) and, to show that
    the identity rule is what refuses, accepts offline in general."""
    text = (PROFILE_DIR / "identity-desk.toml").read_text(encoding="utf-8")
    for old, new in (('policy = "refuse"', 'policy = "accept"'),
                     ("max_decisions = 0", "max_decisions = 100"),
                     ('unauthenticated = "never"', 'unauthenticated = "older_generations"'),
                     ("require_authenticated = true", "require_authenticated = false"),
                     ("offline = false ", f"offline = {offline} ")):
        assert old in text, old
        text = text.replace(old, new)
    return parse_profile(text, source="desk.toml")


@pytest.mark.parametrize("offline", ["false", "true"])
def test_offline_a_desk_that_forbids_it_releases_no_identity_even_if_the_denylist_is_silent(
        tmp_path: Path, sim: CentralSim, offline: str,
        caplog: pytest.LogCaptureFixture) -> None:
    holder = _holder("gen2-adult")
    settings = TerminalSettings(
        terminal_id=sim.terminal_id, profile=_desk_profile(offline),
        central=TerminalConfig(sim.base_url, sim.terminal_id, sim.secret,
                               central_public_key=sim.central_public_key),
        state_dir=tmp_path, journal_key=KeySource(file=_key(tmp_path)),
        security_modules=False)
    caplog.set_level(logging.DEBUG)
    with TerminalRoot(settings) as root:
        root.denylist().refresh(root.central(), deadline=Deadline.after(3))  # type: ignore[arg-type]
        # Lost since the denylist was fetched: offline, nothing on this terminal knows it.
        set_status(sim.store, holder.card_number, CardStatus.TEMPORARY_LOSS, dt.date.today())
        sim.set_faults(mode="reset")
        with root.open_card(Deadline.after(2), "sim:gen2-adult") as transport:
            shown = root.presenter().present_identity(transport, arrived_at=time.monotonic(),
                                                      caller="unix:1")
        event = repr(shown.presentation.event())
    assert not shown.presentation.online
    if offline == "false":
        assert shown.identity is None
        assert shown.presentation.reason == "identity_offline_not_allowed"
    else:          # the profile allows it: the lost card passes, which is why it is false
        assert shown.identity is not None and shown.presentation.accepted
    for text in (event, caplog.text):
        assert holder.name not in text and holder.id_number not in text


def test_a_masked_release_masks(tmp_path: Path, sim: CentralSim) -> None:
    holder = _holder("gen3-adult")
    settings = TerminalSettings(
        terminal_id=sim.terminal_id, profile=load_profile("scenic-identity-check"),
        central=TerminalConfig(sim.base_url, sim.terminal_id, sim.secret,
                               central_public_key=sim.central_public_key),
        state_dir=tmp_path, journal_key=KeySource(file=_key(tmp_path)))
    with TerminalRoot(settings) as root:
        with root.open_card(Deadline.after(2), "sim:gen3-adult") as transport:
            shown = root.presenter().present_identity(transport, arrived_at=time.monotonic(),
                                                      caller="ws:3")
        kinds = [r.kind for r in root.journal().records()]
    assert shown.identity is not None and shown.identity.level.value == "masked"
    unified = shown.identity.to_unified()
    assert holder.name not in unified and holder.id_number not in unified
    assert unified.split("|")[1] == holder.id_number[:4] + "*" * 10 + holder.id_number[-4:]
    assert kinds == ["card_tap", "identity_released"]
    assert holder.id_number not in repr(shown)
