"""Reads through the real stack: pcscd + vpcd + our virtual cards, via PcscTransport."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sscard_hardware_sim.pcscd_runner import VPCD_READER_0, VPCD_READER_1, wait_card_state
from sscard_hardware_sim.sim_authenticator import MasterKeyAuthenticator
from sscard_hardware_sim.virtual_card import Faults, VirtualCard, holder_names
from sscard_hardware_sim.vpcd_link import VpcdLink

from sscard_terminal.apdu.transport import CardInterface
from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.pcsc import (
    CardWaiter,
    PcscTransport,
    list_readers,
    wait_for_card,
)
from sscard_terminal.drivers.sim import open_sim_reader
from sscard_terminal.errors import (
    CardRemovedError,
    ForgedCardError,
    MalformedResponseError,
    NoCardError,
    NoReaderError,
    NotSocialSecurityCardError,
)

pytestmark = pytest.mark.pcsc

Insert = Callable[..., VpcdLink]


def _insert(vpcd_slot: Insert, name: str, faults: Faults | None = None) -> VpcdLink:
    link = vpcd_slot(VirtualCard.from_holder(name, faults))
    wait_card_state(VPCD_READER_0, True)
    return link


def _remove(link: VpcdLink) -> None:
    link.remove()
    wait_card_state(VPCD_READER_0, False)


@pytest.mark.parametrize("name", [n for n in holder_names()
                                  if n not in ("bank-only", "gen3-cloned")])
def test_every_holder_reads_the_same_through_pcscd_as_through_sim(
        vpcd_slot: Insert, name: str) -> None:
    link = _insert(vpcd_slot, name)
    try:
        with PcscTransport(VPCD_READER_0) as transport:
            info = read_card_info(transport, authenticator=MasterKeyAuthenticator())
            assert transport.atr == VirtualCard.from_holder(name).atr
        with open_sim_reader(f"sim:{name}") as sim:
            expected = read_card_info(sim, authenticator=MasterKeyAuthenticator())
        assert info.complete
        got = info.to_dict(unmask=True)
        want = expected.to_dict(unmask=True)
        assert got | {"reader": ""} == want | {"reader": ""}
        assert info.reader == VPCD_READER_0
    finally:
        _remove(link)


def test_contactless_pseudo_atr_is_detected_through_pcscd(vpcd_slot: Insert) -> None:
    link = _insert(vpcd_slot, "gen3-3des")
    try:
        with PcscTransport(VPCD_READER_0) as transport:
            assert transport.interface is CardInterface.CONTACTLESS
    finally:
        _remove(link)


def test_cloned_card_is_forged_through_pcscd(vpcd_slot: Insert) -> None:
    link = _insert(vpcd_slot, "gen3-cloned")
    try:
        with PcscTransport(VPCD_READER_0) as transport, pytest.raises(ForgedCardError):
            read_card_info(transport, authenticator=MasterKeyAuthenticator())
    finally:
        _remove(link)


def test_bank_card_is_not_a_social_security_card(vpcd_slot: Insert) -> None:
    link = _insert(vpcd_slot, "bank-only")
    try:
        with PcscTransport(VPCD_READER_0) as transport:
            with pytest.raises(NotSocialSecurityCardError):
                read_card_info(transport)
    finally:
        _remove(link)


@pytest.mark.parametrize("faults", [Faults(t0=True), Faults(delay=0.01)],
                         ids=["t0-61xx", "slow"])
def test_tolerated_faults_read_through_pcscd(vpcd_slot: Insert, faults: Faults) -> None:
    link = _insert(vpcd_slot, "gen2-adult", faults)
    try:
        with PcscTransport(VPCD_READER_0) as transport:
            assert read_card_info(transport).complete
    finally:
        _remove(link)


@pytest.mark.parametrize("name", ["gen2-adult", "gen3-adult"])
def test_a_t0_card_chaining_in_several_rounds_reads_whole_through_pcscd(
        vpcd_slot: Insert, name: str) -> None:
    """Issue 23: the virtual card handed everything out in one GET RESPONSE, so a
    processor keeping only the last chunk passed. Here each answer comes in 3-byte
    rounds (data plus 61 YY) through the real pcscd and vpcd; the read must equal the
    same card read at once."""
    kwargs = {"authenticator": MasterKeyAuthenticator()} if name.startswith("gen3") else {}
    expected = open_sim_reader(f"sim:{name}")
    try:
        plain = read_card_info(expected, **kwargs)  # type: ignore[arg-type]
    finally:
        expected.close()
    link = _insert(vpcd_slot, name, Faults(t0=True, t0_chunk=3))
    try:
        with PcscTransport(VPCD_READER_0) as transport:
            chained = read_card_info(transport, **kwargs)  # type: ignore[arg-type]
    finally:
        _remove(link)
    assert chained.complete
    assert chained.to_dict(unmask=True) == plain.to_dict(unmask=True) | {"reader": chained.reader}


def test_card_pulled_mid_read_raises_removed(vpcd_slot: Insert) -> None:
    link = _insert(vpcd_slot, "gen2-adult", Faults(pull_after=6))
    try:
        with PcscTransport(VPCD_READER_0) as transport, pytest.raises(CardRemovedError):
            read_card_info(transport)
    finally:
        _remove(link)


def test_hostile_record_through_pcscd_is_malformed(vpcd_slot: Insert) -> None:
    link = _insert(vpcd_slot, "gen2-adult", Faults(truncated_tag=0x08))
    try:
        with PcscTransport(VPCD_READER_0) as transport, \
                pytest.raises(MalformedResponseError) as caught:
            read_card_info(transport)
        assert caught.value.file == "EF06"
    finally:
        _remove(link)


def test_readers_are_listed_with_state(vpcd_slot: Insert) -> None:
    names = {r.name: r for r in list_readers()}
    assert not names[VPCD_READER_0].card_present
    link = _insert(vpcd_slot, "gen2-adult")
    try:
        reader = {r.name: r for r in list_readers()}[VPCD_READER_0]
        assert reader.card_present and reader.atr == link.device.atr
        assert reader.state == "card present"
    finally:
        _remove(link)


def test_wait_for_card_times_out_with_no_card(pcscd: object) -> None:
    with pytest.raises(NoCardError):
        wait_for_card(VPCD_READER_0, Deadline.after(0.3))


def test_unknown_reader_lists_what_was_found(pcscd: object) -> None:
    with pytest.raises(NoReaderError) as caught:
        wait_for_card("No Such Reader", Deadline.after(0.3))
    assert VPCD_READER_0 in caught.value.found


def test_wait_for_card_returns_when_a_card_arrives(vpcd_slot: Insert) -> None:
    card = VirtualCard.from_holder("gen2-adult")
    timer = threading.Timer(0.3, lambda: vpcd_slot(card))
    timer.start()
    try:
        assert wait_for_card(None, Deadline.after(5.0)) == VPCD_READER_0
    finally:
        timer.join()
        wait_card_state(VPCD_READER_0, True)


def test_a_card_wait_is_cancelled_from_another_thread_at_once(pcscd: object) -> None:
    waiter = CardWaiter()
    timer = threading.Timer(0.2, waiter.cancel)
    timer.start()
    started = time.monotonic()
    with pytest.raises(NoCardError, match="cancelled"):
        waiter.wait(VPCD_READER_0, Deadline.after(10.0))
    assert time.monotonic() - started < 2.0
    timer.join()


def test_any_reader_wait_skips_excluded_slots(vpcd_slot: Insert) -> None:
    vpcd_slot(VirtualCard.from_holder("gen2-adult"), slot=1)
    wait_card_state(VPCD_READER_1, True)
    with pytest.raises(NoCardError):
        wait_for_card(None, Deadline.after(0.3), exclude=(VPCD_READER_1,))
    assert wait_for_card(None, Deadline.after(1.0)) == VPCD_READER_1


def test_vpcd_link_leaves_no_thread_after_remove(pcscd: object) -> None:
    link = VpcdLink(VirtualCard.from_holder("gen2-adult"))
    link.insert()
    wait_card_state(VPCD_READER_0, True)
    assert any(t.name.startswith("vpcd-link") for t in threading.enumerate())
    link.close()
    wait_card_state(VPCD_READER_0, False)
    assert not any(t.name.startswith("vpcd-link") for t in threading.enumerate())
