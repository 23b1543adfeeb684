"""The public SDK: read_card() with sim: and with pcscd, and the exported API."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

import pytest
from sscard_hardware_sim.pcscd_runner import (
    VPCD_READER_0,
    VPCD_READER_1,
    PcscdRunner,
    wait_card_state,
)
from sscard_hardware_sim.sim_authenticator import MasterKeyAuthenticator
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.virtual_psam import full_psam
from sscard_hardware_sim.vpcd_link import VpcdLink

import sscard_terminal
from sscard_terminal import CardInfo, format_basic_info, read_card
from sscard_terminal.cards.authentication.chain import find_authenticator
from sscard_terminal.errors import NoCardError
from sscard_terminal.terminal.psam_discovery import find_psam


def test_sdk_exports_read_card_cardinfo_and_formatter() -> None:
    for name in ("read_card", "CardInfo", "format_basic_info"):
        assert name in sscard_terminal.__all__


def test_importing_the_sdk_does_not_load_pyscard() -> None:
    code = "import sys, sscard_terminal; sscard_terminal.read_card('sim:gen2-adult'); " \
           "print('smartcard' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


_WITHOUT_POSIX = """
import sys
BLOCK = {"fcntl", "termios", "grp", "pwd", "resource", "systemd", "tty", "pty"}
class Windows:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCK:
            raise ImportError(name + " does not exist on Windows")
for name in BLOCK:
    sys.modules.pop(name, None)
sys.meta_path.insert(0, Windows())
import sscard_terminal
from sscard_terminal.cli.main import main
assert sscard_terminal.read_card("sim:gen2-adult").complete
sys.exit(main(["read", "--reader", "sim:gen2-adult", "--json"]))
"""


def test_the_sdk_and_the_cli_read_path_need_no_linux_only_module() -> None:
    """Hospital desks run Windows, where pyscard speaks winscard: the SDK and ``sscard
    read`` must not import fcntl, termios, systemd and such on the way."""
    done = subprocess.run([sys.executable, "-c", _WITHOUT_POSIX], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"card_number"' in done.stdout


def test_read_card_from_a_sim_reader() -> None:
    info = read_card("sim:gen3-adult", authenticator=MasterKeyAuthenticator())
    assert isinstance(info, CardInfo) and info.complete and info.name == "林晓明"
    assert format_basic_info(info).split("|")[4] == "林晓明"


@pytest.mark.pcsc
def test_read_card_waits_for_a_card_in_any_reader(
        vpcd_slot: Callable[..., VpcdLink]) -> None:
    timer = threading.Timer(0.3, lambda: vpcd_slot(VirtualCard.from_holder("gen1-adult")))
    timer.start()
    try:
        info = read_card(None, timeout=5.0)
    finally:
        timer.join()
    assert info.reader == VPCD_READER_0 and info.generation == 1 and info.complete


@pytest.mark.pcsc
def test_read_card_times_out_without_a_card(pcscd: PcscdRunner) -> None:
    with pytest.raises(NoCardError):
        read_card(VPCD_READER_0, timeout=0.3)


def _psam_first_card_second(vpcd_slot: Callable[..., VpcdLink], holder: str) -> None:
    """The PSAM in the FIRST reader, the user's card in the second."""
    vpcd_slot(full_psam(), slot=0)
    vpcd_slot(VirtualCard.from_holder(holder), slot=1)
    wait_card_state(VPCD_READER_0, True)
    wait_card_state(VPCD_READER_1, True)


@pytest.mark.pcsc
def test_read_card_never_takes_an_excluded_reader(
        vpcd_slot: Callable[..., VpcdLink]) -> None:
    _psam_first_card_second(vpcd_slot, "gen1-adult")
    info = read_card(None, timeout=5.0, exclude_readers=[VPCD_READER_0])
    assert info.reader == VPCD_READER_1 and info.generation == 1 and info.complete


@pytest.mark.pcsc
def test_read_card_excludes_the_psam_reader_of_the_module_chain(
        vpcd_slot: Callable[..., VpcdLink]) -> None:
    _psam_first_card_second(vpcd_slot, "gen3-adult")
    chain = find_authenticator(psam_transport=find_psam(exclude_reader=VPCD_READER_1))
    assert chain is not None
    with chain:
        assert chain.psam_reader == VPCD_READER_0
        info = read_card(None, timeout=5.0, authenticator=chain)
    assert info.reader == VPCD_READER_1 and info.complete
    assert info.authenticated_by == f"psam:{VPCD_READER_0}"
