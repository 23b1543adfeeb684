"""The loopback bridge through real TCP on 127.0.0.1: HTTP POST and WebSocket.

Host, Origin and token checks (each refusal touches no card), CORS, bad input. The
harness and the independent clients are in test_local_api.py.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import struct
import time
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sscard_terminal.errors import ConfigError
from sscard_terminal.local_api import MAX_REQUEST_BYTES, HttpSecurity, decode_request, http_server
from sscard_terminal.local_api.items import parse_items
from sscard_terminal.local_api.protocol import RequestError
from tests.test_local_api import (
    ALLOWED_ORIGIN,
    ApiHarness,
    Make,
    WsClient,
    expected_basic,
    hsm_key_for,
    make_harness,
    released,
)

__all__ = ["make_harness"]  # the fixture, shared with test_local_api.py


# --- loopback HTTP -------------------------------------------------------------------------


def _post(harness: ApiHarness, body: Any, *, token: str | None = "valid",
          headers: dict[str, str] | None = None, path: str = "/") -> httpx.Response:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {harness.token if token == 'valid' else token}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(harness.base + path, content=content, headers=sent, timeout=10)


def test_http_post_reads_the_card(make_harness: Make) -> None:
    harness, _ = make_harness("gen2-adult")
    for path in ("/", "/api"):
        answer = _post(harness, {"function": "iReadCardBas", "iType": 3}, path=path,
                       headers={"Origin": ALLOWED_ORIGIN})
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
        assert answer.json()["data"] == expected_basic("gen2-adult")
    # A native HIS client sends no Origin: the token alone admits it.
    plain = _post(harness, {"function": "iReadCardBas", "iType": 3})
    assert plain.json()["code"] == 0 and "access-control-allow-origin" not in plain.headers


def test_http_refusals_touch_no_card(make_harness: Make) -> None:
    harness, opener = make_harness("gen2-adult")
    read = {"function": "iReadCardBas", "iType": 3}
    rebinding = _post(harness, read, headers={"Host": f"evil.example:{harness.port}"})
    assert rebinding.status_code == 403 and "Host" in rebinding.json()["error"]
    evil = _post(harness, read, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403
    assert "access-control-allow-origin" not in evil.headers
    assert _post(harness, read, headers={"Origin": "null"}).status_code == 403
    assert _post(harness, read, token=None).status_code == 401
    last = "y" if harness.token.endswith("x") else "x"
    wrong = _post(harness, read, token=harness.token[:-1] + last)
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    basic = {"Origin": ALLOWED_ORIGIN, "Authorization": "Basic dXNlcjpwYXNz"}
    assert _post(harness, read, token=None, headers=basic).status_code == 401
    assert opener.opened == []
    # The same request, correctly made, does reach the card.
    assert _post(harness, read).json()["code"] == 0 and len(opener.opened) == 1


def test_http_cors_preflight_only_for_allowed_origins(make_harness: Make) -> None:
    harness, _ = make_harness()
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization, content-type"}
    good = httpx.options(harness.base + "/", headers={**preflight, "Origin": ALLOWED_ORIGIN})
    assert good.status_code == 204
    assert good.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "Authorization" in good.headers["access-control-allow-headers"]
    bad = httpx.options(harness.base + "/", headers={**preflight, "Origin": "http://evil.example"})
    assert bad.status_code == 403 and "access-control-allow-origin" not in bad.headers


def test_http_bad_input(make_harness: Make) -> None:
    harness, opener = make_harness()
    assert _post(harness, b"{oops").status_code == 400
    assert _post(harness, b"\x00\xff" * 10).json()["code"] == -23
    assert _post(harness, b"[]").status_code == 400
    big = _post(harness, b"{" + b" " * (MAX_REQUEST_BYTES + 1))
    assert big.status_code == 413
    assert httpx.get(harness.base + "/").status_code == 405
    assert httpx.get(harness.base + "/other").status_code == 404
    unknown = _post(harness, {"function": "iDoSomething"})
    assert unknown.status_code == 200 and unknown.json()["code"] == -13
    # Raw garbage and a client that stalls mid-body leave the server serving.
    with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as raw:
        raw.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as raw:
        raw.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n"
                    f"Authorization: Bearer {harness.token}\r\nContent-Length: 50\r\n\r\n{{"
                    .encode())
    assert opener.opened == []
    assert _post(harness, {"function": "ping"}).json()["data"] == "pong"


def test_http_security_configuration() -> None:
    with pytest.raises(ConfigError):
        HttpSecurity("short")
    with pytest.raises(ConfigError):
        HttpSecurity("x" * 32, frozenset({"*"}))


# --- WebSocket -----------------------------------------------------------------------------


def test_websocket_token_in_query_and_two_step(make_harness: Make) -> None:
    harness, opener = make_harness("gen3-adult")
    ws = WsClient(harness.port, path=f"/?token={harness.token}")
    assert ws.status == 101
    assert ws.call({"function": "iReadCardBas", "iType": 3})["code"] == -2201
    step1 = ws.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    step2 = ws.call({"function": "iReadCardBas_HSM_Step2", "key": hsm_key_for(step1["data"])})
    assert step2["code"] == 0 and step2["data"] == expected_basic("gen3-adult")
    # The session of a WebSocket ends with it.
    ws.call({"function": "iReadCardBas_HSM_Step1", "iType": 3})
    card = opener.opened[-1]
    ws.send_frame(0x8, struct.pack("!H", 1000))
    assert ws.receive_frame()[0] == 0x8
    ws.close()
    end = time.monotonic() + 5
    while not released(card) and time.monotonic() < end:
        time.sleep(0.05)
    assert released(card)


def test_websocket_auth_message(make_harness: Make) -> None:
    harness, _ = make_harness("gen2-adult")
    ws = WsClient(harness.port, origin=None)
    assert ws.status == 101
    ws.send_frame(0x9, b"hi")  # ping before anything: answered with pong
    assert ws.receive_frame() == (0xA, b"hi")
    assert ws.call({"function": "auth", "token": harness.token})["code"] == 0
    # A fragmented message is reassembled.
    text = json.dumps({"function": "iReadCardBas", "iType": 3}).encode()
    ws.send_frame(0x1, text[:10], fin=False)
    ws.send_frame(0x0, text[10:])
    assert json.loads(ws.receive_frame()[1])["data"] == expected_basic("gen2-adult")
    ws.close()


def test_websocket_refusals(make_harness: Make) -> None:
    harness, opener = make_harness("gen2-adult")
    unauthenticated = WsClient(harness.port)
    answer = unauthenticated.call({"function": "iReadCardBas", "iType": 3})
    assert answer["code"] == -12 and "auth" in answer["error"]
    opcode, payload = unauthenticated.receive_frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1008
    unauthenticated.close()
    wrong = WsClient(harness.port)
    assert wrong.call({"function": "auth", "token": "x" * 32})["code"] == -12
    wrong.close()
    assert WsClient(harness.port, path="/?token=nope").status == 401
    assert WsClient(harness.port, path=f"/?token={harness.token}",
                    origin="http://evil.example").status == 403
    assert WsClient(harness.port, path=f"/?token={harness.token}",
                    host=f"attacker.example:{harness.port}").status == 403
    assert opener.opened == []


def test_websocket_bad_frames_close_only_that_connection(make_harness: Make) -> None:
    harness, _ = make_harness("gen2-adult")
    good = WsClient(harness.port, path=f"/?token={harness.token}")
    binary = WsClient(harness.port, path=f"/?token={harness.token}")
    binary.send_frame(0x2, b"\x00\x01")
    opcode, payload = binary.receive_frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1003
    binary.close()
    big = WsClient(harness.port, path=f"/?token={harness.token}")
    big.send_frame(0x1, b" " * (MAX_REQUEST_BYTES + 1))
    opcode, payload = big.receive_frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1009
    big.close()
    garbage = WsClient(harness.port, path=f"/?token={harness.token}")
    assert garbage.call({"not": "a request"})["code"] == -14
    garbage.send_frame(0x1, b"\xff\xfe")
    opcode, payload = garbage.receive_frame()
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1007
    garbage.close()
    assert good.call({"function": "iReadCardBas", "iType": 3})["code"] == 0
    good.close()


# --- arbitrary input -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_any_request_bytes_decode_or_refuse(raw: bytes | str) -> None:
    try:
        request = decode_request(raw)
    except RequestError as exc:
        assert exc.code in (-14, -23, -42)
    else:
        assert isinstance(request.function, str) and request.function


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="SE3F0561789ABCDabcdx|$ ", max_size=60))
def test_any_item_address_parses_or_refuses(text: str) -> None:
    try:
        files = parse_items(text)
    except RequestError as exc:
        assert exc.code == -14
    else:
        assert files and all(item.tags for item in files)


def test_random_bytes_on_the_port_never_stop_the_bridge(make_harness: Make,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    harness, opener = make_harness()
    rng = random.Random(6455)
    heads = [b"POST / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n",
             f"Host: 127.0.0.1:{harness.port}\r\n".encode(), b"Content-Length: \xb2\r\n", b""]
    for _ in range(40):
        junk = rng.choice(heads) + rng.choice(heads) + rng.randbytes(rng.randrange(0, 200))
        with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as raw:
            raw.sendall(junk + rng.choice([b"\r\n\r\n", b""]))
            raw.shutdown(socket.SHUT_WR)
            with contextlib.suppress(ConnectionError):
                raw.recv(4096)
    assert opener.opened == []
    assert _post(harness, {"function": "iReadCardBas", "iType": 3}).json()["code"] == 0
    # Every one was an expected refusal, none an internal error.
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_http_and_websocket_deep_nesting_and_lone_surrogates(make_harness: Make) -> None:
    harness, opener = make_harness()
    for raw in (b"[" * 60000, b'{"function": "\\ud800"}'):
        answer = _post(harness, raw)
        assert answer.status_code == 400 and answer.json()["code"] == -23
    ws = WsClient(harness.port, path=f"/ws?token={harness.token}")
    assert ws.status == 101
    ws.send_frame(0x1, b'{"function": "ping", "id": "\\udfff"}')
    opcode, payload = ws.receive_frame()
    assert opcode == 0x1 and json.loads(payload)["code"] == -23
    assert ws.call({"function": "ping"})["data"] == "pong"
    ws.close()
    unauthenticated = WsClient(harness.port)
    unauthenticated.send_frame(0x1, b'{"function": "auth", "token": "\\ud800"}')
    opcode, payload = unauthenticated.receive_frame()
    assert opcode == 0x1 and json.loads(payload)["code"] == -23
    unauthenticated.close()
    assert opener.opened == []


def test_websocket_must_authenticate_in_time(make_harness: Make,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """An upgraded WebSocket without a token held its connection for ever: silent, or
    sending pings, it was never asked to authenticate. It now has the HTTP read timeout
    to do so (shortened here); a connection that authenticated stays open."""
    monkeypatch.setattr(http_server, "_READ_TIMEOUT_S", 0.5)
    harness, opener = make_harness("gen2-adult")
    silent = WsClient(harness.port)
    pinging = WsClient(harness.port)
    authenticated = WsClient(harness.port)
    assert authenticated.call({"function": "auth", "token": harness.token})["code"] == 0
    started = time.monotonic()
    frame = (0xA, b"")
    while frame == (0xA, b""):  # pongs until the server gives up on it
        pinging.send_frame(0x9, b"")
        frame = pinging.receive_frame()
        time.sleep(0.05)
    for opcode, payload in (frame, silent.receive_frame()):
        assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1008
    assert time.monotonic() - started < 5
    silent.close()
    pinging.close()
    time.sleep(0.3)
    assert authenticated.call({"function": "ping"})["data"] == "pong"
    authenticated.close()
    assert opener.opened == []


def test_http_content_length_of_thousands_of_digits_is_413(make_harness: Make) -> None:
    """int() refuses more than 4300 digits with a ValueError: the client got no answer
    and the log an "unexpected error" traceback."""
    harness, opener = make_harness()
    # Leading zeros are still a valid length: "{}" is read and refused as a request.
    for digits, status in (("9" * 5000, b"413"), ("0" * 4999 + "2", b"400")):
        with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as raw:
            raw.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n"
                        f"Authorization: Bearer {harness.token}\r\n"
                        f"Content-Length: {digits}\r\n\r\n{{}}".encode())
            assert raw.recv(100).startswith(b"HTTP/1.1 " + status), digits[:5]
    assert opener.opened == []
    assert _post(harness, {"function": "ping"}).json()["data"] == "pong"


@pytest.mark.parametrize("target", ["//[", "http://[::1/"])
def test_request_target_that_urlsplit_refuses_is_400(make_harness: Make, target: str) -> None:
    """urlsplit raises ValueError ("Invalid IPv6 URL") on these: the client got no
    answer and the log an "unexpected error" traceback."""
    harness, opener = make_harness()
    with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as raw:
        raw.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n\r\n".encode())
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    assert opener.opened == []
    assert _post(harness, {"function": "ping"}).json()["data"] == "pong"


# --- limits kept on aiohttp (issue 18) -----------------------------------------------------


def test_oversized_header_line_is_431_json_and_stalled_heads_are_dropped(
        make_harness: Make, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """The limits the hand-written parser enforced, now aiohttp's configured ones: a header
    line above 16 KiB is 431 with a JSON body (not an echo of the line), a client that
    never finishes its head is closed after the read timeout (shortened here)."""
    monkeypatch.setattr(http_server, "_READ_TIMEOUT_S", 0.5)
    harness, opener = make_harness()
    with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as raw:
        raw.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n"
                    f"X-Big: {'A' * 17000}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = raw.recv(4096)
            if not chunk:
                break
            head += chunk
        assert head.startswith(b"HTTP/1.1 431")
        body = head.partition(b"\r\n\r\n")[2] + raw.recv(4096)
        assert json.loads(body)["code"] == -42 and b"AAAA" not in body
    with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as raw:
        many = "".join(f"X-H{i}: v\r\n" for i in range(70))  # above the 64 allowed
        raw.sendall(f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n{many}\r\n"
                    .encode())
        assert raw.recv(100).startswith(b"HTTP/1.1 400")
    with socket.create_connection(("127.0.0.1", harness.port), timeout=5) as raw:
        raw.sendall(f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{harness.port}\r\n".encode())
        started = time.monotonic()
        assert raw.recv(100) == b""  # closed by the server, no answer to half a head
        assert time.monotonic() - started < 4
    assert opener.opened == []
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert _post(harness, {"function": "ping"}).json()["data"] == "pong"


def test_every_route_refuses_a_foreign_host_before_its_handler(make_harness: Make) -> None:
    """The middleware runs ahead of every route, unknown paths included: a rebinding
    page learns nothing, not even which paths exist."""
    harness, _ = make_harness()
    for method, path in (("GET", "/"), ("POST", "/api"), ("GET", "/nothing-here"),
                         ("OPTIONS", "/"), ("DELETE", "/ws")):
        answer = httpx.request(method, harness.base + path, timeout=5,
                               headers={"Host": f"evil.example:{harness.port}",
                                        "Authorization": f"Bearer {harness.token}"})
        assert answer.status_code == 403, (method, path)
        assert answer.json()["code"] == -12
