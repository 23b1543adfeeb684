"""The local API's card path through real pcscd + vpcd, and the two-step with the
central simulator's HSM (a real subprocess, signed HTTP on 127.0.0.1).

User card in slot 0 ("Virtual PCD 00 00"), PSAM in slot 1 ("Virtual PCD 00 01").
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.pcscd_runner import VPCD_READER_0, VPCD_READER_1
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.virtual_psam import full_psam
from sscard_hardware_sim.vpcd_link import VpcdLink

from sscard_terminal.apdu.transport import CardTransport
from sscard_terminal.cards.authentication.chain import ModuleChain, find_authenticator
from sscard_terminal.cards.authentication.context import ReadAuthenticator
from sscard_terminal.cards.authentication.hsm import HSM_READ_AUTH_PATH
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.pcsc import wait_for_card
from sscard_terminal.local_api import CardReaderService, CardSettings
from sscard_terminal.sdk import open_card
from sscard_terminal.terminal.psam_discovery import find_psam
from tests.test_local_api import DEVICE, TERMINAL, ApiHarness, UnixClient, WsClient, wrong_key

pytestmark = pytest.mark.pcsc

Insert = Callable[..., VpcdLink]


def _service(authenticator: ReadAuthenticator | None) -> CardReaderService:
    def opener(deadline: Deadline) -> CardTransport:
        return open_card(VPCD_READER_0, deadline)

    return CardReaderService(opener, authenticator=authenticator, settings=CardSettings(
        terminal_number=TERMINAL, device_number=DEVICE))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[[ReadAuthenticator | None], ApiHarness]]:
    harnesses: list[ApiHarness] = []

    def start(authenticator: ReadAuthenticator | None) -> ApiHarness:
        harness = ApiHarness(_service(authenticator), tmp_path,
                             name=f"api{len(harnesses)}.sock")
        harnesses.append(harness)
        return harness

    yield start
    for harness in harnesses:
        harness.close()


def _psam_chain() -> ModuleChain:
    psam = find_psam(psam_reader=wait_for_card(VPCD_READER_1, Deadline.after(5)),
                     exclude_reader=VPCD_READER_0)
    chain = find_authenticator(psam_transport=psam)
    assert isinstance(chain, ModuleChain)
    return chain


def _one_step_with_psam(serve: Callable[[ReadAuthenticator | None], ApiHarness]) -> str:
    with _psam_chain() as chain:
        client = UnixClient(serve(chain).socket_path)
        answer = client.call({"function": "iReadCardBas", "iType": 3})
        client.close()
    assert answer["code"] == 0, answer
    text: str = answer["data"]
    return text


@pytest.mark.parametrize("holder", ["gen2-adult", "gen3-adult"])
def test_read_basic_through_pcscd(vpcd_slot: Insert, serve: Callable[..., ApiHarness],
                                  holder: str) -> None:
    card = VirtualCard.from_holder(holder)
    vpcd_slot(card, slot=0)
    vpcd_slot(full_psam(), slot=1)
    wait_for_card(VPCD_READER_0, Deadline.after(5))
    fields = _one_step_with_psam(serve).split("|")
    idcode = card.ef05[0][1].hex().upper()
    assert len(fields) == 12 and fields[3] == idcode and fields[4]
    assert fields[9] == TERMINAL and fields[10] == DEVICE


def _hsm_key(central_sim: CentralSim, step1: str) -> str:
    """The HIS's part: hand the step-1 string to the central's HSM, get the key string."""
    fields = step1.split("|")
    client = central_sim.make_client()
    try:
        answer = client.post_json(HSM_READ_AUTH_PATH, {
            "region": fields[0], "atr": fields[1], "algorithm": int(fields[2], 16),
            "card_identification_code": fields[3], "internal_random": fields[5],
            "external_challenge": fields[7]}, Deadline.after(10))
    finally:
        client.close()
    key: str = answer["key"]
    return key + "|"


def test_no_psam_then_hsm_two_step_gives_the_one_step_string(
        vpcd_slot: Insert, serve: Callable[..., ApiHarness], central_sim: CentralSim) -> None:
    vpcd_slot(VirtualCard.from_holder("gen3-adult"), slot=0)
    vpcd_slot(full_psam(), slot=1)
    wait_for_card(VPCD_READER_0, Deadline.after(5))
    one_step = _one_step_with_psam(serve)

    # The same card on a terminal without a PSAM, as HIS software drives it.
    harness = serve(None)
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "iReadCardBas", "iType": 3})["code"] == -2201
    step1 = client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    assert step1["code"] == 0
    key = _hsm_key(central_sim, step1["data"])
    step2 = client.call({"function": "iReadCardBas_HSM_Step2", "key": key})
    assert step2["code"] == 0 and step2["data"] == one_step

    # A wrong key string: -25, over the WebSocket this time.
    ws = WsClient(harness.port, path=f"/?token={harness.token}")
    step1 = ws.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    assert step1["code"] == 0
    bad = ws.call({"function": "iReadCardBas_HSM_Step2",
                   "key": wrong_key(_hsm_key(central_sim, step1["data"]))})
    assert bad["code"] == -25 and bad["data"] == ""
    ws.close()
    # The card was released: the next client reads it again at once.
    assert client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})["code"] == 0
    client.close()
