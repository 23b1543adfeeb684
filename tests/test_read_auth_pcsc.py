"""Generation 3 read authentication through real pcscd + vpcd.

User card in slot 0 ("Virtual PCD 00 00"), PSAM in slot 1 ("Virtual PCD 00 01").
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.device import VirtualDevice
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.virtual_psam import full_psam, psam_without_read_key, psam_without_sm4
from sscard_hardware_sim.vpcd_link import VpcdLink

from sscard_terminal.cards.authentication.chain import ModuleChain, find_authenticator
from sscard_terminal.cards.authentication.psam import ForgeryRecord, PsamAuthenticator
from sscard_terminal.cards.pin import verify_pin
from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.cli.main import main
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.pcsc import PcscTransport, wait_for_card
from sscard_terminal.drivers.sim import SimTransport
from sscard_terminal.errors import ForgedCardError, PinError, SecurityModuleUnavailableError
from sscard_terminal.terminal.psam_discovery import find_psam

Insert = Callable[..., VpcdLink]


def _reader(slot: int) -> str:
    return wait_for_card(f"Virtual PCD 00 0{slot}", Deadline.after(5))


def _insert(vpcd_slot: Insert, holder: str, psam: VirtualDevice) -> None:
    """Card in slot 0, PSAM (or another card) in slot 1; wait until pcscd sees both."""
    vpcd_slot(VirtualCard.from_holder(holder), slot=0)
    vpcd_slot(psam, slot=1)
    _reader(0)
    _reader(1)


def _chain(**kwargs: object) -> ModuleChain:
    psam = find_psam(psam_reader=kwargs.pop("psam_reader", None),  # type: ignore[arg-type]
                     exclude_reader=_reader(0))
    chain = find_authenticator(psam_transport=psam, **kwargs)  # type: ignore[arg-type]
    assert isinstance(chain, ModuleChain)
    return chain


def test_psam_found_automatically_and_read_complete(vpcd_slot: Insert) -> None:
    _insert(vpcd_slot, "gen3-adult", full_psam())
    psam_reader = _reader(1)
    with _chain() as chain, PcscTransport(_reader(0)) as transport:
        info = read_card_info(transport, authenticator=chain)
    assert info.complete and info.name
    assert info.authenticated_by == f"psam:{psam_reader}"


def test_psam_named(vpcd_slot: Insert) -> None:
    _insert(vpcd_slot, "gen3-3des", full_psam())
    with _chain(psam_reader=_reader(1)) as chain, PcscTransport(_reader(0)) as transport:
        assert read_card_info(transport, authenticator=chain).complete


def test_named_reader_without_psam_is_minus_2201(vpcd_slot: Insert) -> None:
    _insert(vpcd_slot, "gen3-adult", VirtualCard.from_holder("gen2-adult"))
    with pytest.raises(SecurityModuleUnavailableError) as caught:
        find_authenticator(psam_transport=find_psam(psam_reader=_reader(1),
                                                    exclude_reader=_reader(0)))
    assert caught.value.code == -2201
    # Searched automatically, a non-PSAM card is not taken for one.
    assert find_authenticator(psam_transport=find_psam(exclude_reader=_reader(0))) is None


def test_cloned_card_refused_and_recorded(vpcd_slot: Insert) -> None:
    _insert(vpcd_slot, "gen3-cloned", full_psam())
    records: list[ForgeryRecord] = []
    with _chain(recorder=records.append) as chain, PcscTransport(_reader(0)) as transport:
        with pytest.raises(ForgedCardError):
            read_card_info(transport, authenticator=chain)
        assert chain.forgeries_detected == 1
    assert len(records) == 1 and records[0].module.startswith("psam:")


def test_cloned_card_cli_exit_code(vpcd_slot: Insert, capsys: pytest.CaptureFixture[str]) -> None:
    _insert(vpcd_slot, "gen3-cloned", full_psam())
    code = main(["read", "--reader", _reader(0), "--psam", _reader(1)])
    assert code == ExitCode.FORGED_CARD
    assert "forged or cloned" in capsys.readouterr().err


def test_psam_without_read_key_falls_back_to_hsm(vpcd_slot: Insert,
                                                 central_sim: CentralSim) -> None:
    """The HSM two-step through B's central simulator (real subprocess, signed HTTP)."""
    _insert(vpcd_slot, "gen3-adult", psam_without_read_key())
    central = central_sim.make_client()
    try:
        with _chain(central=central) as chain, PcscTransport(_reader(0)) as transport:
            info = read_card_info(transport, authenticator=chain)
            assert chain.last_fallback_code == -2203
    finally:
        central.close()
    assert info.complete and info.authenticated_by == "hsm:central"


def test_cloned_card_via_central_hsm(vpcd_slot: Insert, central_sim: CentralSim) -> None:
    _insert(vpcd_slot, "gen3-cloned", psam_without_sm4())
    central = central_sim.make_client()
    try:
        with _chain(central=central) as chain, PcscTransport(_reader(0)) as transport:
            with pytest.raises(ForgedCardError):
                read_card_info(transport, authenticator=chain)
            assert chain.last_fallback_code == -2202 and chain.forgeries_detected == 1
    finally:
        central.close()


def test_no_module_incomplete_and_gen2_free(vpcd_slot: Insert) -> None:
    vpcd_slot(VirtualCard.from_holder("gen3-adult"), slot=0)
    assert find_authenticator(psam_transport=find_psam(exclude_reader=_reader(0))) is None
    with PcscTransport(_reader(0)) as transport:
        info = read_card_info(transport)
    assert not info.complete
    assert info.incomplete_reason == (
        "generation 3 card: holder data needs a PSAM or the central HSM")


def test_pin_through_pcscd(vpcd_slot: Insert, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    card = VirtualCard.from_holder("gen2-adult")
    vpcd_slot(card, slot=0)
    with PcscTransport(_reader(0)) as transport:
        verify_pin(transport, "123456")
        with pytest.raises(PinError) as caught:
            verify_pin(transport, "000000")
        assert caught.value.tries_left == 2
    for expected in (ExitCode.PIN_WRONG, ExitCode.PIN_LOCKED, ExitCode.PIN_LOCKED):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"000000\n")))
        assert main(["pin", "verify", "--pin-stdin", "--reader", _reader(0)]) == expected
    err = capsys.readouterr().err
    assert "locked" in err and "000000" not in err
    assert card.pin_tries == 0


def test_psam_shared_with_another_program_never_makes_a_genuine_card_forged(
        vpcd_slot: Insert) -> None:
    """PC/SC shares the PSAM between programs (the daemon, ``sscard read``...). Its key
    is the one "derived last": unless derive and encrypt run as one PC/SC transaction,
    another program's derive slips in between and a genuine card is refused, counted
    and recorded as forged."""
    _insert(vpcd_slot, "gen3-adult", full_psam())
    psam_reader = _reader(1)
    stop = threading.Event()
    other_errors: list[BaseException] = []

    def other_program() -> None:
        # Another terminal program reading its own cards (a sim: card) with the PSAM.
        try:
            with PcscTransport(psam_reader) as psam_transport:
                psam = PsamAuthenticator(psam_transport)
                while not stop.is_set():
                    card = SimTransport(VirtualCard.from_holder("gen3-3des"))
                    assert read_card_info(card, authenticator=psam).complete
        except BaseException as exc:
            other_errors.append(exc)

    records: list[ForgeryRecord] = []
    thread = threading.Thread(target=other_program)
    thread.start()
    try:
        with _chain(recorder=records.append) as chain:
            for _ in range(15):
                with PcscTransport(_reader(0)) as transport:
                    assert read_card_info(transport, authenticator=chain).complete
    finally:
        stop.set()
        thread.join(timeout=30)
    assert records == [] and other_errors == []
