"""Request authentication against the real simulator: wrong secret, skewed clock,
replayed nonce and tampered body are refused with a reason a terminal can log."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central import CentralClient, Channel
from sscard_terminal.central.auth import NonceCache, sign_request, verify_request
from sscard_terminal.deadline import Deadline
from sscard_terminal.errors import CentralRefusedError

CARD = DEMO_CARDS["normal"]
BODY = {"card_identification_code": CARD.identification_code, "card_number": CARD.card_number,
        "region": CARD.region, "channel": "contact"}


def _validate(client: CentralClient) -> None:
    client.validate_card(CARD.identification_code, CARD.card_number, CARD.region,
                         Channel.CONTACT, Deadline.after(3))


def test_signature_round_trip_and_each_refusal_reason_offline() -> None:
    nonces = NonceCache()
    headers = sign_request("T1", "s3cret", "POST", "/v1/x?a=1", body=b"{}", now=1000.0)
    secrets = {"T1": "s3cret"}.get
    assert verify_request("POST", "/v1/x?a=1", headers, b"{}", secret_for=secrets,
                          nonces=nonces, now=1001.0) == "T1"
    cases = [
        (("POST", "/v1/x?a=1", headers, b"{}"), 1001.0, "replayed_nonce"),
        (("POST", "/v1/x?a=2", headers, b"{}"), 1001.0, "bad_signature"),
        (("GET", "/v1/x?a=1", headers, b"{}"), 1001.0, "bad_signature"),
        (("POST", "/v1/x?a=1", headers, b"{ }"), 1001.0, "bad_signature"),
        (("POST", "/v1/x?a=1", {**headers, "X-Sscard-Terminal": "T2"}, b"{}"), 1001.0,
         "unknown_terminal"),
        (("POST", "/v1/x?a=1", {}, b"{}"), 1001.0, "missing_header"),
    ]
    for (method, target, hdrs, body), now, reason in cases:
        with pytest.raises(CentralRefusedError) as info:
            verify_request(method, target, hdrs, body, secret_for=secrets, nonces=nonces,
                           now=now)
        assert info.value.reason == reason, (method, target, body)
    fresh = sign_request("T1", "s3cret", "GET", "/v1/x", body=b"", now=1000.0)
    with pytest.raises(CentralRefusedError) as info:
        verify_request("GET", "/v1/x", fresh, b"", secret_for=secrets, nonces=nonces,
                       now=1000.0 + 301)
    assert info.value.reason == "clock_skew"


def test_wrong_secret_is_refused_with_bad_signature(central_sim: CentralSim) -> None:
    with CentralClient(central_sim.base_url, central_sim.terminal_id, "0" * 64) as client:
        with pytest.raises(CentralRefusedError) as info:
            _validate(client)
        assert info.value.reason == "bad_signature"
        ping = client.ping(Deadline.after(3))
    assert ping.auth_ok is False and ping.refusal_reason == "bad_signature"


def test_unknown_terminal_is_refused(central_sim: CentralSim) -> None:
    with CentralClient(central_sim.base_url, "T-NOBODY", central_sim.secret) as client:
        with pytest.raises(CentralRefusedError) as info:
            _validate(client)
    assert info.value.reason == "unknown_terminal"


def test_skewed_clock_is_refused_and_the_offset_is_reported(central_sim: CentralSim) -> None:
    skew = 3600.0
    with central_sim.make_client(clock=lambda: time.time() - skew) as client:
        with pytest.raises(CentralRefusedError) as info:
            _validate(client)
        assert info.value.reason == "clock_skew"
        ping = client.ping(Deadline.after(3))
    assert not ping.auth_ok and ping.refusal_reason == "clock_skew"
    assert abs(ping.clock_offset_s - skew) < 5.0


def test_good_clock_pings_ok_with_small_offset(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        ping = client.ping(Deadline.after(3))
    assert ping.auth_ok and ping.terminal_id == central_sim.terminal_id
    assert abs(ping.clock_offset_s) < 1.0 and 0 < ping.latency_s < 3


def test_replayed_request_is_refused(central_sim: CentralSim) -> None:
    raw = json.dumps(BODY).encode()
    headers = sign_request(central_sim.terminal_id, central_sim.secret, "POST",
                           "/v1/cards/validate", body=raw)
    headers["Content-Type"] = "application/json"
    first = httpx.post(central_sim.base_url + "/v1/cards/validate", content=raw,
                       headers=headers, timeout=5)
    again = httpx.post(central_sim.base_url + "/v1/cards/validate", content=raw,
                       headers=headers, timeout=5)
    assert first.status_code == 200 and first.json()["status"] == "normal"
    assert again.status_code == 401 and again.json()["reason"] == "replayed_nonce"


def test_tampered_body_is_refused(central_sim: CentralSim) -> None:
    raw = json.dumps(BODY).encode()
    headers = sign_request(central_sim.terminal_id, central_sim.secret, "POST",
                           "/v1/cards/validate", body=raw)
    other = json.dumps({**BODY, "card_number": DEMO_CARDS["spare"].card_number}).encode()
    answer = httpx.post(central_sim.base_url + "/v1/cards/validate", content=other,
                        headers=headers, timeout=5)
    assert answer.status_code == 401 and answer.json()["reason"] == "bad_signature"
    assert "X-Sscard-Server-Time" in answer.headers


def test_health_needs_no_auth_but_routes_do(central_sim: CentralSim) -> None:
    assert httpx.get(central_sim.base_url + "/v1/health", timeout=5).json() == {"status": "ok"}
    answer = httpx.get(central_sim.base_url + "/v1/ping", timeout=5)
    assert answer.status_code == 401 and answer.json()["reason"] == "missing_header"


@pytest.mark.parametrize("header,value", [
    ("X-Sscard-Signature", "é" * 64),
    ("X-Sscard-Nonce", "é"),
    ("X-Sscard-Timestamp", "١٧٠٠٠٠٠٠٠٠"),
])
def test_hostile_header_text_is_refused_not_a_type_error(header: str, value: str) -> None:
    headers = sign_request("T1", "s3cret", "GET", "/v1/ping", body=b"", now=1000.0)
    headers[header] = value
    with pytest.raises(CentralRefusedError) as info:
        verify_request("GET", "/v1/ping", headers, b"", secret_for={"T1": "s3cret"}.get,
                       nonces=NonceCache(), now=1000.0)
    assert info.value.reason in ("bad_signature", "bad_timestamp")


def test_non_ascii_signature_over_http_gets_a_refusal(central_sim: CentralSim) -> None:
    """http.server decodes header bytes as Latin-1: a hostile byte must still get a 401
    with a reason, not a handler thread that dies and drops the connection."""
    headers: dict[str, str | bytes] = dict(sign_request(
        central_sim.terminal_id, central_sim.secret, "GET", "/v1/ping", body=b""))
    headers["X-Sscard-Signature"] = b"\xe9" * 64
    answer = httpx.get(central_sim.base_url + "/v1/ping", headers=headers, timeout=5)
    assert answer.status_code == 401 and answer.json()["reason"] == "bad_signature"


@pytest.mark.parametrize("length", ["abc", "-1", "1e3"])
def test_a_bad_content_length_gets_a_400_not_a_dropped_or_stuck_connection(
        central_sim: CentralSim, length: str) -> None:
    port = int(central_sim.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(f"POST /v1/cards/validate HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:80]


def test_a_deeply_nested_request_body_gets_a_400(central_sim: CentralSim) -> None:
    raw = b'{"a":' * 100_000
    headers = sign_request(central_sim.terminal_id, central_sim.secret, "POST",
                           "/v1/cards/validate", body=raw)
    answer = httpx.post(central_sim.base_url + "/v1/cards/validate", content=raw,
                        headers=headers, timeout=5)
    assert answer.status_code == 400 and answer.json()["reason"] == "body is not JSON"
