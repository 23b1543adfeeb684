"""Generation 3 read authentication through the in-process ``sim:`` link.

Real parts: A's VirtualCard (access conditions, diversified keys, cloned card), the
virtual PSAM, the HSM handler behind a real HTTP server on 127.0.0.1, A's read path.
The pcscd+vpcd variants are in test_read_auth_pcsc.py.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from sscard_hardware_sim import card_keys
from sscard_hardware_sim.central_hsm import read_auth_key
from sscard_hardware_sim.recording import RecordingTransport
from sscard_hardware_sim.virtual_card import Faults, VirtualCard, load_holder
from sscard_hardware_sim.virtual_psam import (
    VirtualPsam,
    full_psam,
    psam_without_read_key,
    psam_without_sm4,
)

from sscard_terminal.apdu.processors import ApduProcessor
from sscard_terminal.cards.authentication.chain import ModuleChain, find_authenticator
from sscard_terminal.cards.authentication.context import CardAuthContext
from sscard_terminal.cards.authentication.hsm import (
    HsmKey,
    HsmStep1,
    HsmTwoStepAuthenticator,
    hsm_step1,
    hsm_step2,
    parse_hsm_key,
)
from sscard_terminal.cards.authentication.psam import (
    ForgeryRecord,
    PsamAuthenticator,
    external_authenticate,
    get_challenge,
    read_terminal_number,
)
from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.cards.unified import HsmTwoStepSession, unified_auth_code_for, unified_code_for
from sscard_terminal.central.client import CentralClient
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.sim import SimTransport
from sscard_terminal.errors import (
    CardRefusedError,
    CentralProtocolError,
    DeadlineExceededError,
    ForgedCardError,
    MalformedResponseError,
    SecurityModuleUnavailableError,
)
from sscard_terminal.terminal.psam_discovery import is_psam as _is_psam


class _HsmServer:
    """The central HSM route on a real HTTP server (127.0.0.1, ephemeral port)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.override_key: str | None = None
        self.override_answer: dict[str, Any] | None = None
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                status, answer = read_auth_key(body)
                if outer.override_key is not None:
                    answer = {"key": outer.override_key}
                if outer.override_answer is not None:
                    answer = outer.override_answer
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def post_json(self, path: str, body: dict[str, Any], deadline: Deadline) -> dict[str, Any]:
        answer = httpx.post(self.base + path, json=body, timeout=deadline.remaining())
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=3)


@pytest.fixture
def hsm() -> Iterator[_HsmServer]:
    server = _HsmServer()
    yield server
    server.close()


def _card(holder: str) -> SimTransport:
    return SimTransport(VirtualCard.from_holder(holder), reader_name="sim:card")


def _psam(device: VirtualPsam) -> SimTransport:
    return SimTransport(device, reader_name="sim:psam")


@pytest.mark.parametrize("holder", ["gen3-adult", "gen3-3des"])
def test_gen3_read_with_psam_is_complete(holder: str) -> None:
    psam = PsamAuthenticator(_psam(full_psam()))
    info = read_card_info(_card(holder), authenticator=psam)
    assert info.complete
    assert info.authenticated_by == "psam:sim:psam"
    assert info.name and info.social_security_number


def test_gen3_without_module_is_incomplete_with_reason() -> None:
    info = read_card_info(_card("gen3-adult"))
    assert not info.complete
    assert info.incomplete_reason == (
        "generation 3 card: holder data needs a PSAM or the central HSM")
    assert info.name == ""


@pytest.mark.parametrize("holder", ["gen2-adult", "gen1-adult"])
def test_gen1_gen2_read_without_module(holder: str) -> None:
    info = read_card_info(_card(holder))
    assert info.complete and info.authenticated_by is None and info.name


def test_cloned_card_is_refused_counted_and_recorded_without_personal_data() -> None:
    records: list[ForgeryRecord] = []
    psam = PsamAuthenticator(_psam(full_psam()), recorder=records.append)
    card = VirtualCard.from_holder("gen3-cloned")
    with pytest.raises(ForgedCardError) as caught:
        read_card_info(SimTransport(card), authenticator=psam)
    assert psam.forgeries_detected == 1
    assert len(records) == 1
    record = records[0]
    assert record.module == "psam:sim:psam"
    assert record.card_identification_code == card.ef05[0][1].hex().upper()
    text = repr(record) + str(caught.value)
    ef06 = dict(card.ef06)
    for personal in (ef06[0x08], ef06[0x09]):  # ID number, name
        assert personal.hex().upper() not in text.upper()
        assert personal.decode("latin-1").strip() not in text
    # No external authentication was attempted: the card stayed closed.
    assert card.ext_tries == 3


def test_psam_lacking_read_key_or_sm4_reports_unified_codes() -> None:
    card_info = read_card_info(_card("gen3-adult"))
    context = CardAuthContext(bytes.fromhex(card_info.card_identification_code), 0x03,
                              card_info.atr, card_info.region)
    for device, code, message in (
            (psam_without_read_key(), -2203,
             "psam:sim:psam: no read key (RKSSSE) for this card (derive key 02)"),
            (psam_without_sm4(), -2202,
             "psam:sim:psam: the PSAM lacks the card's algorithm (derive key 02)")):
        with pytest.raises(SecurityModuleUnavailableError) as caught:
            PsamAuthenticator(_psam(device)).check(context)
        assert (caught.value.code, str(caught.value)) == (code, message)
    not_a_psam = SimTransport(VirtualCard.from_holder("gen2-adult"), reader_name="sim:x")
    with pytest.raises(SecurityModuleUnavailableError) as caught:
        PsamAuthenticator(not_a_psam).check(context)
    assert caught.value.code == -2201
    assert str(caught.value).startswith("sim:x: no PSAM (SELECT DF01 answered ")
    # an algorithm the terminal does not know is refused before any APDU
    unknown = CardAuthContext(context.card_identification_code, 0x02, context.atr,
                              context.region)
    psam_log: list[tuple[str, bytes]] = []
    with pytest.raises(SecurityModuleUnavailableError) as caught:
        PsamAuthenticator(RecordingTransport(_psam(full_psam()), psam_log, "psam")).check(
            unknown)
    assert (caught.value.code, str(caught.value)) == (
        -2202, "algorithm 02 is not supported by this terminal (SM4 and 3DES are)")
    assert psam_log == []
    short = CardAuthContext(context.card_identification_code[:15], 0x03, context.atr,
                            context.region)
    with pytest.raises(MalformedResponseError) as malformed:
        PsamAuthenticator(_psam(full_psam())).check(short)
    assert (str(malformed.value), malformed.value.file, malformed.value.record) == (
        "malformed data in file EF05, record 01: card identification code is not 16 bytes",
        "EF05", 0x01)


def test_every_forgery_is_counted_and_recorded_whole() -> None:
    records: list[ForgeryRecord] = []
    psam = PsamAuthenticator(_psam(full_psam()), recorder=records.append)
    for _ in range(2):
        card = VirtualCard.from_holder("gen3-cloned")
        with pytest.raises(ForgedCardError) as caught:
            read_card_info(SimTransport(card), authenticator=psam)
        assert str(caught.value) == ("internal authentication failed (psam:sim:psam): the "
                                     "card is forged or cloned")
    assert psam.forgeries_detected == 2 and len(records) == 2
    ident = card.ef05[0][1]
    record = records[1]
    assert (record.card_identification_code, record.region, record.algorithm,
            record.module) == (ident.hex().upper(), "330300", card.algorithm, "psam:sim:psam")
    assert record.detected_at.tzinfo is not None
    assert abs((datetime.now(UTC) - record.detected_at).total_seconds()) < 60


def test_psam_terminal_number() -> None:
    assert read_terminal_number(_psam(full_psam())) == "410100813475"


class _SelectsAnything:
    """A card that accepts every SELECT (some bank and transit cards answer SELECT DF01
    with 9000) but is no PSAM: it has no terminal number file."""

    atr = bytes.fromhex("3B8F8001804F0CA000000306030001000000006A")

    def power_on(self) -> None:
        pass

    def power_off(self) -> None:
        pass

    def transmit(self, apdu: bytes) -> bytes:
        return b"\x90\x00" if apdu[1] == 0xA4 else b"\x6a\x82"


def test_a_card_that_only_accepts_select_df01_is_not_taken_for_a_psam() -> None:
    assert _is_psam(_psam(full_psam()))
    assert not _is_psam(SimTransport(_SelectsAnything(), reader_name="sim:bank"))
    assert not _is_psam(_card("gen2-adult"))


@pytest.mark.parametrize("device", [psam_without_read_key(), psam_without_sm4()])
def test_chain_falls_back_to_hsm(device: VirtualPsam, hsm: _HsmServer) -> None:
    chain = find_authenticator(psam_transport=_psam(device), central=hsm)
    assert isinstance(chain, ModuleChain)
    info = read_card_info(_card("gen3-adult"), authenticator=chain)
    assert info.complete and info.authenticated_by == "hsm:central"
    assert chain.last_fallback_code in (-2202, -2203)
    assert len(hsm.requests) == 1
    chain.close()


def test_chain_prefers_psam(hsm: _HsmServer) -> None:
    chain = find_authenticator(psam_transport=_psam(full_psam()), central=hsm)
    assert chain is not None
    info = read_card_info(_card("gen3-adult"), authenticator=chain)
    assert info.authenticated_by == "psam:sim:psam" and hsm.requests == []


def test_hsm_alone_reads_and_refuses_clone(hsm: _HsmServer) -> None:
    records: list[ForgeryRecord] = []
    auth = HsmTwoStepAuthenticator(hsm, recorder=records.append)
    assert read_card_info(_card("gen3-3des"), authenticator=auth).complete
    with pytest.raises(ForgedCardError):
        read_card_info(_card("gen3-cloned"), authenticator=auth)
    assert auth.forgeries_detected == 1 and records[0].module == "hsm:central"


def test_hsm_step2_compares_all_32_hex() -> None:
    card = VirtualCard.from_holder("gen3-adult")
    processor = ApduProcessor(SimTransport(card))
    info = read_card_info(SimTransport(VirtualCard.from_holder("gen3-adult")))
    context = CardAuthContext(bytes.fromhex(info.card_identification_code), 0x03,
                              info.atr, info.region)
    processor.send_raw(bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF"))
    step1 = hsm_step1(processor, context)
    _status, answer = read_auth_key(step1.request_body())
    good = parse_hsm_key(answer["key"])
    # Same first 16 hex characters, different tail: deployed DLLs would accept it.
    tampered = bytearray(good.expected_internal)
    tampered[-1] ^= 0x01
    bad = parse_hsm_key(tampered.hex() + "|" + good.external_cryptogram.hex())
    with pytest.raises(ForgedCardError):
        hsm_step2(processor, step1, bad)
    assert card.ext_tries == 3
    hsm_step2(processor, step1, good)
    with pytest.raises(CentralProtocolError):
        parse_hsm_key("1234|")


def _hsm_from_step1_string(step1: str) -> str:
    """What a HIS does with the step-1 string: hand it to its HSM, get the key string."""
    fields = step1.split("|")
    body = {"algorithm": int(fields[2], 16), "card_identification_code": fields[3],
            "internal_random": fields[5], "external_challenge": fields[7]}
    status, answer = read_auth_key(body)
    assert status == 200
    key: str = answer["key"]
    return key


@pytest.mark.parametrize("holder", ["gen3-adult", "gen3-3des", "gen2-adult"])
def test_unified_two_step_strings(holder: str) -> None:
    card = VirtualCard.from_holder(holder)
    session = HsmTwoStepSession(SimTransport(card), terminal_number="410100813475",
                                device_number="MT170701000006")
    code, step1 = session.step1()
    assert code == 0
    fields = step1.split("|")
    assert len(fields) == 9 and fields[-1] == ""
    idcode = card.ef05[0][1].hex().upper()
    assert fields[0] == idcode[:6] and fields[3] == idcode and fields[4] == idcode
    assert fields[2] == f"{card.algorithm:02X}" and len(fields[5]) == 32
    if holder.startswith("gen3"):
        assert fields[6] == idcode and len(fields[7]) == 32 and fields[7].endswith("0" * 16)
    else:
        assert fields[6] == fields[7] == ""
    code, basic = session.step2(_hsm_from_step1_string(step1))
    assert code == 0
    out = basic.split("|")
    assert out[3] == idcode and out[4] and out[9] == "410100813475"


def test_unified_two_step_mismatch_is_minus_25() -> None:
    session = HsmTwoStepSession(SimTransport(VirtualCard.from_holder("gen3-cloned")))
    code, step1 = session.step1()
    assert code == 0
    assert session.step2(_hsm_from_step1_string(step1)) == (-25, "")
    # A fresh step 1 is needed: step 2 cannot be replayed.
    assert session.step2(_hsm_from_step1_string(step1))[0] == -23


def test_unified_codes_for_module_errors() -> None:
    assert unified_auth_code_for(SecurityModuleUnavailableError("x", code=-2203)) == -2203
    assert unified_auth_code_for(ForgedCardError("x")) == -21
    assert unified_auth_code_for(ForgedCardError("x"), hsm=True) == -25
    # The spec: -25536..-25538 = external authentication failed, 2/1/0 tries left.
    assert unified_auth_code_for(CardRefusedError("ext", 0x63C2)) == -25536
    assert unified_auth_code_for(CardRefusedError("ext", 0x63C1)) == -25537
    assert unified_auth_code_for(CardRefusedError("ext", 0x63C0)) == -25538


@pytest.mark.parametrize("error", [
    SecurityModuleUnavailableError("x", code=-2201),
    SecurityModuleUnavailableError("x", code=-2202),
    SecurityModuleUnavailableError("x", code=-2203),
    SecurityModuleUnavailableError("x", code=-999),
    ForgedCardError("x"),
    CentralProtocolError("x"),
    CardRefusedError("ext", 0x63C2),
    CardRefusedError("ext", 0x63C1),
    CardRefusedError("ext", 0x63C0),
    CardRefusedError("x", 0x6A82),
])
@pytest.mark.parametrize("hsm", [False, True])
def test_card_path_and_read_auth_share_one_code_table(error: Exception, hsm: bool) -> None:
    assert unified_auth_code_for(error, hsm=hsm) == unified_code_for(error, hsm=hsm)


def test_psam_reset_between_reads_and_psam_gone() -> None:
    device = full_psam()
    transport = _psam(device)
    psam = PsamAuthenticator(transport)
    assert read_card_info(_card("gen3-adult"), authenticator=psam).complete
    before = device.commands
    assert read_card_info(_card("gen3-adult"), authenticator=psam).complete
    assert device.commands - before == 4  # proven PSAM: derive+encrypt twice, no re-check
    device.power_on()  # PSAM reset: DF01 no longer selected
    assert read_card_info(_card("gen3-adult"), authenticator=psam).complete
    transport.close()  # PSAM pulled
    with pytest.raises(SecurityModuleUnavailableError) as caught:
        read_card_info(_card("gen3-adult"), authenticator=psam)
    assert caught.value.code == -2201


def test_chain_uses_hsm_when_psam_is_gone(hsm: _HsmServer) -> None:
    transport = _psam(full_psam())
    chain = find_authenticator(psam_transport=transport, central=hsm)
    assert chain is not None
    transport.close()
    info = read_card_info(_card("gen3-adult"), authenticator=chain)
    assert info.authenticated_by == "hsm:central"


class _ProvincePsam(VirtualPsam):
    """A PSAM holding the read keys of its own province only (cards whose region code
    starts with ``province``): another province's card is -2203, as in the field."""

    def __init__(self, province: str) -> None:
        super().__init__()
        self.province = bytes.fromhex(province)

    def transmit(self, apdu: bytes) -> bytes:
        if apdu[:2] == b"\x80\x1a" and apdu[2] == 0x02 and not apdu[5:].startswith(
                self.province):
            self.commands += 1
            return bytes.fromhex("6A88")
        return super().transmit(apdu)


def test_chain_falls_back_to_hsm_whatever_the_psam_served_before(hsm: _HsmServer) -> None:
    """The PSAM skips its key check once it has served a card of the algorithm; a
    refusal after that (another province's card: no read key; the PSAM pulled) came
    out of ``authenticate`` and the chain never asked the HSM, although the same card
    read fine through the HSM when it came first."""
    first = find_authenticator(psam_transport=_psam(_ProvincePsam("33")), central=hsm)
    assert first is not None
    assert read_card_info(_card("other-province"), authenticator=first).complete
    assert first.name == "hsm:central" and first.last_fallback_code == -2203
    chain = find_authenticator(psam_transport=_psam(_ProvincePsam("33")), central=hsm)
    assert chain is not None
    assert read_card_info(_card("gen3-adult"), authenticator=chain).complete
    assert chain.name == "psam:sim:psam"
    info = read_card_info(_card("other-province"), authenticator=chain)
    assert info.complete and info.authenticated_by == "hsm:central"
    assert chain.last_fallback_code == -2203
    assert read_card_info(_card("gen3-adult"), authenticator=chain).authenticated_by == (
        "psam:sim:psam")
    chain.close()  # the PSAM goes away after serving cards
    info = read_card_info(_card("gen3-adult"), authenticator=chain)
    assert info.complete and info.authenticated_by == "hsm:central"
    assert chain.last_fallback_code == -2201


def _clone_passing_external() -> VirtualCard:
    """A clone that knows the genuine external key (diversified from the master key for
    the identification code it copies) but not the internal one: external authentication
    opens it, so only internal authentication can tell it is not the real card (issue
    23: the older clone failed both, and a module that ignored a failed internal
    authentication was caught only by the later external failure, as another error)."""
    data = load_holder("gen3-cloned")
    ident = bytes.fromhex(dict(data["ef05"])["01"])
    external = card_keys.diversify(card_keys.TEST_MK_EXT, ident, data["algorithm"])
    data["keys"] = {"internal": data["keys"]["internal"], "external": external.hex().upper()}
    return VirtualCard(data)


def test_the_external_only_clone_really_passes_external_authentication() -> None:
    card = _clone_passing_external()
    processor = ApduProcessor(SimTransport(card))
    assert processor.send_raw(bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")).ok
    psam = PsamAuthenticator(_psam(full_psam()))
    context = CardAuthContext(card.ef05[0][1], card.algorithm, card.atr,
                              card.ef05[0][1].hex()[:6])
    read_id = bytes.fromhex("00B2083000")            # EF06 tag 08, by tag
    assert processor.send_raw(read_id).sw == 0x6982  # closed before authentication
    psam.check(context)
    external_authenticate(processor, psam.external_cryptogram(context, get_challenge(processor)))
    assert card.ext_tries == 3
    # ...and holder data opens after it: this clone would be read if internal were skipped
    record = processor.send_raw(read_id)
    assert record.ok and record.data


@pytest.mark.parametrize("module", ["psam", "hsm", "chain"])
def test_a_clone_passing_external_but_failing_internal_is_refused_as_forged(
        hsm: _HsmServer, module: str) -> None:
    records: list[ForgeryRecord] = []
    psam = PsamAuthenticator(_psam(full_psam()), recorder=records.append)
    two_step = HsmTwoStepAuthenticator(hsm, recorder=records.append)
    authenticator = {"psam": psam, "hsm": two_step,
                     "chain": find_authenticator(psam_transport=_psam(full_psam()),
                                                 central=hsm)}[module]
    card = _clone_passing_external()
    with pytest.raises(ForgedCardError, match="forged or cloned"):
        read_card_info(SimTransport(card), authenticator=authenticator)
    assert card.ext_tries == 3             # external authentication was never attempted
    assert not card._authenticated
    if module != "chain":
        assert len(records) == 1 and records[0].card_identification_code == \
            card.ef05[0][1].hex().upper()


def test_the_unified_two_step_refuses_the_external_only_clone_with_minus_25() -> None:
    card = _clone_passing_external()
    session = HsmTwoStepSession(SimTransport(card))
    code, step1 = session.step1()
    assert code == 0
    assert session.step2(_hsm_from_step1_string(step1)) == (-25, "")
    assert card.ext_tries == 3 and not card._authenticated


class _Wire(RecordingTransport):
    """Records (target, command, answer) of every exchange with a real virtual device."""

    def __init__(self, inner: SimTransport, wire: list[tuple[str, bytes, bytes]],
                 target: str) -> None:
        super().__init__(inner, [], target)
        self.wire = wire

    def transmit(self, apdu: bytes) -> bytes:
        answer = super().transmit(apdu)
        self.wire.append((self.target, apdu, answer))
        return answer


@pytest.mark.parametrize(("holder", "p2"), [("gen3-adult", 0x00), ("gen3-3des", 0x01)])
def test_the_authentication_apdus_are_exactly_the_specs(holder: str, p2: int) -> None:
    """Byte for byte (sscard-card.md): the virtual PSAM and card accept sloppy headers, so
    only this pins P1, P2, Le and the order of the exchange. The random parts are checked
    by how they flow: the card's random goes to the PSAM, the PSAM's answer is compared,
    the card's challenge (padded with 8 zero bytes) is encrypted and sent back."""
    wire: list[tuple[str, bytes, bytes]] = []
    card = VirtualCard.from_holder(holder)
    ident = card.ef05[0][1]
    psam = PsamAuthenticator(_Wire(_psam(full_psam()), wire, "psam"))
    info = read_card_info(_Wire(SimTransport(card, reader_name="sim:card"), wire, "card"),
                          authenticator=psam)
    assert info.complete and info.authenticated_by == "psam:sim:psam"
    auth = [(t, c, a) for t, c, a in wire if t == "psam" or c[1] in (0x88, 0x84, 0x82)]
    derive = bytes((0x80, 0x1A))
    key = bytes((p2, 0x10)) + ident
    ok = b"\x90\x00"
    expected_heads = [
        ("psam", bytes.fromhex("00A4000002DF01")),                  # SELECT DF01
        ("psam", derive + b"\x02" + key), ("psam", derive + b"\x01" + key),   # check()
        ("card", bytes.fromhex("0088000010")),                      # INTERNAL AUTHENTICATE
        ("psam", derive + b"\x01" + key), ("psam", bytes.fromhex("80FA000010")),
        ("card", bytes.fromhex("0084000008")),                      # GET CHALLENGE
        ("psam", derive + b"\x02" + key), ("psam", bytes.fromhex("80FA000010")),
        ("card", bytes.fromhex("0082000A10")),                      # EXTERNAL AUTHENTICATE
    ]
    assert len(auth) == len(expected_heads)
    for (target, command, answer), (want_target, head) in zip(auth, expected_heads,
                                                               strict=True):
        assert target == want_target and command[:len(head)] == head, command.hex()
        assert answer[-2:] == ok, (command.hex(), answer.hex())
    internal, internal_enc = auth[3], auth[5]
    challenge, external_enc, external = auth[6], auth[8], auth[9]
    random = internal[1][5:21]
    assert len(internal[1]) == 21 and len(random) == 16            # no Le on case 3
    assert internal_enc[1] == bytes.fromhex("80FA000010") + random + b"\x10"
    assert internal_enc[2][:-2] == internal[2][:-2]                 # the card was genuine
    assert len(challenge[2]) == 10
    assert external_enc[1] == (bytes.fromhex("80FA000010") + challenge[2][:8] + bytes(8)
                               + b"\x10")
    assert external[1] == bytes.fromhex("0082000A10") + external_enc[2][:-2]


def test_the_hsm_request_body_is_exactly_the_documented_json() -> None:
    """The central's HSM route parses leniently; a real HSM gateway may not: keys and
    upper-case hex pinned."""
    card = CardAuthContext(bytes.fromhex("330300D15600000500A1B2C3D4E5F601"), 0x03,
                           bytes.fromhex("3b6d00"), "330300")
    step1 = HsmStep1(card, bytes(range(16)), bytes(16), bytes(range(0xA0, 0xA8)) + bytes(8))
    assert step1.request_body() == {
        "region": "330300",
        "atr": "3B6D00",
        "algorithm": 3,
        "card_identification_code": "330300D15600000500A1B2C3D4E5F601",
        "internal_random": "000102030405060708090A0B0C0D0E0F",
        "external_challenge": "A0A1A2A3A4A5A6A70000000000000000",
    }


@pytest.mark.parametrize(("text", "internal", "external"), [
    ("00" * 16 + "|" + "ab" * 16, "00" * 16, "ab" * 16),
    ("00" * 16 + "|" + "AB" * 16 + "|", "00" * 16, "ab" * 16),    # trailing '|'
    (" " + "0f" * 16 + "|\n", "0f" * 16, ""),                     # generation 1/2: no external
    ("0F" * 16, "0f" * 16, ""),
    ("0F" * 16 + "||", "0f" * 16, ""),                           # empty external, trailing '|'
])
def test_hsm_key_strings_that_parse(text: str, internal: str, external: str) -> None:
    assert parse_hsm_key(text) == HsmKey(bytes.fromhex(internal), bytes.fromhex(external))


@pytest.mark.parametrize("text", [
    "", "|", "00" * 16 + "|" + "ab" * 16 + "|x", "00" * 15 + "|",
    "00" * 16 + "|" + "ab" * 15, "0g" * 16 + "|", "00" * 16 + "|" + "zz" * 16, "0X" * 16,
    "|" + "00" * 16, "00" * 16 + "|" + "ab" * 16 + "||",
])
def test_hsm_key_strings_that_do_not(text: str) -> None:
    with pytest.raises(CentralProtocolError) as refused:
        parse_hsm_key(text)
    assert str(refused.value) == "HSM key string is not '<32 hex>|<32 hex>'"


def test_hsm_forgeries_are_counted_logged_and_recorded_whole(
        hsm: _HsmServer, caplog: pytest.LogCaptureFixture) -> None:
    records: list[ForgeryRecord] = []
    auth = HsmTwoStepAuthenticator(hsm, recorder=records.append)
    for _ in range(2):
        card = VirtualCard.from_holder("gen3-cloned")
        with pytest.raises(ForgedCardError) as caught:
            read_card_info(SimTransport(card), authenticator=auth)
        assert str(caught.value) == ("internal authentication disagrees with the HSM: the "
                                     "card is forged or cloned")
    assert auth.forgeries_detected == 2 and len(records) == 2
    record = records[1]
    assert (record.card_identification_code, record.region, record.algorithm,
            record.module) == (card.ef05[0][1].hex().upper(), "330300", card.algorithm,
                               "hsm:central")
    assert abs((datetime.now(UTC) - record.detected_at).total_seconds()) < 60
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "sscard_terminal.cards.authentication.hsm"]
    assert warnings == ["forged or cloned card refused: region 330300, HSM mismatch"] * 2


def test_hsm_answers_that_are_no_answer(hsm: _HsmServer) -> None:
    auth = HsmTwoStepAuthenticator(hsm)
    hsm.override_answer = {"status": "ok"}
    with pytest.raises(CentralProtocolError) as no_key:
        read_card_info(_card("gen3-adult"), authenticator=auth)
    assert str(no_key.value) == "HSM answer has no 'key' string"
    hsm.override_answer = None
    card = VirtualCard.from_holder("gen3-adult")
    processor = ApduProcessor(SimTransport(card))
    assert processor.send_raw(bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")).ok
    context = CardAuthContext(card.ef05[0][1], card.algorithm, card.atr, "330300")
    step1 = hsm_step1(processor, context)
    good = auth.ask(step1, Deadline.after(5))
    with pytest.raises(CentralProtocolError) as no_external:
        hsm_step2(processor, step1, HsmKey(good.expected_internal, b""))
    assert str(no_external.value) == "HSM answered no external cryptogram (generation 3)"


def test_an_unreachable_central_hsm_is_a_security_module_error() -> None:
    with CentralClient("http://127.0.0.1:9", "T-BUS-0001", "x" * 32) as dead:
        auth = HsmTwoStepAuthenticator(dead, budget_s=2.0)
        with pytest.raises(SecurityModuleUnavailableError) as caught:
            read_card_info(_card("gen3-adult"), authenticator=auth)
    assert caught.value.code == -999
    assert str(caught.value).startswith("central HSM cannot authenticate the card: ")


def test_the_hsm_honours_the_callers_deadline(hsm: _HsmServer) -> None:
    auth = HsmTwoStepAuthenticator(hsm, budget_s=30.0)
    card = VirtualCard.from_holder("gen3-adult")
    processor = ApduProcessor(SimTransport(card))
    assert processor.send_raw(bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")).ok
    context = CardAuthContext(card.ef05[0][1], card.algorithm, card.atr, "330300")
    with pytest.raises(DeadlineExceededError) as late:
        auth.authenticate(processor, context, Deadline.after(-1.0))
    assert str(late.value) == "no time left for HSM read authentication"
    assert hsm.requests == []                       # the central was never asked
    auth.authenticate(processor, context)           # its own 30 s budget
    assert len(hsm.requests) == 1


@pytest.mark.parametrize(("ins", "step"), [
    (0x88, "internal authentication"), (0x84, "GET CHALLENGE"),
    (0x82, "external authentication")])
def test_a_card_refusing_a_step_of_authentication_says_which_and_its_status_word(
        ins: int, step: str) -> None:
    card = VirtualCard.from_holder("gen3-adult", Faults(wrong_sw={ins: 0x6985}))
    with pytest.raises(CardRefusedError) as refused:
        read_card_info(SimTransport(card), authenticator=PsamAuthenticator(_psam(full_psam())))
    assert (str(refused.value), refused.value.sw) == (f"the card refused {step} (SW 6985)",
                                                      0x6985)


def test_the_psam_terminal_number_read_is_exactly_read_binary_by_sfi() -> None:
    log: list[tuple[str, bytes]] = []
    assert read_terminal_number(RecordingTransport(_psam(full_psam()), log, "psam")) == \
        "410100813475"
    assert log[-1] == ("psam", bytes.fromhex("00B0960006"))


class _CountedTransactions(RecordingTransport):
    def __init__(self, inner: SimTransport) -> None:
        super().__init__(inner, [], "psam")
        self.transactions = 0

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        self.transactions += 1
        return contextlib.nullcontext()


def test_a_psam_read_takes_the_psam_in_one_transaction_and_logs_a_forgery_plainly(
        caplog: pytest.LogCaptureFixture) -> None:
    psam_transport = _CountedTransactions(_psam(full_psam()))
    psam = PsamAuthenticator(psam_transport)
    assert read_card_info(_card("gen3-adult"), authenticator=psam).complete
    assert psam_transport.transactions == 1        # derive and encrypt never split
    with pytest.raises(ForgedCardError):
        read_card_info(SimTransport(VirtualCard.from_holder("gen3-cloned")), authenticator=psam)
    assert psam_transport.transactions == 2
    warnings = [r.getMessage() for r in caplog.records
                if r.name == "sscard_terminal.cards.authentication.psam"]
    assert warnings == ["forged or cloned card refused: region 330300, internal "
                        "authentication by psam:sim:psam mismatched"]


def test_a_device_that_is_no_psam_is_refused_with_the_status_word_it_gave() -> None:
    stranger = SimTransport(_SelectsAnything(), reader_name="sim:bank")
    with pytest.raises(SecurityModuleUnavailableError) as refused:
        read_terminal_number(stranger)
    assert (refused.value.code, str(refused.value)) == (
        -2201, "sim:bank: no terminal number (SW 6A82)")
    card = read_card_info(_card("gen3-adult"))
    context = CardAuthContext(bytes.fromhex(card.card_identification_code), 0x03, card.atr,
                              card.region)
    with pytest.raises(SecurityModuleUnavailableError) as refused:
        PsamAuthenticator(stranger).check(context)
    assert (refused.value.code, str(refused.value)) == (
        -2201, "psam:sim:bank: derive key 02 refused (SW 6A82)")
