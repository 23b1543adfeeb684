"""Check digits, ATR decoding, the unified string and codes, and the virtual card's
command set (so the simulator cannot silently answer 9000)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sscard_hardware_sim.sim_authenticator import MasterKeyAuthenticator
from sscard_hardware_sim.virtual_card import VirtualCard

from sscard_terminal.apdu.transport import CardInterface
from sscard_terminal.cards.atr import decode_atr, identify_atr
from sscard_terminal.cards.checksums import (
    CheckRule,
    card_number_check_char,
    check_card_number,
    check_id_number,
)
from sscard_terminal.cards.unified import (
    BASIC_INFO_FIELDS,
    UnifiedCode,
    format_basic_info,
    unified_code_for,
)
from sscard_terminal.drivers.pcsc import detect_interface
from sscard_terminal.errors import (
    CardRefusedError,
    CardRemovedError,
    ForgedCardError,
    NoCardError,
    NoReaderError,
    NotSocialSecurityCardError,
    PinError,
    ReaderUnavailableError,
    SecurityModuleError,
    SecurityModuleUnavailableError,
)
from sscard_terminal.sdk import read_card


@pytest.mark.parametrize("number", ["X00000019", "B7K334774", "188347080"])
def test_card_number_check_character_matches_the_spec_examples(number: str) -> None:
    assert card_number_check_char(number[:8]) == number[8]
    assert check_card_number(number).valid is True


def test_wrong_card_number_check_is_reported_not_rejected() -> None:
    assert check_card_number("X00000018").valid is False


def test_id_number_gb11643() -> None:
    assert check_id_number("11010519491231002X").valid is True
    assert check_id_number("110105194912310021").valid is False
    assert check_id_number("11010519491231002x").valid is True


def test_foreign_number_says_no_rule_applies() -> None:
    result = check_id_number("USA330300197001011")
    assert result.rule is CheckRule.NOT_APPLICABLE and result.valid is None


def test_contact_atr_decodes_t0_with_historical_bytes() -> None:
    atr = bytes.fromhex("3B6D000000814E43238697159900BF7C7A")
    info = decode_atr(atr)
    assert info.protocols == (0,)
    assert info.interface_bytes == {"TB1": 0x00, "TC1": 0x00}
    assert info.historical.hex().upper() == "00814E43238697159900BF7C7A"
    assert info.tck is None
    assert identify_atr(atr) is not None
    assert detect_interface(atr, "Some Reader 00 00") is CardInterface.CONTACT


def test_pcsc_part3_pseudo_atr_is_contactless_and_checks_tck() -> None:
    atr = bytes.fromhex("3B8880010000000000718100F9")
    info = decode_atr(atr)
    assert info.pseudo_contactless and info.tck_valid is True and info.protocols == (0, 1)
    assert detect_interface(atr) is CardInterface.CONTACTLESS
    broken = atr[:-1] + b"\x00"
    assert decode_atr(broken).tck_valid is False
    assert detect_interface(broken) is CardInterface.CONTACT
    assert detect_interface(broken, "ACS ACR1252 PICC 00 01") is CardInterface.CONTACTLESS


@pytest.mark.parametrize("raw", ["", "3B", "3BFF", "3B8180", "3B02AA", "3B81800100"[:-2]])
def test_hostile_atr_raises_value_error_never_index_error(raw: str) -> None:
    with pytest.raises(ValueError):
        decode_atr(bytes.fromhex(raw))


def test_unified_string_has_fixed_field_positions() -> None:
    info = read_card("sim:gen2-adult")
    text = format_basic_info(info, terminal_number="410100813475", device_number="MT17")
    assert isinstance(text, str) and text.endswith("|")
    fields = text.split("|")[:-1]
    assert len(fields) == len(BASIC_INFO_FIELDS) == 11
    assert fields[0] == "330300"
    assert fields[1] == info.social_security_number and len(fields[1]) == 18
    assert fields[2] == info.card_number and len(fields[2]) == 9
    assert fields[3] == info.card_identification_code
    assert fields[4] == "刘思远"
    assert fields[5] == "00814E4323869715330300A1B2"
    assert fields[6:9] == ["2.00", "20180420", "20280420"]
    assert fields[9:] == ["410100813475", "MT17"]


def test_unified_string_in_gbk_bytes_and_rare_names_in_gb18030() -> None:
    plain = format_basic_info(read_card("sim:gen2-adult"), encoding="gbk")
    assert isinstance(plain, bytes) and "刘思远".encode("gbk") in plain
    rare = read_card("sim:gen3-rare-name", authenticator=MasterKeyAuthenticator())
    encoded = format_basic_info(rare, encoding="gbk")
    assert isinstance(encoded, bytes) and encoded.decode("gb18030").split("|")[4] == "王𠮷䶮"


@pytest.mark.parametrize(("error", "code"), [
    (NotSocialSecurityCardError("x"), -1),
    (NoCardError("x"), -2),
    (CardRemovedError("x"), -2),
    (NoReaderError("x"), -11),
    (ReaderUnavailableError("x"), -11),
    (ForgedCardError("x"), -21),
    (PinError("x", 0x63C2, 2, False), -51),
    (PinError("x", 0x6983, 0, True), -52),
    (CardRefusedError("x", 0x6A82), -27266),
    (CardRefusedError("x", 0x6982), -27010),
    (CardRefusedError("x", 0x9303), -37635),
    (CardRefusedError("x", 0x63C2), -25536),
    (CardRefusedError("x", 0x63C1), -25537),
    (CardRefusedError("x", 0x63C0), -25538),
    (SecurityModuleError("x"), -2201),
    (SecurityModuleUnavailableError("x", code=-2201), -2201),
    (SecurityModuleUnavailableError("x", code=-2202), -2202),
    (SecurityModuleUnavailableError("x", code=-2203), -2203),
    (CardRefusedError("x", 0x6A88), -27272),
    (CardRefusedError("x", 0x6C00), -26368),
    (CardRefusedError("x", 0x6E00), -26371),
    (RuntimeError("x"), -999),
])
def test_unified_return_codes(error: BaseException, code: int) -> None:
    assert unified_code_for(error) == code


def test_unified_code_table_is_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "card-path.md").read_text("utf-8")
    for code in UnifiedCode:
        assert f"| {int(code)} |" in doc, code.name


def _card(name: str = "gen2-adult") -> VirtualCard:
    return VirtualCard.from_holder(name)


def test_virtual_card_rejects_unknown_commands_loudly() -> None:
    card = _card()
    assert card.transmit(bytes.fromhex("00FE000000")) == b"\x6d\x00"
    assert card.transmit(bytes.fromhex("A0A4000000")) == b"\x6e\x00"


def test_virtual_card_answers_all_three_read_record_forms() -> None:
    card = _card()
    select = bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
    assert card.transmit(select)[-2:] == b"\x90\x00"
    by_tag_sfi = card.transmit(bytes.fromhex("00B20A3003"))
    by_number_sfi = card.transmit(bytes.fromhex("00B2043403"))  # gen 2: record 4 is 0A
    assert card.transmit(bytes.fromhex("00A4000002EF06")) == b"\x90\x00"
    by_tag_selected = card.transmit(bytes.fromhex("00B20A0003"))
    by_number_selected = card.transmit(bytes.fromhex("00B2040403"))
    assert by_tag_sfi == by_number_sfi == by_tag_selected == by_number_selected
    assert by_tag_sfi == b"\x0a\x01\x31\x90\x00"
    assert card.transmit(bytes.fromhex("00B20A3000")) == b"\x6c\x03"


def test_virtual_card_pin_verify_counts_down_and_locks() -> None:
    card = _card()
    assert card.transmit(bytes.fromhex("0020000003123456")) == b"\x90\x00"
    assert card.transmit(bytes.fromhex("0020000003000000")) == b"\x63\xc2"
    assert card.transmit(bytes.fromhex("0020000003000000")) == b"\x63\xc1"
    assert card.transmit(bytes.fromhex("0020000003000000")) == b"\x69\x83"
    assert card.transmit(bytes.fromhex("0020000003123456")) == b"\x69\x83"


def test_virtual_card_change_pin() -> None:
    card = _card()
    assert card.transmit(bytes.fromhex("0024000006123456654321")) == b"\x90\x00"
    assert card.transmit(bytes.fromhex("0020000003654321")) == b"\x90\x00"


def test_generation_3_virtual_card_refuses_holder_data_until_authenticated() -> None:
    card = _card("gen3-adult")
    card.transmit(bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF"))
    assert card.transmit(bytes.fromhex("00B2012812"))[-2:] == b"\x90\x00"
    assert card.transmit(bytes.fromhex("00B2083014")) == b"\x69\x82"
    bad = card.transmit(bytes.fromhex("0084000008"))
    assert len(bad) == 10
    assert card.transmit(bytes.fromhex("0082000A10") + bytes(16)) == b"\x63\xc2"
