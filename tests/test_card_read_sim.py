"""The read flow through the in-process sim: reader, every holder and every fault."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from sscard_hardware_sim.sim_authenticator import MasterKeyAuthenticator
from sscard_hardware_sim.virtual_card import Faults, VirtualCard, holder_names

from sscard_terminal.apdu import ApduProcessor, CommandApdu
from sscard_terminal.apdu.transport import CardInterface
from sscard_terminal.cards.bank import read_pan
from sscard_terminal.cards.ssse import GEN3_NO_MODULE_REASON, read_card_info
from sscard_terminal.drivers.sim import SimTransport, open_sim_reader
from sscard_terminal.errors import (
    CardRefusedError,
    CardRemovedError,
    ForgedCardError,
    MalformedResponseError,
    NoReaderError,
    NotSocialSecurityCardError,
)

SSSE_HOLDERS = [n for n in holder_names() if n not in ("bank-only", "gen3-cloned")]


def _read(name: str, faults: Faults | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    card = VirtualCard.from_holder(name, faults)
    with SimTransport(card, reader_name=f"sim:{name}") as transport:
        return read_card_info(transport, **kwargs)  # type: ignore[arg-type]


def test_every_synthetic_holder_is_present() -> None:
    expected = {"gen3-adult", "gen3-3des", "gen3-child", "gen3-rare-name", "other-province",
                "expired", "gen2-adult", "gen1-adult", "bank-only", "gen3-cloned"}
    assert expected <= set(holder_names())


@pytest.mark.parametrize("name", SSSE_HOLDERS)
def test_every_holder_reads_and_check_digits_hold(name: str) -> None:
    info = _read(name, authenticator=MasterKeyAuthenticator())
    assert info.complete, info.incomplete_reason
    # A foreign holder's number follows the national rule, not GB 11643: no check applies.
    assert info.id_number_check.valid is (None if name == "foreign-holder" else True)
    assert info.card_number_check.valid is True
    assert len(info.card_identification_code) == 32
    assert info.card_identification_code[6:16] == "D156000005"
    assert info.name and info.birth_date is not None and info.sex in ("male", "female")
    if info.generation == 3:
        assert info.authenticated_by == "test:master-keys"
    else:
        assert info.authenticated_by is None


def test_generation_3_without_module_returns_free_items_marked_incomplete() -> None:
    info = _read("gen3-adult")
    assert not info.complete
    assert info.incomplete_reason == GEN3_NO_MODULE_REASON
    assert info.spec_version == "3.00" and info.generation == 3
    assert info.card_number.startswith("W") and info.card_identification_code
    assert info.name == "" and info.social_security_number == ""


def test_generation_3_3des_contactless_card_reads_with_authentication() -> None:
    info = _read("gen3-3des", authenticator=MasterKeyAuthenticator())
    assert info.algorithm == 0x01
    assert info.name == "陈雨桐" and info.sex_code == "2"


def test_cloned_card_is_refused_as_forged() -> None:
    with pytest.raises(ForgedCardError):
        _read("gen3-cloned", authenticator=MasterKeyAuthenticator())


def test_rare_character_name_survives_gb18030() -> None:
    info = _read("gen3-rare-name", authenticator=MasterKeyAuthenticator())
    assert info.name == "王𠮷䶮"


def test_generation_1_card_has_no_name_extension_and_sex_is_read_by_tag() -> None:
    info = _read("gen1-adult")
    assert info.generation == 1
    assert info.sex_code == "2" and info.ethnicity_code == "01"
    assert info.birth_date == dt.date(1955, 3, 9)
    # tolerated oddities are flagged, not fatal
    assert any("0C" in w and "2 bytes" in w for w in info.warnings)
    assert any("lower case" in w for w in info.warnings)
    assert info.social_security_number.endswith("X")
    assert info.birthplace == "3303"


def test_expired_card_says_so() -> None:
    info = _read("expired")
    assert info.expiry_date == dt.date(2019, 8, 1)
    assert info.expired(dt.date(2026, 1, 1))
    assert not _read("gen2-adult").expired(dt.date(2026, 1, 1))


def test_pooling_area_region_is_accepted() -> None:
    info = _read("other-province", authenticator=MasterKeyAuthenticator())
    assert info.region == "639900"
    assert info.ethnicity == "藏族"


def test_bank_only_card_is_not_a_social_security_card() -> None:
    with pytest.raises(NotSocialSecurityCardError):
        _read("bank-only")


def test_pan_is_read_from_a_bank_only_card_over_ppse() -> None:
    card = VirtualCard.from_holder("bank-only")
    with SimTransport(card, interface=CardInterface.CONTACTLESS) as transport:
        pan = read_pan(transport)
    assert pan == "6217000010000000003"


def test_pan_is_read_on_request_and_masked_by_default() -> None:
    info = _read("gen2-adult", read_pan=True)
    assert info.pan == "6217000010000001234"
    assert info.to_dict()["pan"] == "621700*********1234"
    assert "6217000010000001234" not in repr(info)
    assert _read("gen2-adult").pan is None


def test_t0_card_answering_61xx_reads_the_same() -> None:
    plain = _read("gen2-adult")
    chained = _read("gen2-adult", Faults(t0=True))
    assert chained.to_dict(unmask=True) == plain.to_dict(unmask=True) | {"reader": chained.reader}


@pytest.mark.parametrize("name", ["gen2-adult", "gen3-adult"])
@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_t0_card_chaining_its_answers_in_rounds_reads_the_same(name: str, chunk: int) -> None:
    """The virtual card in T=0 mode with a small buffer: every case-4 answer comes as
    61 XX, then rounds of data plus 61 YY; the read must join them whole."""
    kwargs = {"authenticator": MasterKeyAuthenticator()} if name.startswith("gen3") else {}
    plain = _read(name, **kwargs)
    chained = _read(name, Faults(t0=True, t0_chunk=chunk), **kwargs)
    assert chained.complete
    assert chained.to_dict(unmask=True) == plain.to_dict(unmask=True) | {"reader": chained.reader}


def test_the_virtual_t0_card_really_chains_in_several_rounds() -> None:
    """The fault is real: the SSSE FCI comes back in 3-byte rounds, each GET RESPONSE
    answered with data and 61 YY until the last, and the processor joins them."""
    ssse = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")
    select = CommandApdu(0, 0xA4, 4, 0, data=ssse, le=256)
    whole = ApduProcessor(SimTransport(VirtualCard.from_holder("gen2-adult"))).send(select)
    card = VirtualCard.from_holder("gen2-adult", Faults(t0=True, t0_chunk=3))
    transport = SimTransport(card)
    first = transport.transmit(select.to_bytes())
    assert first == bytes.fromhex("6103")
    round_one = transport.transmit(bytes.fromhex("00C0000003"))
    assert round_one[:-2] == whole.data[:3] and round_one[-2] == 0x61
    card.power_on()                                  # fresh card, same fault
    chained = ApduProcessor(transport).send(select)
    assert (chained.sw, chained.data) == (whole.sw, whole.data)
    assert len(whole.data) > 6                       # at least three rounds were needed


@pytest.mark.parametrize("after", [0, 1, 3, 8, 14])
def test_card_pulled_mid_read_raises_removed_never_partial(after: int) -> None:
    with pytest.raises(CardRemovedError):
        _read("gen2-adult", Faults(pull_after=after))


def test_truncated_record_is_malformed_naming_file_and_record() -> None:
    with pytest.raises(MalformedResponseError) as caught:
        _read("gen2-adult", Faults(truncated_tag=0x09))
    assert caught.value.file == "EF06" and caught.value.record == 0x09


def test_oversized_record_is_malformed() -> None:
    with pytest.raises(MalformedResponseError) as caught:
        _read("gen2-adult", Faults(oversized_tag=0x08))
    assert caught.value.record == 0x08


def test_wrong_status_word_is_a_refusal_carrying_the_sw() -> None:
    with pytest.raises(CardRefusedError) as caught:
        _read("gen2-adult", Faults(wrong_sw={0xB2: 0x6F00}))
    assert caught.value.sw == 0x6F00


def test_slow_card_still_reads() -> None:
    assert _read("gen2-adult", Faults(delay=0.002)).complete


def test_sim_reader_name_resolves_and_unknown_lists_what_exists() -> None:
    with open_sim_reader("sim:gen2-adult") as transport:
        assert transport.reader_name == "sim:gen2-adult"
    with pytest.raises(NoReaderError) as caught:
        open_sim_reader("sim:nobody")
    assert "sim:gen2-adult" in caught.value.found


def test_personal_data_is_masked_in_repr_str_dict_and_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="sscard_terminal")
    # The APDU trace (raw card traffic) is off unless a technician asks for it.
    caplog.set_level(logging.INFO, logger="sscard_terminal.apdu.trace")
    info = _read("gen2-adult")
    clear = info.to_dict(unmask=True)
    masked = info.to_dict()
    for secret in (clear["name"], clear["social_security_number"], clear["card_number"]):
        assert secret not in repr(info) and secret not in str(info)
        assert secret not in str(masked)
        assert secret not in caplog.text
    assert masked["name"] == "刘**"
    assert masked["social_security_number"] == "3303**********007X"
    assert masked["card_number"] == "W*******4"
    assert (masked["birthplace"], masked["birth_date"]) == ("3303**", "1975-**-**")
    assert "card_number='W*******4', social_security_number='3303**********007X', " \
        "name='刘**'" in repr(info)
