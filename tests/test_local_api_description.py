"""docs/local-api.yaml against the running server: same routes, same functions, same
event fields, and what the server answers validates against the schemas."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import openapi_spec_validator
import pytest
import yaml

from sscard_terminal.decision.rules import Outcome
from sscard_terminal.local_api import HttpSecurity, LocalApi, LoopbackHttpServer
from sscard_terminal.local_api.display import DisplayRoutes
from sscard_terminal.local_api.display_text import display_view
from sscard_terminal.local_api.events import EVENT_FIELDS
from sscard_terminal.local_api.handler import FUNCTIONS, STREAM_FUNCTIONS
from sscard_terminal.local_api.metrics import MetricsRoutes, TerminalMetrics
from sscard_terminal.terminal.presentation import Presentation
from tests.test_local_api import Make, UnixClient, WsClient, make_harness
from tests.test_local_api_events import DaemonLikeStatus, presentation

__all__ = ["make_harness"]

DESCRIPTION = Path(__file__).resolve().parent.parent / "docs" / "local-api.yaml"
HUB_STAMPS = {"type", "seq", "at"}
METHODS = {"get", "post", "put", "delete", "patch", "options", "head"}


@pytest.fixture(scope="module")
def description() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(DESCRIPTION.read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.")
    return document


def validate(description: dict[str, Any], schema: str, value: Any) -> None:
    """Validate ``value`` against ``components/schemas/<schema>`` (OpenAPI 3.1 schemas are
    JSON Schema 2020-12)."""
    jsonschema.Draft202012Validator(
        {"$ref": f"#/components/schemas/{schema}", "components": description["components"]}
    ).validate(value)


def test_the_description_is_valid_openapi(description: dict[str, Any]) -> None:
    openapi_spec_validator.validate(description)


def test_every_schema_is_valid_json_schema(description: dict[str, Any]) -> None:
    for schema in description["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


def full_server(api: LocalApi) -> LoopbackHttpServer:
    """The bridge with every route set the daemon can mount."""
    return LoopbackHttpServer(api, port=0, security=HttpSecurity("t" * 32),
                              routes=[MetricsRoutes(TerminalMetrics()),
                                      DisplayRoutes(api.events)])


def test_routes_match_the_server_both_ways(make_harness: Make,
                                           description: dict[str, Any]) -> None:
    harness, _ = make_harness()
    server = full_server(harness.api)
    served = {(route.method, route.resource.canonical)
              for route in server.app.router.routes()
              if route.resource is not None and route.method != "HEAD"}
    described = {(method.upper(), path) for path, item in description["paths"].items()
                 for method in item if method in METHODS}
    assert served == described
    assert set(server.access) == set(description["paths"])


def test_functions_match_the_handler_both_ways(description: dict[str, Any]) -> None:
    assert set(description["x-sscard-functions"]) == {*FUNCTIONS, *STREAM_FUNCTIONS, "auth"}


def test_event_schemas_hold_exactly_the_fields_the_hub_lets_through(
        description: dict[str, Any]) -> None:
    schemas = description["components"]["schemas"]
    for kind, fields in EVENT_FIELDS.items():
        schema = schemas[f"{kind.capitalize()}Event"]
        assert schema["additionalProperties"] is False
        assert set(schema["properties"]) == fields | HUB_STAMPS, kind
        assert schema["properties"]["type"] == {"const": kind}


def test_sample_answers_validate(make_harness: Make, description: dict[str, Any]) -> None:
    harness, _ = make_harness()
    harness.api.status_provider = DaemonLikeStatus()
    unix = UnixClient(harness.socket_path)
    answers = {function: unix.call({"function": function})
               for function in ("ping", "version", "status", "health", "last_decision")}
    for answer in answers.values():
        validate(description, "Answer", answer)
    functions = description["x-sscard-functions"]
    for function, answer in answers.items():
        jsonschema.Draft202012Validator(
            {**functions[function]["data"], "components": description["components"]}
        ).validate(answer["data"])
    validate(description, "Status", answers["status"]["data"])
    validate(description, "Health", answers["health"]["data"])
    # Refusals, as the middleware writes them.
    refused = httpx.post(harness.base + "/", json={"function": "ping"})
    assert refused.status_code == 401
    validate(description, "Answer", refused.json())
    # The stream: every event type the hub sends, and a lagged marker.
    assert unix.call({"function": "events"})["data"] == "subscribed"
    ws = WsClient(harness.port, path=f"/?token={harness.token}")
    assert ws.call({"function": "events"})["data"] == "subscribed"
    hub = harness.api.events
    while hub.subscriber_count < 2:
        threading.Event().wait(0.01)
    samples = [(presentation(display_name="张*", renewal_due="2027-03"), "presentation"),
               (presentation("refuse", "card_forged", decision=None), "presentation"),
               ({"lane": "gate-1", "state": "lost", "previous": "idle", "fault": "gone"},
                "lane"),
               ({"lane": "gate-1", "state": "fault", "fault": "relay does not answer"},
                "gate"),
               ({"link": "down", "circuit": "open"}, "central")]
    for event, kind in samples:
        hub.publish(event, kind)
    for _ in samples:
        validate(description, "EventMessage", unix.receive())
        validate(description, "EventMessage", json.loads(ws.receive_frame()[1]))
    validate(description, "EventMessage", {"event": {"type": "lagged", "missed": 3}})
    last = UnixClient(harness.socket_path).call({"function": "last_decision"})["data"]
    validate(description, "PresentationEvent", last)
    with pytest.raises(jsonschema.ValidationError):
        validate(description, "PresentationEvent", {**last, "id_number": "x"})
    ws.close()
    unix.close()


def test_a_real_presentation_event_passes_the_hub_whole() -> None:
    """Presentation.event() and the hub's allowlist stay in step: a field added to the
    event but not documented would be dropped (and logged) on its way to every watcher."""
    event = Presentation(channel="card", outcome=Outcome.ACCEPT, reason="accepted",
                         message="accepted offline", transaction_id="t", online=False,
                         elapsed_ms=3.0, lane="gate-1", holder="张* card A*******8").event()
    assert set(event) <= EVENT_FIELDS["presentation"]


def test_display_views_validate(description: dict[str, Any]) -> None:
    for event in (presentation(display_name="张**", renewal_due="2027-03"),
                  presentation("refuse", "card_lost"), presentation("defer", "x", seq=3),
                  {"outcome": "nonsense", "display": {"zh": "通过；异地卡", "en": "OK"}}):
        validate(description, "DisplayView", display_view({"seq": 1, **event}))
    validate(description, "LinkState", {"type": "link", "online": False})


def test_the_display_never_shows_an_unjournaled_accept() -> None:
    view = display_view({"seq": 1, **presentation(journaled=False)})
    assert view["outcome"] == "refuse" and view["reason"]["en"] == "Not accepting now"
    assert display_view({"seq": 2, **presentation()})["outcome"] == "accept"
