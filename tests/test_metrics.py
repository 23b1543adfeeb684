"""Prometheus metrics (issue 18, item 5): fed by the event hub, the status provider and
direct calls; scraped from /metrics on the loopback bridge and written as a textfile;
no label ever holds personal data or a card reference."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sscard_terminal.local_api import HttpSecurity, LocalApi, LoopbackHttpServer
from sscard_terminal.local_api.events import EventHub
from sscard_terminal.local_api.metrics import MetricsRoutes, TerminalMetrics
from tests.test_local_api import ApiHarness, sim_service
from tests.test_local_api_events import CARD_NUMBER, ID_NUMBER, DaemonLikeStatus, presentation

ALERTS = Path(__file__).resolve().parent.parent / "docs" / "prometheus-alerts.yaml"
NAME = "张三丰"
CARD_REF = "c0ffee" * 5 + "ab"
SAFE_LABEL = re.compile(r"^[A-Za-z0-9_.+-]{0,40}$")


def feed(metrics: TerminalMetrics) -> EventHub:
    """What a day at a gate looks like to the metrics, hostile fields included."""
    hub = EventHub()
    metrics.attach(hub)
    hub.publish(presentation(elapsed_ms=41.0))
    hub.publish(presentation("refuse", "card_lost", online=True, elapsed_ms=180.0))
    hub.publish(presentation("refuse", "card_forged", fare_percent=None, concession=None,
                             holder=f"{NAME} {ID_NUMBER}"))
    # A publisher bug: personal data where a stable code belongs.
    hub.publish(presentation("refuse", f"holder {ID_NUMBER}", lane=CARD_NUMBER,
                             channel=CARD_REF, transaction_id=CARD_REF))
    hub.publish({"lane": "gate-1", "state": "reading", "previous": "idle"}, "lane")
    hub.publish({"lane": "gate-1", "state": "fault", "fault": "relay silent"}, "gate")
    metrics.forwarder_delivered(2.5)
    metrics.forwarder_failed("unreachable")
    metrics.central_call("card_status", 0.12)
    metrics.central_call("card_status", 0.5, error="timeout")
    metrics.central_call(f"status {ID_NUMBER}", 0.5, error=NAME)
    return hub


def samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(found: dict[str, list[tuple[dict[str, str], float]]], name: str,
          **labels: str) -> float:
    matching = [v for got, v in found[name] if all(got.get(k) == x for k, x in labels.items())]
    assert len(matching) == 1, (name, labels, found.get(name))
    return matching[0]


def test_counts_from_events_status_and_calls() -> None:
    metrics = TerminalMetrics(status=DaemonLikeStatus())
    feed(metrics)
    found = samples(metrics.scrape().decode())
    assert value(found, "sscard_presentations_total", outcome="accept", reason="accepted",
                 mode="offline", channel="card") == 1
    assert value(found, "sscard_presentations_total", reason="card_lost", mode="online") == 1
    assert value(found, "sscard_decisions_total", reason="card_lost") == 1
    # A refusal before any decision is a presentation, not a decision.
    assert value(found, "sscard_presentations_total", reason="card_forged") == 1
    assert not [s for s in found["sscard_decisions_total"] if s[0]["reason"] == "card_forged"]
    assert value(found, "sscard_tap_to_decision_seconds_count", channel="card",
                 mode="offline") == 2
    assert value(found, "sscard_tap_to_decision_seconds_bucket", channel="card",
                 mode="online", le="0.2") == 1
    assert value(found, "sscard_journal_depth") == 7
    assert value(found, "sscard_journal_oldest_record_age_seconds") == 4000
    assert value(found, "sscard_denylist_entries") == 1200
    assert value(found, "sscard_denylist_age_seconds") == 3600
    assert value(found, "sscard_trust_list_age_seconds") == 7200
    assert value(found, "sscard_central_up") == 0
    assert value(found, "sscard_central_circuit_open") == 1
    assert value(found, "sscard_lane_up", lane="scanner-1") == 0
    assert value(found, "sscard_lane_up", lane="gate-1") == 1
    assert value(found, "sscard_lane_state", lane="gate-1", sscard_lane_state="reading") == 1
    assert value(found, "sscard_gate_faults_total", lane="gate-1") == 1
    assert value(found, "sscard_gate_state", lane="gate-1", sscard_gate_state="fault") == 1
    assert value(found, "sscard_forwarder_lag_seconds") == 2.5
    assert value(found, "sscard_forwarder_failures_total", kind="unreachable") == 1
    assert value(found, "sscard_central_errors_total", operation="card_status",
                 kind="timeout") == 1
    assert value(found, "sscard_central_latency_seconds_count", operation="card_status") == 2


def test_no_label_holds_personal_data_or_a_card_reference() -> None:
    metrics = TerminalMetrics(status=DaemonLikeStatus())
    feed(metrics)
    text = metrics.scrape().decode()
    for secret in (ID_NUMBER, CARD_NUMBER, NAME, CARD_REF, "ab" * 16, "1101", "张"):
        assert secret not in text, secret
    for name, found in samples(text).items():
        for labels, _ in found:
            for label, label_value in labels.items():
                assert SAFE_LABEL.match(label_value), (name, label, label_value)
    # The hostile values were counted, as "other".
    found = samples(text)
    assert value(found, "sscard_presentations_total", channel="other", reason="other") == 1
    assert value(found, "sscard_central_errors_total", operation="other", kind="other") == 1


def test_metrics_on_the_bridge_need_the_token(tmp_path: Path) -> None:
    service, _ = sim_service("gen2-adult")
    harness = ApiHarness(service, tmp_path)
    try:
        metrics = TerminalMetrics(status=DaemonLikeStatus())
        feed(metrics)
        api = LocalApi(service)
        server = LoopbackHttpServer(api, port=0, security=HttpSecurity(harness.token),
                                    routes=[MetricsRoutes(metrics)])
        harness._run(server.start())
        try:
            base = f"http://127.0.0.1:{server.port}/metrics"
            assert httpx.get(base).status_code == 401
            assert httpx.get(base, headers={"Host": "evil.example"}).status_code == 403
            scrape = httpx.get(base, headers={"Authorization": f"Bearer {harness.token}"})
            assert scrape.status_code == 200
            assert scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
            assert value(samples(scrape.text), "sscard_journal_depth") == 7
        finally:
            harness._run(server.stop())
    finally:
        harness.close()


def test_textfile_is_replaced_atomically(tmp_path: Path) -> None:
    metrics = TerminalMetrics(status=DaemonLikeStatus())
    hub = feed(metrics)
    target = tmp_path / "sscard.prom"
    metrics.write_textfile(target)
    first = target.read_text()
    assert "sscard_journal_depth 7.0" in first
    # Readers during rewrites only ever see a whole file.
    stop = threading.Event()
    torn: list[str] = []

    def read() -> None:
        while not stop.is_set():
            text = target.read_text()
            if not text.rstrip().endswith(("7.0", "1.0", "0.0")) or "sscard_uptime" not in text:
                torn.append(text[-80:])

    reader = threading.Thread(target=read)
    reader.start()
    for _ in range(200):
        hub.publish(presentation())
        metrics.write_textfile(target)
    stop.set()
    reader.join()
    assert not torn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sscard.prom"]


def test_alert_rules_are_valid_and_name_real_metrics() -> None:
    """promtool is not available here: YAML validity, the rules-file shape, and every
    sscard_* metric an expression names exists in a scrape."""
    rules: dict[str, Any] = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    metrics = TerminalMetrics(status=DaemonLikeStatus())
    feed(metrics)
    exposed = set(samples(metrics.scrape().decode()))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in alerts} >= {
        "SscardJournalNotDraining", "SscardDenylistTooOld", "SscardLaneDown"}
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}
        assert rule["labels"]["severity"] in ("warning", "critical")
        names = set(re.findall(r"\bsscard_[a-z_]+", rule["expr"]))
        assert names and names <= exposed, (rule["alert"], names - exposed)
