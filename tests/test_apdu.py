"""APDU encoding, status words, TLV codecs and the 61XX/6CXX processor."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sscard_terminal.apdu import (
    SW,
    ApduProcessor,
    CommandApdu,
    ResponseApdu,
    describe_sw,
    encode_ber,
    find,
    parse_ber,
    parse_simple,
)
from sscard_terminal.apdu.processors import MAX_RESPONSE_BYTES
from sscard_terminal.apdu.transport import CardInterface, CardTransport
from sscard_terminal.errors import MalformedResponseError


class ScriptedTransport(CardTransport):
    """Answers from a fixed script and fails loudly on anything unexpected."""

    def __init__(self, script: list[tuple[bytes, bytes]]) -> None:
        self.script = list(script)
        self.sent: list[bytes] = []

    atr = b"\x3b\x00"  # type: ignore[assignment]
    interface = CardInterface.CONTACT  # type: ignore[assignment]
    reader_name = "scripted"  # type: ignore[assignment]

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        expected, answer = self.script.pop(0)
        assert apdu == expected, f"unexpected APDU {apdu.hex()} (wanted {expected.hex()})"
        return answer

    def close(self) -> None:
        pass


def test_short_and_extended_encodings_follow_iso_cases() -> None:
    assert CommandApdu(0x00, 0xA4, 0x04, 0x00, b"\x01\x02").to_bytes() == bytes.fromhex(
        "00A40400020102"
    )
    assert CommandApdu(0x00, 0xB2, 0x08, 0x00, le=20).to_bytes() == bytes.fromhex("00B2080014")
    assert CommandApdu(0x00, 0xB0, 0, 0, le=256).to_bytes() == bytes.fromhex("00B0000000")
    ext = CommandApdu(0x00, 0xB0, 0, 0, b"\xaa" * 300, le=1000, extended=True)
    raw = ext.to_bytes()
    assert raw[4:7] == bytes.fromhex("00012C") and raw[-2:] == (1000).to_bytes(2, "big")
    assert CommandApdu.from_bytes(raw) == ext


@given(
    st.integers(0, 255), st.integers(0, 255), st.binary(max_size=255),
    st.one_of(st.none(), st.integers(1, 256)),
)
def test_short_command_round_trips(ins: int, p1: int, data: bytes, le: int | None) -> None:
    cmd = CommandApdu(0x00, ins, p1, 0x00, data, le)
    assert CommandApdu.from_bytes(cmd.to_bytes()) == cmd


def test_response_without_status_word_is_malformed() -> None:
    with pytest.raises(MalformedResponseError):
        ResponseApdu.from_bytes(b"\x90")
    assert ResponseApdu.from_bytes(b"\x01\x90\x00").ok


def test_status_words_have_meanings() -> None:
    assert SW.FILE_NOT_FOUND == 0x6A82
    assert "not found" in describe_sw(0x6A82)
    assert "3 tries left" in describe_sw(0x63C3)
    assert "GET RESPONSE" in describe_sw(0x6110)
    assert "Le=1E" in describe_sw(0x6C1E)


def test_simple_tlv_rejects_length_past_buffer() -> None:
    assert parse_simple(b"\x07\x02AB\x00").value == b"AB"
    with pytest.raises(MalformedResponseError, match="claims 9 bytes"):
        parse_simple(b"\x07\x09AB")
    with pytest.raises(MalformedResponseError):
        parse_simple(b"\x07")


def test_ber_tlv_parses_nested_fci() -> None:
    proprietary = encode_ber(0xA5, encode_ber(0x9F0C, b"\x86\x01\x03"))
    fci = encode_ber(0x6F, encode_ber(0x84, b"sx1") + proprietary)
    objects = parse_ber(fci)
    item = find(objects, 0x9F0C)
    assert item is not None and item.value == b"\x86\x01\x03"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x6f\x05\x84\x01",  # length past buffer
        b"\x6f\x80\x00\x00",  # indefinite length
        b"\x9f",  # tag that never ends
        b"\x5a\x84\xff\xff\xff\xff",  # 4-byte length
        b"\x6f\x01" * 1,
        bytes([0x7F, 0x21]) * 1,
    ],
)
def test_ber_tlv_hostile_inputs_raise_our_error(raw: bytes) -> None:
    with pytest.raises(MalformedResponseError):
        parse_ber(raw)


def test_ber_tlv_deep_nesting_is_refused() -> None:
    inner = b""
    for _ in range(50):
        inner = encode_ber(0x6F, inner) if len(inner) < 0xFFFF else inner
    with pytest.raises(MalformedResponseError, match="nested deeper"):
        parse_ber(inner)


@given(st.binary(max_size=2048))
def test_ber_tlv_never_raises_anything_else(raw: bytes) -> None:
    try:
        parse_ber(raw)
    except MalformedResponseError:
        pass


def test_64k_of_garbage_is_refused_quickly() -> None:
    garbage = bytes([0x6F, 0x83, 0x01, 0x00, 0x00]) + b"\x41" * 65536
    with pytest.raises(MalformedResponseError):
        parse_ber(garbage)


def test_processor_chains_61xx_with_get_response() -> None:
    transport = ScriptedTransport([
        (bytes.fromhex("00B2080014"), bytes.fromhex("6114")),
        (bytes.fromhex("00C0000014"), b"x" * 20 + b"\x90\x00"),
    ])
    response = ApduProcessor(transport).send(CommandApdu(0, 0xB2, 8, 0, le=20))
    assert response.ok and response.data == b"x" * 20


def test_processor_joins_a_multi_round_61xx_chain_whole_and_in_order() -> None:
    """Issue 23: a processor keeping only the last chunk passed, because every chain in
    the suite had a single GET RESPONSE. Here the card hands its answer out in rounds,
    each one data plus ``61 YY`` for the next, and the first answer already has data."""
    transport = ScriptedTransport([
        (bytes.fromhex("00A4040002DF0100"), b"AB" + bytes.fromhex("6108")),
        (bytes.fromhex("00C0000008"), b"cdefghij" + bytes.fromhex("6105")),
        (bytes.fromhex("00C0000005"), b"klmno" + bytes.fromhex("6100")),
        (bytes.fromhex("00C0000000"), b"p" * 256 + bytes.fromhex("6103")),
        (bytes.fromhex("00C0000003"), b"xyz" + bytes.fromhex("9000")),
    ])
    select = CommandApdu(0, 0xA4, 4, 0, data=bytes.fromhex("DF01"), le=256)
    response = ApduProcessor(transport).send(select)
    assert response.sw == 0x9000
    assert response.data == b"ABcdefghijklmno" + b"p" * 256 + b"xyz"
    assert transport.script == []


def test_processor_chain_ends_with_the_last_status_word() -> None:
    """A chain whose last round fails keeps that status word (data so far is no answer)."""
    transport = ScriptedTransport([
        (bytes.fromhex("80B2080014"), bytes.fromhex("6104")),
        (bytes.fromhex("00C0000004"), b"abcd" + bytes.fromhex("6102")),
        (bytes.fromhex("00C0000002"), bytes.fromhex("6F00")),
    ])
    response = ApduProcessor(transport).send(CommandApdu(0x80, 0xB2, 8, 0, le=20))
    assert response.sw == 0x6F00 and not response.ok


def test_processor_resends_once_on_6cxx() -> None:
    transport = ScriptedTransport([
        (bytes.fromhex("00B2080000"), bytes.fromhex("6C14")),
        (bytes.fromhex("00B2080014"), b"y" * 20 + b"\x90\x00"),
    ])
    response = ApduProcessor(transport).send(CommandApdu(0, 0xB2, 8, 0, le=256))
    assert response.data == b"y" * 20
    assert len(transport.sent) == 2


def test_processor_stops_an_endless_61xx_loop() -> None:
    class Endless(ScriptedTransport):
        def transmit(self, apdu: bytes) -> bytes:
            return bytes.fromhex("6101")

    with pytest.raises(MalformedResponseError, match="GET RESPONSE loop"):
        ApduProcessor(Endless([])).send(CommandApdu(0, 0xB2, 8, 0, le=1))


def test_processor_trace_shows_each_exchange_in_hex(caplog: pytest.LogCaptureFixture) -> None:
    transport = ScriptedTransport([
        (bytes.fromhex("00B2080014"), bytes.fromhex("6104")),
        (bytes.fromhex("00C0000004"), bytes.fromhex("0A0B0C0D9000")),
    ])
    caplog.set_level(logging.DEBUG, logger="sscard_terminal.apdu.trace")
    ApduProcessor(transport).send(CommandApdu(0, 0xB2, 8, 0, le=20))
    trace = [r.getMessage() for r in caplog.records if r.name == "sscard_terminal.apdu.trace"]
    assert trace == ["> 00 B2 08 00 14", "< 61 04", "> 00 C0 00 00 04", "< 0A 0B 0C 0D 90 00"]


def test_processor_sends_raw_bytes_with_the_same_chaining() -> None:
    transport = ScriptedTransport([
        (bytes.fromhex("00B2080014"), bytes.fromhex("6102")),
        (bytes.fromhex("00C0000002"), bytes.fromhex("ABCD9000")),
    ])
    response = ApduProcessor(transport).send_raw(bytes.fromhex("00B2080014"))
    assert (response.data, response.sw) == (bytes.fromhex("ABCD"), 0x9000)


def test_processor_6c00_means_le_256_and_a_6c_answer_may_then_chain() -> None:
    transport = ScriptedTransport([
        (bytes.fromhex("00B2080010"), bytes.fromhex("6C00")),
        (bytes.fromhex("00B2080000"), bytes.fromhex("6102")),          # Le 256 is "00"
        (bytes.fromhex("00C0000002"), bytes.fromhex("ABCD9000")),
    ])
    response = ApduProcessor(transport).send(CommandApdu(0, 0xB2, 8, 0, le=16))
    assert (response.data, response.sw) == (bytes.fromhex("ABCD"), 0x9000)


@pytest.mark.parametrize(("cla", "get_response_cla"), [(0x84, 0x00), (0x80, 0x00), (0x01, 0x01),
                                                       (0x07, 0x03)])
def test_get_response_keeps_only_the_logical_channel_of_the_class(
        cla: int, get_response_cla: int) -> None:
    transport = ScriptedTransport([
        (bytes((cla, 0xB2, 8, 0, 0x14)), bytes.fromhex("6101")),
        (bytes((get_response_cla, 0xC0, 0, 0, 1)), bytes.fromhex("AA9000")),
    ])
    assert ApduProcessor(transport).send(CommandApdu(cla, 0xB2, 8, 0, le=20)).data == b"\xaa"


class _Rounds(ScriptedTransport):
    """Answers 61 01 and one byte per GET RESPONSE until ``rounds`` are done."""

    def __init__(self, rounds: int) -> None:
        super().__init__([])
        self.rounds = rounds

    def transmit(self, apdu: bytes) -> bytes:
        self.sent.append(apdu)
        if apdu[1] != 0xC0:
            return bytes.fromhex("6101")
        self.rounds -= 1
        return b"x" + (bytes.fromhex("9000") if self.rounds == 0 else bytes.fromhex("6101"))


def test_processor_allows_exactly_64_get_response_rounds() -> None:
    transport = _Rounds(64)
    response = ApduProcessor(transport).send(CommandApdu(0, 0xB2, 8, 0, le=1))
    assert response.data == b"x" * 64 and len(transport.sent) == 65
    with pytest.raises(MalformedResponseError) as refused:
        ApduProcessor(_Rounds(65)).send(CommandApdu(0, 0xB2, 8, 0, le=1))
    assert str(refused.value) == "malformed data: card keeps answering 61 XX (GET RESPONSE loop)"


def test_processor_size_limits_are_exact() -> None:
    whole = b"d" * (MAX_RESPONSE_BYTES - 2) + bytes.fromhex("9000")   # the largest answer
    transport = ScriptedTransport([(bytes.fromhex("00B2080000"), whole)])
    assert len(ApduProcessor(transport).send(CommandApdu(0, 0xB2, 8, 0, le=256)).data) == \
        MAX_RESPONSE_BYTES - 2
    transport = ScriptedTransport([(bytes.fromhex("00B2080000"), b"d" + whole)])
    with pytest.raises(MalformedResponseError) as refused:
        ApduProcessor(transport).send(CommandApdu(0, 0xB2, 8, 0, le=256))
    assert str(refused.value) == (f"malformed data: response of {MAX_RESPONSE_BYTES + 1} "
                                  "bytes is too long")
    # a chain may reach the limit exactly and go on once more; past it, it stops
    transport = ScriptedTransport([
        (bytes.fromhex("00B2080000"), b"a" * (MAX_RESPONSE_BYTES - 2) + bytes.fromhex("6102")),
        (bytes.fromhex("00C0000002"), b"bb" + bytes.fromhex("6101")),
        (bytes.fromhex("00C0000001"), b"c" + bytes.fromhex("9000")),
    ])
    response = ApduProcessor(transport).send(CommandApdu(0, 0xB2, 8, 0, le=256))
    assert len(response.data) == MAX_RESPONSE_BYTES + 1
