"""Every injected fault: the client answers within the caller's deadline (plus a small
slack) with CentralUnreachableError, or CentralProtocolError for garbage, never hangs and
never lets an httpx exception through."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_server import ADMIN_TOKEN_HEADER, CentralServer
from sscard_hardware_sim.central_store import DEMO_CARDS, CentralStore

from sscard_terminal.central import CardStatus, CentralClient, Channel
from sscard_terminal.deadline import Deadline
from sscard_terminal.errors import CentralProtocolError, CentralUnreachableError

CARD = DEMO_CARDS["normal"]
BUDGET = 0.3
SLACK = 0.25


def _validate(client: CentralClient, budget: float = BUDGET) -> CardStatus:
    return client.validate_card(CARD.identification_code, CARD.card_number, CARD.region,
                                Channel.CONTACTLESS, Deadline.after(budget)).status


def _timed_failure(client: CentralClient, error: type[Exception]) -> float:
    start = time.monotonic()
    with pytest.raises(error):
        _validate(client)
    return time.monotonic() - start


@pytest.mark.parametrize("mode", ["timeout", "trickle", "error", "reset"])
def test_fault_answers_unreachable_within_the_deadline(central_sim: CentralSim,
                                                       mode: str) -> None:
    with central_sim.make_client() as client:
        assert _validate(client, 3.0) is CardStatus.NORMAL  # warm connection
        central_sim.set_faults(mode=mode)
        took = _timed_failure(client, CentralUnreachableError)
        central_sim.set_faults(mode="none")
        assert _validate(client, 3.0) is CardStatus.NORMAL  # recovers
    assert took < BUDGET + SLACK, f"{mode}: {took:.3f} s"


def test_added_latency_beyond_the_budget_is_unreachable_quickly(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        central_sim.set_faults(latency_ms=2000)
        took = _timed_failure(client, CentralUnreachableError)
        central_sim.set_faults(latency_ms=50)
        assert _validate(client, 2.0) is CardStatus.NORMAL  # within a larger budget
    assert took < BUDGET + SLACK


@pytest.mark.parametrize("mode", ["malformed", "oversized"])
def test_garbage_is_a_protocol_error(central_sim: CentralSim, mode: str) -> None:
    with central_sim.make_client(max_response_bytes=1024 * 1024) as client:
        central_sim.set_faults(mode=mode)
        took = _timed_failure(client, CentralProtocolError)
    assert took < BUDGET + SLACK


def test_one_5xx_or_reset_is_retried_within_the_budget(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        for mode in ("error", "reset"):
            central_sim.set_faults(mode=mode, count=1)
            assert _validate(client, 2.0) is CardStatus.NORMAL


def test_unsafe_post_is_not_retried(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        central_sim.set_faults(mode="error", count=1)
        with pytest.raises(CentralUnreachableError):
            client.post_json("/v1/hsm/read-auth", {}, Deadline.after(2.0))


def test_random_fail_rate_from_the_serve_flag(tmp_path: Path) -> None:
    sim = CentralSim(tmp_path / "c.db", "--fail-rate", "1.0")
    try:
        with sim.make_client() as client:
            took = _timed_failure(client, CentralUnreachableError)
    finally:
        sim.stop()
    assert took < BUDGET + SLACK


def test_server_down_is_unreachable(central_sim: CentralSim) -> None:
    client = central_sim.make_client()
    central_sim.stop()
    with client:
        took = _timed_failure(client, CentralUnreachableError)
    assert took < BUDGET + SLACK


def test_exhausted_deadline_answers_at_once(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        start = time.monotonic()
        with pytest.raises(CentralUnreachableError):
            client.validate_card(CARD.identification_code, CARD.card_number, CARD.region,
                                 Channel.CONTACT, Deadline.after(0.0))
        assert time.monotonic() - start < 0.05


def test_close_from_another_thread_ends_a_blocked_call_at_once(central_sim: CentralSim) -> None:
    client = central_sim.make_client()
    assert _validate(client, 3.0) is CardStatus.NORMAL
    central_sim.set_faults(mode="timeout")
    error, took = _close_while_blocked(client)
    assert error is CentralUnreachableError and took < 1.5


def _close_while_blocked(client: CentralClient) -> tuple[type[BaseException] | None, float]:
    """Close ``client`` 0.3 s into a call with a 10 s budget, from another thread; the
    call's error class (None if it returned or never ended) and how long it took."""
    outcome: list[tuple[type[BaseException], float]] = []

    def blocked() -> None:
        start = time.monotonic()
        try:
            _validate(client, 10.0)
        except Exception as exc:  # the caller asserts what it must be
            outcome.append((type(exc), time.monotonic() - start))

    worker = threading.Thread(target=blocked)
    worker.start()
    time.sleep(0.3)
    client.close()
    worker.join(5.0)
    return outcome[0] if outcome else (None, 0.0)


def test_headers_that_trickle_cannot_hold_the_caller_past_its_deadline(
        central_sim: CentralSim) -> None:
    """Each byte of the status line and headers comes well inside the read timeout, so a
    per-read timeout alone never fires: only the caller's deadline can end the wait."""
    with central_sim.make_client() as client:
        assert _validate(client, 3.0) is CardStatus.NORMAL  # warm connection
        central_sim.set_faults(mode="trickle_head", trickle_ms=40)
        took = _timed_failure(client, CentralUnreachableError)
        central_sim.set_faults(mode="none")
        assert _validate(client, 3.0) is CardStatus.NORMAL
    assert took < BUDGET + SLACK, f"{took:.3f} s"


def test_a_slow_trickle_is_cut_at_the_deadline_not_one_read_timeout_later(
        central_sim: CentralSim) -> None:
    """A byte arriving just before the deadline must not buy a whole new read timeout."""
    budget = 1.0
    with central_sim.make_client() as client:
        central_sim.set_faults(mode="trickle", trickle_ms=900)
        start = time.monotonic()
        with pytest.raises(CentralUnreachableError):
            _validate(client, budget)
        took = time.monotonic() - start
    assert took < budget + SLACK, f"{took:.3f} s"


def test_a_spent_counted_fault_stays_spent_when_other_knobs_change(
        central_sim: CentralSim) -> None:
    """``count`` limits a mode to the next N requests; changing only the latency later must
    not bring the spent mode back for every request."""
    with central_sim.make_client() as client:
        central_sim.set_faults(mode="error", count=1)
        assert _validate(client, 3.0) is CardStatus.NORMAL  # one 503, retried
        plan = central_sim.set_faults(latency_ms=1)
        assert plan["mode"] == "none", plan
        assert _validate(client, 3.0) is CardStatus.NORMAL


def test_admin_calls_need_the_admin_token(central_sim: CentralSim) -> None:
    """The fault knobs are the simulator's own admin calls: refused (401) without the
    token, with a wrong one or with one that is not even ASCII, and never applied."""
    url = central_sim.base_url + "/v1/admin/faults"
    plan = {"mode": "error"}
    for headers in ({}, {ADMIN_TOKEN_HEADER: "0" * 32},
                    {ADMIN_TOKEN_HEADER: central_sim.admin_token[:-1]},
                    {ADMIN_TOKEN_HEADER: "\u00e9" * 32}):
        raw = {k: v.encode("latin-1") for k, v in headers.items()}
        answer = httpx.post(url, json=plan, headers=raw, timeout=5.0)
        assert answer.status_code == 401 and answer.json()["reason"] == "bad_admin_token"
    with central_sim.make_client() as client:
        assert _validate(client, 3.0) is CardStatus.NORMAL   # no fault was applied


def _named(central_sim: CentralSim, name: str) -> CentralClient:
    """A client of ``central_sim`` that reaches it by a host name instead of 127.0.0.1."""
    port = httpx.URL(central_sim.base_url).port
    return CentralClient(f"http://{name}:{port}", central_sim.terminal_id, central_sim.secret,
                         central_public_key=central_sim.central_public_key)


def _resolver_that_hangs(monkeypatch: pytest.MonkeyPatch, name: str, *,
                         release: threading.Event) -> list[str]:
    """``socket.getaddrinfo`` for ``name`` blocks until ``release``, as glibc's resolver
    does for seconds per try in a tunnel where the DNS server's packets are lost."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def getaddrinfo(host: object, *args: Any, **kwargs: Any) -> Any:
        if host == name:
            asked.append(name)
            release.wait(10.0)
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_a_resolver_that_hangs_cannot_hold_the_caller_past_its_deadline(
        central_sim: CentralSim, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    asked = _resolver_that_hangs(monkeypatch, "central.sim.test", release=release)
    try:
        with _named(central_sim, "central.sim.test") as client:
            took = _timed_failure(client, CentralUnreachableError)
            assert asked, "the name was never looked up: the test proves nothing"
            assert took < BUDGET + SLACK, f"{took:.3f} s"
            # Taps keep coming while DNS is dead: they share the one lookup under way
            # instead of each leaving another thread blocked in the resolver.
            for _ in range(3):
                _timed_failure(client, CentralUnreachableError)
            assert len(asked) == 1
            release.set()
            # The lookup ends; the next call resolves and reaches the central.
            assert _validate(client, 3.0) is CardStatus.NORMAL
    finally:
        release.set()


def test_a_host_name_that_resolves_reaches_the_central(central_sim: CentralSim) -> None:
    with _named(central_sim, "localhost") as client:
        assert _validate(client, 3.0) is CardStatus.NORMAL


def test_a_name_that_does_not_resolve_is_unreachable_and_says_so(
        central_sim: CentralSim, monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host: object, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with _named(central_sim, "central.sim.test") as client, \
            pytest.raises(CentralUnreachableError, match=r"central\.sim\.test"):
        _validate(client, 1.0)


def test_close_ends_a_call_waiting_for_the_resolver_at_once(
        central_sim: CentralSim, monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    _resolver_that_hangs(monkeypatch, "central.sim.test", release=release)
    try:
        error, took = _close_while_blocked(_named(central_sim, "central.sim.test"))
    finally:
        release.set()
    assert error is CentralUnreachableError and took < 1.5


def test_the_simulator_drops_a_connection_that_never_sends(tmp_path: Path) -> None:
    """Each connection holds a server thread; one that opens and then says nothing (a
    crashed terminal, a port scanner) held it for ever."""
    server = CentralServer(CentralStore.open(tmp_path / "c.db"), idle_timeout_s=0.3)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5.0) as idle:
            assert idle.recv(1) == b""   # closed by the server, not timed out here
    finally:
        server.shutdown()


def test_when_dns_dies_the_last_address_that_resolved_keeps_the_central_reachable(
        central_sim: CentralSim, monkeypatch: pytest.MonkeyPatch) -> None:
    """The DNS server is down but the route to the central is fine (a common outage):
    every new connection waited for a lookup that never came, and the terminal went
    offline although the central answered. The last good address is used instead."""
    real = socket.getaddrinfo
    dead = threading.Event()
    asked: list[str] = []

    def getaddrinfo(host: object, *args: Any, **kwargs: Any) -> Any:
        if host == "central.sim.test":
            asked.append("central.sim.test")
            if dead.is_set():
                time.sleep(10)   # glibc waiting on a DNS server that is gone
            return real("127.0.0.1", *args, **kwargs)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    with _named(central_sim, "central.sim.test") as client:
        assert _validate(client, 3.0) is CardStatus.NORMAL
        dead.set()
        central_sim.set_faults(mode="reset", count=1)   # the pooled connection is gone
        assert _validate(client, 2.0) is CardStatus.NORMAL
        assert len(asked) == 2    # a fresh lookup was tried first
