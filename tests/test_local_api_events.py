"""The grown local API (issue 18, item 3): the event hub, the event stream over the Unix
socket and the WebSocket, and the status, health and last_decision functions.

The daemon's side (its lanes publishing, its StatusProvider) is played by a small
provider here and by publishing Presentation-shaped events from worker threads, as
the lanes will; the servers, sockets and clients are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from sscard_terminal.local_api.events import EventHub, screen_event
from sscard_terminal.local_api.status import (
    CentralStatus,
    GateStatus,
    LaneStatus,
    ListStatus,
    QueueStatus,
    TerminalStatus,
    health_of,
)
from tests.test_local_api import Make, UnixClient, WsClient, make_harness

__all__ = ["make_harness"]

ID_NUMBER = "110105194912310021"
CARD_NUMBER = "A12345678"


def presentation(outcome: str = "accept", reason: str = "accepted", **extra: Any) -> dict[str, Any]:
    """The shape of ``Presentation.event()`` (masked holder)."""
    return {"channel": "card", "lane": "gate-1", "outcome": outcome, "reason": reason,
            "message": "accepted offline", "online": False, "transaction_id": "ab" * 16,
            "elapsed_ms": 41.5, "fare_percent": 0, "concession": "senior",
            "replayed": False, "authenticated_by": "psam", "ecode_reason": None,
            "holder": "张* 1101**********0021 card A*******8 gen3", "journaled": True,
            **extra}


@dataclass
class DaemonLikeStatus:
    """What the daemon's StatusProvider will answer, with one lane down."""

    calls: int = 0

    def status(self) -> TerminalStatus:
        self.calls += 1
        return TerminalStatus(
            terminal_id="T-0001", version="0.1.0", uptime_s=12.5, profile="transit",
            lanes=(LaneStatus("gate-1", "card", "idle", "Virtual PCD 00 00", 3.0,
                              GateStatus("sim", "closed")),
                   LaneStatus("scanner-1", "code", "lost", "/dev/serial/by-id/x", 1.0,
                              None, faults=2)),
            central=CentralStatus("down", "open", 95.0, None),
            journal=QueueStatus(depth=7, oldest_age_s=4000.0),
            denylist=ListStatus("v42", 3600.0, 1200),
            trust_list=ListStatus("2026-12-01", 7200.0, 3))


# --- the hub -----------------------------------------------------------------------------------


def test_events_are_screened_to_documented_fields_and_masked(
        caplog: pytest.LogCaptureFixture) -> None:
    event = screen_event("presentation", presentation(
        message=f"card {CARD_NUMBER} of {ID_NUMBER} refused", name="张三丰",
        id_number=ID_NUMBER))
    assert "name" not in event and "id_number" not in event
    assert ID_NUMBER not in json.dumps(event) and CARD_NUMBER not in json.dumps(event)
    assert event["message"] == f"card {'*' * 9} of {'*' * 18} refused"
    # Logged by field name, never by value.
    assert "name" in caplog.text and "张三丰" not in caplog.text and ID_NUMBER not in caplog.text
    with pytest.raises(ValueError, match="unknown event type"):
        screen_event("secret", {})


def test_a_subscriber_that_never_reads_never_blocks_the_publisher() -> None:
    async def scenario() -> None:
        hub = EventHub(queue_size=8)
        stuck = hub.subscribe()
        reader = hub.subscribe(queue_size=1000)
        received: list[dict[str, Any]] = []

        async def read() -> None:
            async for event in reader:
                received.append(event)
                if len(received) == 200:
                    return

        task = asyncio.create_task(read())

        def lanes() -> None:
            for i in range(100):
                hub.publish(presentation(transaction_id=f"{i:032x}"))

        started = time.monotonic()
        threads = [threading.Thread(target=lanes) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)
        assert time.monotonic() - started < 2
        await asyncio.wait_for(task, 10)
        assert [e["seq"] for e in received if e["type"] == "presentation"] == sorted(
            e["seq"] for e in received if e["type"] == "presentation")
        # The one that never read kept its newest 8 and is told what it missed.
        first = await stuck.next()
        assert first == {"type": "lagged", "missed": 192}
        rest = [await stuck.next() for _ in range(8)]
        assert [e["seq"] for e in rest if e] == list(range(193, 201))
        stuck.close()
        assert await stuck.next() is None
        reader.close()
        assert hub.subscriber_count == 0
        assert hub.last_decision is not None and hub.last_decision["seq"] == 200

    asyncio.run(scenario())


# --- the stream over the transports ---------------------------------------------------------------


def _wait_subscribed(hub: EventHub, count: int) -> None:
    end = time.monotonic() + 5
    while hub.subscriber_count != count and time.monotonic() < end:
        time.sleep(0.01)
    assert hub.subscriber_count == count


def test_event_stream_over_unix_socket_and_websocket(make_harness: Make) -> None:
    harness, opener = make_harness()
    hub = harness.api.events
    unix = UnixClient(harness.socket_path)
    assert unix.call({"function": "events", "id": 1}) == {
        "code": 0, "data": "subscribed", "function": "events", "id": 1}
    ws = WsClient(harness.port, path=f"/ws?token={harness.token}")
    assert ws.call({"function": "events"})["data"] == "subscribed"
    _wait_subscribed(hub, 2)
    sent = threading.Thread(target=hub.publish, args=(presentation("refuse", "card_lost"),))
    sent.start()
    sent.join()
    from_unix = unix.receive()["event"]
    opcode, payload = ws.receive_frame()
    from_ws = json.loads(payload)["event"]
    assert opcode == 0x1 and from_unix == from_ws
    assert from_unix["type"] == "presentation" and from_unix["reason"] == "card_lost"
    # A client that goes away ends its subscription; the other keeps receiving.
    ws.send_frame(0x8, b"\x03\xe8")
    ws.close()
    _wait_subscribed(hub, 1)
    hub.publish({"lane": "gate-1", "state": "lost", "previous": "idle"}, "lane")
    assert unix.receive()["event"]["state"] == "lost"
    unix.close()
    _wait_subscribed(hub, 0)
    assert opener.opened == []


def test_events_need_the_token_and_are_not_a_plain_http_call(make_harness: Make) -> None:
    harness, _ = make_harness()
    unauthenticated = WsClient(harness.port)
    assert unauthenticated.call({"function": "events"})["code"] == -12
    unauthenticated.close()
    answer = httpx.post(harness.base + "/", json={"function": "events"},
                        headers={"Authorization": f"Bearer {harness.token}"})
    assert answer.json()["code"] == -13 and "WebSocket" in answer.json()["error"]
    assert harness.api.events.subscriber_count == 0


# --- status, health, last_decision ------------------------------------------------------------


def test_status_health_and_last_decision_on_every_transport(make_harness: Make) -> None:
    harness, _ = make_harness()
    provider = DaemonLikeStatus()
    harness.api.status_provider = provider
    unix = UnixClient(harness.socket_path)
    assert unix.call({"function": "last_decision"})["data"] is None
    status = unix.call({"function": "status"})["data"]
    assert status["lanes"][1]["state"] == "lost" and status["journal"]["depth"] == 7
    assert status["denylist"] == {"version": "v42", "age_s": 3600.0, "size": 1200}
    health = httpx.post(harness.base + "/api", json={"function": "health"},
                        headers={"Authorization": f"Bearer {harness.token}"}).json()["data"]
    assert health["state"] == "degraded"
    assert set(health["problems"]) == {"lane scanner-1 is down", "central unreachable",
                                       "central circuit breaker open", "journal not draining"}
    harness.api.events.publish(presentation())
    ws = WsClient(harness.port, path=f"/?token={harness.token}")
    last = ws.call({"function": "last_decision"})["data"]
    assert last["outcome"] == "accept" and last["seq"] == 1
    ws.close()
    unix.close()
    assert provider.calls == 2


def test_health_verdicts() -> None:
    base = DaemonLikeStatus().status()
    calm = TerminalStatus(terminal_id="T", version="v", uptime_s=1,
                          lanes=(LaneStatus("a", "card", "idle"),))
    assert health_of(calm).state == "ok" and not health_of(calm).problems
    all_down = TerminalStatus(terminal_id="T", version="v", uptime_s=1,
                              lanes=(LaneStatus("a", "card", "lost"),
                                     LaneStatus("b", "code", "recovering")))
    assert health_of(all_down).state == "failing"
    stale = TerminalStatus(terminal_id="T", version="v", uptime_s=1,
                           denylist=ListStatus("v1", 3 * 86400.0, 10),
                           lanes=(LaneStatus("a", "card", "idle",
                                             gate=GateStatus("serial", "fault", "no answer")),))
    assert set(health_of(stale).problems) == {"denylist too old", "lane a: gate fault"}
    assert health_of(base).state == "degraded"


def test_a_stalled_socket_subscriber_lags_and_never_blocks_the_lanes(make_harness: Make) -> None:
    """A technician's `sscard events` suspended with Ctrl-Z: its socket fills, the hub
    keeps its queue bounded, the lanes publish on at full speed, and when it reads again
    it is told how much it missed."""
    harness, _ = make_harness()
    hub = harness.api.events
    stalled = UnixClient(harness.socket_path)
    stalled.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    assert stalled.call({"function": "events"})["data"] == "subscribed"
    _wait_subscribed(hub, 1)
    started = time.monotonic()
    for i in range(5000):
        hub.publish(presentation(transaction_id=f"{i:032x}", message="x" * 200))
    publishing = time.monotonic() - started
    assert publishing < 5, f"publishing 5000 events took {publishing:.1f} s"
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1].get("seq") != 5000:
        seen.append(stalled.receive()["event"])
    lagged = [e for e in seen if e["type"] == "lagged"]
    assert lagged and sum(e["missed"] for e in lagged) + len(seen) - len(lagged) == 5000
    stalled.close()


def test_the_daemons_lane_hook_publishes_presentations() -> None:
    """Issue 17's Daemon takes ``publish(lane, event)``; the hub's adapter stamps the lane."""
    hub = EventHub()
    hub.publish_presentation("gate-7", {**presentation(), "lane": ""})
    last = hub.last_decision
    assert last is not None and last["lane"] == "gate-7" and last["type"] == "presentation"
