"""Prometheus metrics of the terminal, with prometheus_client (``prometheus_client>=0.20``).

Opt-in, two ways: ``GET /metrics`` on the loopback bridge (:class:`MetricsRoutes`, the
bearer token like every other route), or a node-exporter textfile collector file
written atomically (:meth:`TerminalMetrics.write_textfile`, :func:`run_textfile`).

Fed three ways, none of which the tap path waits on:

* the event hub (:meth:`TerminalMetrics.attach`): every presentation, lane and gate
  event counts as it is published;
* the daemon's :class:`~.status.StatusProvider`, asked at scrape time: journal depth and
  oldest record, denylist version, size and age, trust list age, central link;
* direct calls from the daemon's forwarder and central client
  (:meth:`~TerminalMetrics.forwarder_delivered`, :meth:`~TerminalMetrics.central_call`).

**No label holds personal data or a card reference**: every label value comes from a
closed set (outcome, channel, mode, lane state, error kind) or is checked against the
shape of a stable code (reason) or a configured name (lane), and anything else is
counted as ``other``. Holders, card numbers, ID numbers, card references and
transaction ids never become labels; tests/test_metrics.py scrapes and checks.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    generate_latest,
    write_to_textfile,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import __version__
from .events import EventHub
from .security import Access
from .status import LaneState, StatusProvider, TerminalStatus

__all__ = ["MetricsRoutes", "TerminalMetrics", "run_textfile"]

_log = logging.getLogger(__name__)

_REASON = re.compile(r"^[a-z][a-z_]{0,39}$")
_LANE = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$")
_KIND = re.compile(r"^[a-z][a-z_]{0,31}$")
_OUTCOMES = frozenset({"accept", "refuse", "defer"})
_CHANNELS = frozenset({"card", "ecode"})
_GATE_STATES = frozenset({"open", "closed", "fault"})
OTHER = "other"

TAP_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0)
CENTRAL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0)


def _pick(value: object, allowed: frozenset[str] | re.Pattern[str]) -> str:
    """``value`` if it is an allowed label value, else ``other``."""
    if not isinstance(value, str):
        return OTHER
    if isinstance(allowed, frozenset):
        return value if value in allowed else OTHER
    return value if allowed.match(value) else OTHER


class _StatusCollector(Collector):
    """Asks the status provider at scrape time (the scrape runs in a worker thread)."""

    def __init__(self, provider: StatusProvider) -> None:
        self.provider = provider

    def collect(self) -> Iterable[Metric]:
        try:
            status = self.provider.status()
        except Exception:
            _log.exception("metrics: the status provider failed; status gauges skipped")
            return []
        return list(_status_families(status))


def _gauge(name: str, documentation: str, value: float | None) -> GaugeMetricFamily | None:
    if value is None:
        return None
    return GaugeMetricFamily(name, documentation, value=value)


def _status_families(status: TerminalStatus) -> Iterable[Metric]:
    version = status.denylist.version
    numeric = float(version) if version is not None and version.isdigit() else None
    families = [
        _gauge("sscard_journal_depth", "Journaled records not yet delivered to the central",
               status.journal.depth),
        _gauge("sscard_journal_oldest_record_age_seconds",
               "Age of the oldest undelivered journal record", status.journal.oldest_age_s),
        _gauge("sscard_journal_full", "1 when the journal refuses new records",
               1.0 if status.journal.full else 0.0),
        _gauge("sscard_denylist_version", "Denylist version (numeric versions only)", numeric),
        _gauge("sscard_denylist_entries", "Entries in the denylist", status.denylist.size),
        _gauge("sscard_denylist_age_seconds", "Age of the denylist in hand",
               status.denylist.age_s),
        _gauge("sscard_trust_list_age_seconds", "Age of the e-code trust list in hand",
               status.trust_list.age_s),
        _gauge("sscard_central_up", "1 when the last central call succeeded",
               {"up": 1.0, "down": 0.0}.get(status.central.link)),
        _gauge("sscard_central_circuit_open", "1 while the central circuit breaker is open",
               1.0 if status.central.circuit == "open" else 0.0),
        _gauge("sscard_uptime_seconds", "Seconds since the daemon started", status.uptime_s),
    ]
    yield from (family for family in families if family is not None)
    lanes = GaugeMetricFamily("sscard_lane_up", "1 when the lane can decide", labels=["lane"])
    for lane in status.lanes:
        lanes.add_metric([_pick(lane.name, _LANE)],
                         0.0 if lane.state in (LaneState.LOST, LaneState.RECOVERING) else 1.0)
    yield lanes


class TerminalMetrics:
    """The terminal's metrics in their own registry (never the process-global one)."""

    def __init__(self, *, status: StatusProvider | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.presentations = Counter(
            "sscard_presentations", "Presentations (cards and codes) by how they ended",
            ["channel", "outcome", "reason", "mode"], registry=r)
        self.decisions = Counter(
            "sscard_decisions", "Presentations that reached a decision of the engine",
            ["outcome", "reason", "mode"], registry=r)
        self.tap_to_decision = Histogram(
            "sscard_tap_to_decision_seconds",
            "From card present / code read to the journaled decision",
            ["channel", "mode"], buckets=TAP_BUCKETS, registry=r)
        self.forwarder_lag = Gauge(
            "sscard_forwarder_lag_seconds",
            "Enqueue-to-delivery time of the last batch the forwarder delivered", registry=r)
        self.forwarder_failures = Counter(
            "sscard_forwarder_failures", "Forwarder delivery attempts that failed", ["kind"],
            registry=r)
        self.central_latency = Histogram(
            "sscard_central_latency_seconds", "Central call durations", ["operation"],
            buckets=CENTRAL_BUCKETS, registry=r)
        self.central_errors = Counter(
            "sscard_central_errors", "Central calls that failed", ["operation", "kind"],
            registry=r)
        self.lane_state = Enum(
            "sscard_lane_state", "Each lane's state machine", ["lane"],
            states=[state.value for state in LaneState], registry=r)
        self.gate_state = Enum(
            "sscard_gate_state", "Each lane's gate output", ["lane"],
            states=sorted(_GATE_STATES), registry=r)
        self.gate_faults = Counter(
            "sscard_gate_faults", "Gate outputs that failed (a lane fault)", ["lane"],
            registry=r)
        Gauge("sscard_build_info", "The running version", ["version"],
              registry=r).labels(_pick(__version__, re.compile(r"^[0-9A-Za-z.+-]{1,32}$"))).set(1)
        if status is not None:
            r.register(_StatusCollector(status))

    # --- from the event hub ------------------------------------------------------------------

    def attach(self, hub: EventHub) -> None:
        """Count every event ``hub`` publishes, in the publisher's thread."""
        hub.add_listener(self.observe)

    def observe(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "presentation":
            self._presentation(event)
        elif kind == "lane":
            state = event.get("state")
            if isinstance(state, str) and state in LaneState.__members__.values():
                self.lane_state.labels(_pick(event.get("lane"), _LANE)).state(state)
        elif kind == "gate":
            lane = _pick(event.get("lane"), _LANE)
            state = event.get("state")
            if isinstance(state, str) and state in _GATE_STATES:
                self.gate_state.labels(lane).state(state)
                if state == "fault":
                    self.gate_faults.labels(lane).inc()

    def _presentation(self, event: Mapping[str, Any]) -> None:
        outcome = _pick(event.get("outcome"), _OUTCOMES)
        reason = _pick(event.get("reason"), _REASON)
        mode = "online" if event.get("online") is True else "offline"
        channel = _pick(event.get("channel"), _CHANNELS)
        self.presentations.labels(channel, outcome, reason, mode).inc()
        if event.get("fare_percent") is not None:
            # Presentation.event() carries the decision's fare only when the engine
            # decided; refusals before a decision (forged card, pulled card) have none.
            self.decisions.labels(outcome, reason, mode).inc()
        elapsed = event.get("elapsed_ms")
        if isinstance(elapsed, int | float) and not isinstance(elapsed, bool) and elapsed >= 0:
            self.tap_to_decision.labels(channel, mode).observe(elapsed / 1000.0)

    # --- from the daemon's background work ------------------------------------------------------

    def forwarder_delivered(self, lag_seconds: float) -> None:
        self.forwarder_lag.set(lag_seconds)

    def forwarder_failed(self, kind: str) -> None:
        self.forwarder_failures.labels(_pick(kind, _KIND)).inc()

    def central_call(self, operation: str, seconds: float, error: str | None = None) -> None:
        """One central call: its duration, and its error kind if it failed
        (``unreachable``, ``refused``, ``protocol``, ``timeout``)."""
        operation = _pick(operation, _KIND)
        self.central_latency.labels(operation).observe(seconds)
        if error is not None:
            self.central_errors.labels(operation, _pick(error, _KIND)).inc()

    def gate_fault(self, lane: str) -> None:
        """For the gate controller's ``on_fault`` when no gate event is published."""
        self.gate_faults.labels(_pick(lane, _LANE)).inc()

    # --- out ------------------------------------------------------------------------------------

    def scrape(self) -> bytes:
        """The text exposition format (blocking: the status collector may read SQLite)."""
        return generate_latest(self.registry)

    def write_textfile(self, path: Path) -> None:
        """Write for node-exporter's textfile collector: a ``.prom`` file replaced
        atomically (written beside it, then renamed), so the collector never reads half."""
        if path.suffix != ".prom":
            raise ValueError("the textfile collector reads only *.prom files")
        write_to_textfile(str(path), self.registry)


async def run_textfile(metrics: TerminalMetrics, path: Path, *, interval_s: float = 15.0,
                       stop: asyncio.Event) -> None:
    """Rewrite ``path`` every ``interval_s`` (in a worker thread) until ``stop`` is set."""
    while not stop.is_set():
        try:
            await asyncio.to_thread(metrics.write_textfile, path)
        except OSError as exc:
            _log.warning("metrics: cannot write %s: %s", path, exc)
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass


class MetricsRoutes:
    """``GET /metrics`` on the loopback bridge (bearer token, like every route)."""

    CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

    def __init__(self, metrics: TerminalMetrics) -> None:
        self.metrics = metrics

    def install(self, app: web.Application) -> Mapping[str, Access]:
        app.router.add_get("/metrics", self._scrape, allow_head=False)
        return {"/metrics": Access.BEARER}

    async def _scrape(self, request: web.Request) -> web.StreamResponse:
        body = await asyncio.to_thread(self.metrics.scrape)
        return web.Response(body=body, headers={"Content-Type": self.CONTENT_TYPE,
                                                "Cache-Control": "no-store"})
