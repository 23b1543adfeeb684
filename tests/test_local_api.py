"""The local API through real sockets: Unix socket, HTTP and WebSocket on 127.0.0.1.

The server runs on its own event loop in a thread, exactly as the daemon will mount
it; the clients are plain blocking sockets and httpx, written independently of the
server's code. Cards are the in-process virtual cards (``SimTransport``); the pcscd
variants of the main read and the two-step are in test_local_api_pcsc.py.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sscard_hardware_sim.central_hsm import read_auth_key
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.virtual_psam import full_psam, psam_without_read_key

from sscard_terminal.apdu.transport import CardInterface, CardTransport
from sscard_terminal.cards.authentication.context import ReadAuthenticator
from sscard_terminal.cards.authentication.psam import (
    ForgeryRecord,
    ForgeryRecorder,
    PsamAuthenticator,
)
from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.cards.unified import format_basic_info
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.sim import SimTransport
from sscard_terminal.errors import CardRemovedError, ConfigError
from sscard_terminal.local_api import (
    MAX_REQUEST_BYTES,
    SOCKET_MODE,
    CardReaderService,
    CardSettings,
    HttpSecurity,
    LocalApi,
    LoopbackHttpServer,
    UnixSocketServer,
)

TERMINAL = "410100813475"
DEVICE = "MT170701000006"
ALLOWED_ORIGIN = "http://his.example"

# --- harness -----------------------------------------------------------------------------


class SimOpener:
    """Hands out connections to one holder's fresh virtual card and keeps them, so a
    test can see whether the server released the card."""

    def __init__(self, holder: str) -> None:
        self.holder = holder
        self.opened: list[SimTransport] = []

    def __call__(self, deadline: Deadline) -> CardTransport:
        card = VirtualCard.from_holder(self.holder)
        interface = CardInterface(card.interface)
        transport = SimTransport(card, reader_name="sim:card", interface=interface)
        self.opened.append(transport)
        return transport


def released(transport: CardTransport) -> bool:
    """Whether the server closed this card connection (a released card refuses I/O)."""
    try:
        transport.transmit(bytes.fromhex("00A4040000"))
    except CardRemovedError:
        return True
    return False


class ApiHarness:
    """A :class:`LocalApi` served on a Unix socket and the loopback bridge, on an event
    loop in a background thread."""

    def __init__(self, service: CardReaderService, tmp: Path, *,
                 origins: frozenset[str] = frozenset({ALLOWED_ORIGIN}),
                 name: str = "api.sock") -> None:
        self.service = service
        self.token = secrets.token_urlsafe(24)
        self.socket_path = tmp / name
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.api = LocalApi(service)
        self.unix = UnixSocketServer(self.api, self.socket_path)
        self.http = LoopbackHttpServer(self.api, port=0,
                                       security=HttpSecurity(self.token, origins))
        self._run(self.unix.start())
        self._run(self.http.start())

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=15)

    @property
    def port(self) -> int:
        return self.http.port

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._run(self.http.stop())
        self._run(self.unix.stop())
        self._run(self.api.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()


class UnixClient:
    """Newline-delimited JSON over the Unix socket, as a HIS plugin would speak it."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def send_raw(self, raw: bytes) -> None:
        self.sock.sendall(raw)

    def receive(self) -> dict[str, Any]:
        line = self.file.readline()
        assert line.endswith(b"\n"), f"connection ended: {line!r}"
        answer: dict[str, Any] = json.loads(line)
        return answer

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send_raw(json.dumps(request, ensure_ascii=False).encode() + b"\n")
        return self.receive()

    def at_eof(self) -> bool:
        return self.file.readline() == b""

    def close(self) -> None:
        self.file.close()
        self.sock.close()


class WsClient:
    """A minimal RFC 6455 client (masked frames), independent of the server's codec."""

    def __init__(self, port: int, *, path: str = "/", host: str | None = None,
                 origin: str | None = ALLOWED_ORIGIN) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [f"GET {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}",
                 "Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
                 "Sec-WebSocket-Version: 13"]
        if origin is not None:
            lines.append(f"Origin: {origin}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                break
            head += chunk
        self.status = int(head.split(b" ")[1]) if head else 0
        self.head = head.decode("latin-1")

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        mask = os.urandom(4)
        size = len(payload)
        header = bytes([(0x80 if fin else 0) | opcode])
        if size < 126:
            header += bytes([0x80 | size])
        elif size < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", size)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", size)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _exact(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def receive_frame(self) -> tuple[int, bytes]:
        first, second = self._exact(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", self._exact(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", self._exact(8))
        assert not second & 0x80, "server frames are never masked"
        return first & 0x0F, self._exact(size)

    def call(self, request: dict[str, Any]) -> dict[str, Any]:
        self.send_frame(0x1, json.dumps(request, ensure_ascii=False).encode())
        opcode, payload = self.receive_frame()
        assert opcode == 0x1, (opcode, payload)
        answer: dict[str, Any] = json.loads(payload)
        return answer

    def close(self) -> None:
        self.sock.close()


def sim_service(holder: str, *, authenticator: ReadAuthenticator | None = None,
                session_timeout: float = 30.0, recorder: ForgeryRecorder | None = None,
                ) -> tuple[CardReaderService, SimOpener]:
    opener = SimOpener(holder)
    service = CardReaderService(opener, authenticator=authenticator, settings=CardSettings(
        terminal_number=TERMINAL, device_number=DEVICE, hsm_session_timeout_s=session_timeout),
        recorder=recorder)
    return service, opener


def sim_psam() -> PsamAuthenticator:
    return PsamAuthenticator(SimTransport(full_psam(), reader_name="sim:psam"))


def expected_basic(holder: str) -> str:
    """The one-step read of ``holder`` done directly (PSAM), as the API must answer it."""
    info = read_card_info(SimTransport(VirtualCard.from_holder(holder)),
                          authenticator=sim_psam())
    text = format_basic_info(info, terminal_number=TERMINAL, device_number=DEVICE)
    assert isinstance(text, str)
    return text


def hsm_key_for(step1: str) -> str:
    """What a HIS does with the step-1 string: its HSM answers the key string."""
    fields = step1.split("|")
    status, answer = read_auth_key({
        "algorithm": int(fields[2], 16), "card_identification_code": fields[3],
        "internal_random": fields[5], "external_challenge": fields[7]})
    assert status == 200
    key: str = answer["key"]
    return key + "|"


def wrong_key(key: str) -> str:
    internal, external, _ = key.split("|")
    flipped = f"{int(internal[0], 16) ^ 1:X}" + internal[1:]
    return f"{flipped}|{external}|"


@pytest.fixture
def make_harness(tmp_path: Path) -> Iterator[Callable[..., tuple[ApiHarness, SimOpener]]]:
    harnesses: list[ApiHarness] = []

    def make(holder: str = "gen2-adult", **kwargs: Any) -> tuple[ApiHarness, SimOpener]:
        origins = kwargs.pop("origins", frozenset({ALLOWED_ORIGIN}))
        service, opener = sim_service(holder, **kwargs)
        harness = ApiHarness(service, tmp_path, origins=origins,
                             name=f"api{len(harnesses)}.sock")
        harnesses.append(harness)
        return harness, opener

    yield make
    for harness in harnesses:
        harness.close()


Make = Callable[..., tuple[ApiHarness, SimOpener]]

# --- Unix socket: the functions ------------------------------------------------------------


def test_ping_and_version(make_harness: Make) -> None:
    harness, opener = make_harness()
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "ping", "id": 7}) == {
        "code": 0, "data": "pong", "function": "ping", "id": 7}
    assert client.call({"function": "version"})["data"].startswith("sscard-terminal ")
    client.close()
    assert opener.opened == []


@pytest.mark.parametrize("holder", ["gen2-adult", "gen1-adult"])
def test_read_basic_free_generations(make_harness: Make, holder: str) -> None:
    harness, opener = make_harness(holder)
    client = UnixClient(harness.socket_path)
    answer = client.call({"function": "iReadCardBas", "iType": 3})
    assert answer["code"] == 0
    assert answer["data"] == expected_basic(holder)
    fields = answer["data"].split("|")
    assert len(fields) == 12 and fields[9] == TERMINAL and fields[10] == DEVICE
    assert released(opener.opened[0])
    client.close()


def test_read_basic_gen3_with_psam_and_gbk(make_harness: Make) -> None:
    harness, _ = make_harness("gen3-adult", authenticator=sim_psam())
    client = UnixClient(harness.socket_path)
    answer = client.call({"function": "iReadCardBas", "iType": 1, "encoding": "gbk"})
    assert answer["code"] == 0 and answer["data"] == expected_basic("gen3-adult")
    assert bytes.fromhex(answer["data_gbk_hex"]).decode("gbk") == answer["data"]
    # The name is Chinese: the GBK bytes are not the UTF-8 ones.
    assert bytes.fromhex(answer["data_gbk_hex"]) != answer["data"].encode()
    client.close()


def test_gen3_without_module_is_minus_2201_and_psam_without_key_minus_2203(
        make_harness: Make) -> None:
    harness, _ = make_harness("gen3-adult")
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "iReadCardBas", "iType": 3}) == {
        "code": -2201, "data": "", "function": "iReadCardBas"}
    client.close()
    psam = PsamAuthenticator(SimTransport(psam_without_read_key(), reader_name="sim:psam"))
    harness, _ = make_harness("gen3-adult", authenticator=psam)
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "iReadCardBas", "iType": 3})["code"] == -2203
    client.close()


def test_itype_contactless_on_a_contact_card_is_no_card(make_harness: Make) -> None:
    harness, _ = make_harness("gen2-adult")
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "iReadCardBas", "iType": 2})["code"] == -2
    assert client.call({"function": "iReadCardBas", "iType": 4})["code"] == 0
    assert client.call({"function": "iReadCardBas", "iType": "1"})["code"] == 0
    client.close()


def test_unknown_function_and_bad_parameters(make_harness: Make) -> None:
    harness, opener = make_harness()
    client = UnixClient(harness.socket_path)
    unknown = client.call({"function": "ireadcardbas"})  # names are case-sensitive
    assert unknown["code"] == -13 and "iReadCardBas" in unknown["error"]
    # "²" and 5000 digits pass str.isdigit() but int() refuses them (was -999); "٣"
    # (Arabic-Indic 3) passed as 3.
    for itype in (0, 5, "x", True, None, 2.5, "\u00b2", "\u0663", "3" * 5000):
        answer = client.call({"function": "iReadCardBas", "iType": itype})
        assert answer["code"] == -14 and "iType" in answer["error"], itype
    assert client.call({"iType": 3})["code"] == -14
    assert client.call({"function": "iReadCardBas", "encoding": "big5"})["code"] == -14
    assert client.call({"function": "iReadCardBas_HSM_Step2"})["code"] == -23
    client.close()
    assert opener.opened == []  # none of these touched a card


def test_read_card_named_items(make_harness: Make) -> None:
    harness, _ = make_harness("gen2-adult")
    client = UnixClient(harness.socket_path)
    basic = expected_basic("gen2-adult").split("|")
    answer = client.call({"function": "iReadCard", "iType": 3,
                          "fileAddr": "SSSEEF05|01|07|$3F00EF06|08|09|$"})
    assert answer["code"] == 0
    assert answer["data"] == (f"SSSEEF05|{basic[3]}|{basic[2]}|$"
                              f"3F00EF06|{basic[1]}|{basic[4]}|$")
    for bad in ("SSSEEF05|01|07|", "SSSEEF07|01|$", "SSSEEF05|08|$", "SSSEEF06|4E|$",
                "SSSEEF05|$", "SSSEEF05|1|$", "garbage"):
        refused = client.call({"function": "iReadCard", "fileAddr": bad})
        assert refused["code"] == -14 and refused["error"], bad
    assert client.call({"function": "iReadCard"})["code"] == -14
    client.close()


def test_read_card_gen3_without_module_gives_free_items_only(make_harness: Make) -> None:
    harness, _ = make_harness("gen3-adult")
    client = UnixClient(harness.socket_path)
    free = client.call({"function": "iReadCard", "fileAddr": "SSSEEF05|01|03|07|$"})
    idcode = VirtualCard.from_holder("gen3-adult").ef05[0][1].hex().upper()
    assert free["code"] == 0 and free["data"].startswith(f"SSSEEF05|{idcode}|3")
    closed = client.call({"function": "iReadCard", "fileAddr": "SSSEEF06|08|$"})
    assert closed == {"code": -2201, "data": "", "function": "iReadCard"}
    client.close()


def test_internal_error_costs_one_request_only(tmp_path: Path) -> None:
    calls: list[int] = []

    def broken_then_fine(deadline: Deadline) -> CardTransport:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug below the API")
        return SimTransport(VirtualCard.from_holder("gen2-adult"))

    harness = ApiHarness(CardReaderService(broken_then_fine), tmp_path)
    try:
        client = UnixClient(harness.socket_path)
        answer = client.call({"function": "iReadCardBas", "iType": 3})
        assert answer["code"] == -999 and "internal error" in answer["error"]
        assert client.call({"function": "iReadCardBas", "iType": 3})["code"] == 0
        client.close()
    finally:
        harness.close()


# --- the HSM two-step ------------------------------------------------------------------------


@pytest.mark.parametrize("holder", ["gen3-adult", "gen3-3des"])
def test_two_step_gives_the_one_step_string(make_harness: Make, holder: str) -> None:
    harness, opener = make_harness(holder)
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "iReadCardBas", "iType": 3})["code"] == -2201
    step1 = client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    assert step1["code"] == 0 and len(step1["data"].split("|")) == 9
    card = opener.opened[-1]
    assert not released(card)  # connected between the steps
    step2 = client.call({"function": "iReadCardBas_HSM_Step2",
                         "key": hsm_key_for(step1["data"])})
    assert step2 == {"code": 0, "data": expected_basic(holder),
                     "function": "iReadCardBas_HSM_Step2"}
    assert released(card)
    client.close()


def test_step2_wrong_key_is_minus_25_and_releases(make_harness: Make) -> None:
    harness, opener = make_harness("gen3-adult")
    client = UnixClient(harness.socket_path)
    step1 = client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    answer = client.call({"function": "iReadCardBas_HSM_Step2",
                          "key": wrong_key(hsm_key_for(step1["data"]))})
    assert answer["code"] == -25 and answer["data"] == ""
    assert released(opener.opened[-1])
    # The session is spent: replaying Step2 is illegal input.
    replay = client.call({"function": "iReadCardBas_HSM_Step2",
                          "key": hsm_key_for(step1["data"])})
    assert replay["code"] == -23
    client.close()


def test_step2_mismatch_is_counted_and_recorded_without_holder_data(
        make_harness: Make, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 6 item 2: a card whose internal authentication disagrees is counted and
    recorded (no holder data) on the two-step path too, not only answered -25."""
    records: list[ForgeryRecord] = []
    harness, _ = make_harness("gen3-adult", recorder=records.append)
    client = UnixClient(harness.socket_path)
    step1 = client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    key = hsm_key_for(step1["data"])
    assert client.call({"function": "iReadCardBas_HSM_Step2",
                        "key": wrong_key(key)})["code"] == -25
    assert harness.service.forgeries_detected == 1
    assert len(records) == 1
    record = records[0]
    fields = step1["data"].split("|")
    assert record.card_identification_code == fields[3] and record.region == fields[0]
    assert record.module == "hsm:two-step" and record.algorithm == int(fields[2], 16)
    assert any("forged or cloned" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)
    # A genuine card is neither counted nor recorded.
    step1 = client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    assert client.call({"function": "iReadCardBas_HSM_Step2",
                        "key": hsm_key_for(step1["data"])})["code"] == 0
    assert harness.service.forgeries_detected == 1 and len(records) == 1
    client.close()
    clear = read_card_info(SimTransport(VirtualCard.from_holder("gen3-adult")),
                           authenticator=sim_psam())
    for secret in (clear.name, clear.social_security_number, clear.card_number):
        assert secret not in caplog.text and secret not in repr(record)


def test_step2_malformed_key_is_minus_23(make_harness: Make) -> None:
    harness, _ = make_harness("gen3-adult")
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})["code"] == 0
    assert client.call({"function": "iReadCardBas_HSM_Step2", "key": "12|34|"})["code"] == -23
    client.close()


def test_step2_without_step1_is_illegal_input(make_harness: Make) -> None:
    harness, opener = make_harness("gen3-adult")
    client = UnixClient(harness.socket_path)
    answer = client.call({"function": "iReadCardBas_HSM_Step2", "key": "00" * 16 + "|" +
                          "00" * 16 + "|"})
    assert answer["code"] == -23 and opener.opened == []
    client.close()


def test_session_belongs_to_its_connection(make_harness: Make) -> None:
    harness, _ = make_harness("gen3-adult")
    first, second = UnixClient(harness.socket_path), UnixClient(harness.socket_path)
    step1 = first.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    key = hsm_key_for(step1["data"])
    # Another client cannot finish (or steal) the first client's two-step.
    assert second.call({"function": "iReadCardBas_HSM_Step2", "key": key})["code"] == -23
    assert first.call({"function": "iReadCardBas_HSM_Step2", "key": key})["code"] == 0
    first.close()
    second.close()


def test_session_expiry_releases_the_card(make_harness: Make) -> None:
    harness, opener = make_harness("gen3-adult", session_timeout=0.3)
    client = UnixClient(harness.socket_path)
    step1 = client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    assert step1["code"] == 0
    card = opener.opened[-1]
    end = time.monotonic() + 5
    while not released(card) and time.monotonic() < end:
        time.sleep(0.05)
    assert released(card)
    answer = client.call({"function": "iReadCardBas_HSM_Step2",
                          "key": hsm_key_for(step1["data"])})
    assert answer["code"] == -23
    client.close()


def test_disconnect_and_new_step1_release_the_card(make_harness: Make) -> None:
    harness, opener = make_harness("gen3-adult")
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})["code"] == 0
    first_card = opener.opened[-1]
    step1 = client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    assert released(first_card) and not released(opener.opened[-1])
    client.close()
    end = time.monotonic() + 5
    while not released(opener.opened[-1]) and time.monotonic() < end:
        time.sleep(0.05)
    assert released(opener.opened[-1])
    assert step1["code"] == 0


def test_stopping_releases_the_card_of_an_open_session(tmp_path: Path) -> None:
    service, opener = sim_service("gen3-adult")
    harness = ApiHarness(service, tmp_path)
    client = UnixClient(harness.socket_path)
    assert client.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})["code"] == 0
    assert not released(opener.opened[-1])
    harness.close()
    assert released(opener.opened[-1]) and client.at_eof()
    client.close()
    # A stopped service answers -11 rather than touching the reader again.
    assert service.read_basic(3, Deadline.after(1)) == (-11, "")


# --- Unix socket: bad input, many clients, the socket file ----------------------------------


def test_garbage_gets_json_errors_and_the_server_keeps_serving(make_harness: Make) -> None:
    harness, _ = make_harness()
    bystander = UnixClient(harness.socket_path)
    client = UnixClient(harness.socket_path)
    for raw in (b"{not json\n", b"[1, 2]\n", b"\xff\xfe\x00garbage\n", b'"text"\n', b"null\n"):
        client.send_raw(raw)
        answer = client.receive()
        assert answer["code"] == -23 and answer["error"], raw
    client.send_raw(b"\n  \n")  # blank lines are skipped, not answered
    assert client.call({"function": "ping"})["code"] == 0
    client.send_raw(b"{" + b" " * (MAX_REQUEST_BYTES + 10))
    answer = client.receive()
    assert answer["code"] == -42 and "larger" in answer["error"]
    assert client.at_eof()
    client.close()
    assert bystander.call({"function": "iReadCardBas", "iType": 3})["code"] == 0
    bystander.close()


def test_half_closed_and_vanishing_clients(make_harness: Make) -> None:
    harness, _ = make_harness()
    client = UnixClient(harness.socket_path)
    client.send_raw(b'{"function": "ping"}')  # no newline, then half-close
    client.sock.shutdown(socket.SHUT_WR)
    assert client.receive()["data"] == "pong"
    assert client.at_eof()
    client.close()
    vanishing = UnixClient(harness.socket_path)
    vanishing.send_raw(b'{"function": "iReadCardBas", "iType": 3}\n{"functi')
    vanishing.sock.close()  # gone before reading its answer, mid-request
    survivor = UnixClient(harness.socket_path)
    assert survivor.call({"function": "iReadCardBas", "iType": 3})["code"] == 0
    survivor.close()


def test_two_clients_at_once(make_harness: Make) -> None:
    harness, opener = make_harness("gen3-adult", authenticator=sim_psam())
    expected = expected_basic("gen3-adult")
    results: list[dict[str, Any]] = []

    def reads() -> None:
        client = UnixClient(harness.socket_path)
        for _ in range(5):
            results.append(client.call({"function": "iReadCardBas", "iType": 3}))
        client.close()

    threads = [threading.Thread(target=reads) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(results) == 10
    assert all(r["code"] == 0 and r["data"] == expected for r in results)
    assert all(released(t) for t in opener.opened)


def test_socket_file_mode_stale_replaced_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on: what a crashed server leaves
    service, _ = sim_service("gen2-adult")
    harness = ApiHarness(service, tmp_path)
    try:
        assert stat.S_IMODE(path.lstat().st_mode) == SOCKET_MODE
        assert UnixClient(path).call({"function": "ping"})["code"] == 0
        # A second server refuses a live socket rather than stealing it.
        second = UnixSocketServer(harness.api, path)
        with pytest.raises(ConfigError, match="already listening"):
            asyncio.run(second.start())
        assert UnixClient(path).call({"function": "ping"})["code"] == 0
    finally:
        harness.close()
    assert not path.exists()
    path.write_text("not a socket")
    with pytest.raises(ConfigError, match="not a socket"):
        asyncio.run(UnixSocketServer(harness.api, path).start())
    assert path.read_text() == "not a socket"


# --- the entry point ---------------------------------------------------------------------------


def _serve_one_read(path: Path, *args: str) -> tuple[dict[str, Any], str]:
    """Run the entry point on ``path``, make one iReadCardBas call, stop it with SIGTERM
    (it must exit 0); the answer and everything it logged."""
    server = subprocess.Popen(
        [sys.executable, "-m", "sscard_terminal.local_api", "--socket", str(path),
         "--reader", "sim:gen2-adult", "--no-security-module", *args],
        stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 20
        while not path.exists() and time.monotonic() < end and server.poll() is None:
            time.sleep(0.05)
        client = UnixClient(path)
        answer = client.call({"function": "iReadCardBas", "iType": 3})
        client.close()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0
    finally:
        if server.poll() is None:
            server.kill()
    return answer, server.stderr.read() if server.stderr else ""


def test_entry_point_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    token_file = tmp_path / "token"
    token_file.write_text(secrets.token_urlsafe(24))
    token_file.chmod(0o600)
    answer, log = _serve_one_read(path, "--http-port", "0", "--token-file", str(token_file),
                                  "--terminal-number", TERMINAL, "--device-number", DEVICE)
    assert answer["code"] == 0 and answer["data"] == expected_basic("gen2-adult")
    assert not path.exists()
    assert "iReadCardBas from unix: code 0" in log
    # Nothing of the holder's data in the log: not the number, not the name.
    fields = expected_basic("gen2-adult").split("|")
    assert fields[1] not in log and fields[4] not in log


def test_entry_point_debug_log_holds_no_card_data(tmp_path: Path) -> None:
    """``--log-level DEBUG`` is for the service's own workings: it turned on the APDU
    hex trace too (the root level reached it), which put the holder's ID number and
    name in the log as hex. The trace now needs its own ``--apdu-trace``."""
    answer, log = _serve_one_read(tmp_path / "api.sock", "--log-level", "DEBUG")
    assert answer["code"] == 0
    assert "DEBUG" in log and "iReadCardBas from unix: code 0" in log
    fields = expected_basic("gen2-adult").split("|")
    for secret in (fields[1], fields[4]):
        for shown in (secret, secret.encode("gb18030").hex(" ").upper(),
                      secret.encode("gb18030").hex().upper()):
            assert shown not in log, shown


def test_entry_point_refuses_world_readable_token(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(secrets.token_urlsafe(24))
    token_file.chmod(0o644)
    result = subprocess.run(
        [sys.executable, "-m", "sscard_terminal.local_api", "--socket",
         str(tmp_path / "s"), "--reader", "sim:gen2-adult", "--no-security-module",
         "--http-port", "0", "--token-file", str(token_file)],
        check=False, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "readable by every user" in result.stderr


def test_deep_nesting_and_lone_surrogates_get_answers(make_harness: Make) -> None:
    """JSON nested past the parser's recursion limit, and ``\\ud800`` escapes (valid JSON,
    not encodable Unicode) echoed in ``function`` or ``id``, are answered -23 like any
    bad request: the connection keeps serving."""
    harness, opener = make_harness()
    client = UnixClient(harness.socket_path)
    for raw in (b"[" * 60000 + b"\n", b'{"a":' * 12000 + b"\n",
                b'{"function": "\\ud800"}\n', b'{"function": "ping", "id": "\\udfff"}\n'):
        client.send_raw(raw)
        answer = client.receive()
        assert answer["code"] == -23 and answer["error"], raw[:30]
    # A valid surrogate pair is ordinary Unicode, answered as sent.
    client.send_raw(b'{"function": "ping", "id": "\\ud83d\\ude00"}\n')
    assert client.receive()["id"] == "\U0001f600"
    assert client.call({"function": "ping"})["data"] == "pong"
    client.close()
    assert opener.opened == []
