"""Foreign holders (issue 22.5, Hainan §5): an English name split across the name field and
its extension keeps its space; a short foreign social security number masks to no more than
a third; a virtual foreign holder's card reads, masks and decides end to end."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.sim_authenticator import MasterKeyAuthenticator
from sscard_hardware_sim.virtual_card import VirtualCard

from sscard_terminal.cards.ssse import join_name, read_card_info
from sscard_terminal.cards.unified import format_basic_info
from sscard_terminal.central.client import TerminalConfig
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.sim import SimTransport
from sscard_terminal.privacy import mask_id_number
from sscard_terminal.profiles import load_profile
from sscard_terminal.terminal.root import TerminalRoot
from sscard_terminal.terminal.settings import KeySource, TerminalSettings

NAME = "ALEXANDER JONATHAN SMITHERSON WILLIAMS"
NUMBER = "GBR330385061201"


def _shown(masked: str) -> int:
    return sum(1 for c in masked if c != "*")


def test_an_english_name_split_at_a_space_keeps_it() -> None:
    field = NAME[:30].encode("ascii")
    assert field.endswith(b" ")
    assert join_name(field, NAME[30:].encode("ascii").ljust(20, b"\x00")) == NAME
    # A short name: padding dropped, no extension.
    assert join_name(b"SMITH".ljust(30, b" "), b"\x00" * 20) == "SMITH"
    # A long Chinese name whose character breaks across the two fields stays whole.
    long_name = "欧阳" + "云" * 14 + "飞"
    raw = long_name.encode("gb18030")
    assert join_name(raw[:30], raw[30:].ljust(20, b"\x00")) == long_name


@pytest.mark.parametrize("number", [NUMBER, "ABC1234567", "123456789012345", "1234567"])
def test_a_short_foreign_number_shows_no_more_than_a_third(number: str) -> None:
    masked = mask_id_number(number)
    assert len(masked) == len(number)
    assert _shown(masked) * 3 <= len(number)
    assert number not in masked


def test_a_citizen_id_number_masks_as_before() -> None:
    assert mask_id_number("330302198506120031") == "3303**********0031"


def test_the_foreign_holders_card_reads_and_masks() -> None:
    info = read_card_info(SimTransport(VirtualCard.from_holder("foreign-holder")),
                          authenticator=MasterKeyAuthenticator())
    assert info.complete and info.name == NAME
    assert info.social_security_number == NUMBER
    assert info.id_number_check.valid is None      # no GB 11643 for a foreign number
    masked = info.to_dict()
    assert NUMBER not in repr(masked) and NAME not in repr(masked)
    assert _shown(masked["social_security_number"]) * 3 <= len(NUMBER)
    assert NUMBER not in repr(info) and "JONATHAN" not in repr(info)
    unified = format_basic_info(info)
    assert isinstance(unified, str) and NAME in unified.split("|")


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CentralSim]:
    central = CentralSim(tmp_path / "central.db")
    yield central
    central.stop()


def test_the_foreign_holders_card_decides_end_to_end(tmp_path: Path, sim: CentralSim) -> None:
    key = tmp_path / "journal.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    settings = TerminalSettings(
        terminal_id=sim.terminal_id, profile=load_profile("hospital-desk"),
        central=TerminalConfig(sim.base_url, sim.terminal_id, sim.secret,
                               central_public_key=sim.central_public_key),
        state_dir=tmp_path, journal_key=KeySource(file=key))
    with TerminalRoot(settings) as root:
        with root.open_card(Deadline.after(2.0), "sim:foreign-holder") as transport:
            shown = root.presenter().present_card(transport, arrived_at=time.monotonic())
        assert shown.accepted and shown.online, shown
        assert shown.decision is not None and shown.decision.authentication == "hsm"
        assert shown.card is not None and shown.card.name == NAME
        assert NUMBER not in shown.holder and "JONATHAN" not in shown.holder
        assert NUMBER not in repr(shown.event()) and NAME not in repr(shown.event())
        records = [repr(dict(r.payload)) for r in root.journal().records()]
        assert len(records) == 1
        assert NUMBER not in records[0] and "JONATHAN" not in records[0]
