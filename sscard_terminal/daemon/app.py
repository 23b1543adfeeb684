"""The daemon's runtime: one asyncio loop coordinating lanes and worker threads.

::

    start ─► build the runtime (worker thread) ─► lanes up ─► READY=1 ─► serve
                │ ConfigError: exit 17, never READY                       │
                                                          SIGHUP ─► reload (atomic)
                                                          SIGTERM ─► STOPPING=1 ─► finish
                                                                     presentations ─► exit 0

- **The loop never blocks.** Opening cards, presentations (pyscard, the central, SQLite)
  and probing lost readers run in a thread pool with one worker per lane, so a slow lane
  never queues behind another; the PC/SC monitor has a thread of its own.
- **READY only when everything configured is up**: the runtime (journal, central client,
  engine state, ...) is built and every lane task runs. A configuration the runtime
  cannot honour raises :class:`ConfigError` before READY: exit 17.
- **Watchdog from the loop's own health check.** Every half watchdog interval a task on
  the loop checks that the loop itself is on time, that no lane task died and that no
  presentation has been stuck past :data:`STUCK_PRESENTATION_S`; only then it sends
  ``WATCHDOG=1``. A stuck loop, a dead lane or a hung reader stops the pings and systemd
  restarts the daemon. A thread that pinged on a timer would hide all three.
- **SIGHUP reloads atomically, between presentations.** The new file is validated first; a
  bad one is refused in one logged line and the running runtime is not touched. A good one
  waits for the presentations in progress (:class:`~.runtime.RuntimeHolder`), closes the
  old runtime and builds the new one while no presentation starts, so two runtimes never
  write one journal; if the new one cannot be built, the running configuration's is built
  again and the reload is refused. A reload that changes the lanes is refused (restart the
  daemon for that): lanes own hardware.
- **SIGTERM stops within** :data:`STOP_BUDGET_S` (below the unit's ``TimeoutStopSec=``):
  lanes take no new presentation, the ones in progress finish, the runtime closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import ConfigError
from ..local_api.events import EventHub
from ..local_api.metrics import TerminalMetrics, run_textfile
from .card_lane import CardLane
from .config import DaemonConfig, LaneInput, load_config
from .gates import LaneGates
from .lane import LaneState, LaneStateMachine
from .local_api_mount import LocalApiMount
from .notify import Notifier
from .pcsc_events import PcscEventSource
from .presenter import Runtime, RuntimeFactory
from .runtime import RuntimeHolder, build_runtime
from .scanner_lane import ScannerLane
from .sim_events import SIM_CONTROL_DIRECTORY, SimReaderEvents
from .sources import CardEventSource
from .status import DaemonStatus

__all__ = [
    "STOP_BUDGET_S",
    "STUCK_PRESENTATION_S",
    "Daemon",
    "default_sources",
    "run",
]

log = logging.getLogger("sscard_terminal.daemon")
events_log = logging.getLogger("sscard_terminal.daemon.events")

STOP_BUDGET_S = 6.0
"""SIGTERM to the lanes' last presentation; then the runtime closes (the forwarder gets
:data:`~.runtime.BACKGROUND_STOP_S` to finish its batch), all inside the unit's
TimeoutStopSec= (10 s)."""
STUCK_PRESENTATION_S = 30.0
"""A presentation still running after this long has hung (the longest profile budget is a
few seconds): the health check stops the watchdog pings."""
_HEALTH_INTERVAL_S = 1.0          # without a watchdog: STATUS refresh only
_LOOP_LAG_LIMIT_S = 2.0           # a health check this late means the loop is starved


class Lane(Protocol):
    """What the daemon sees of a card or scanner lane."""

    name: str
    machine: LaneStateMachine

    @property
    def busy_for(self) -> float: ...

    async def run(self) -> None: ...

    def stop(self) -> None: ...


@dataclass
class _Health:
    healthy: bool
    why: str


class Daemon:
    """One run of the daemon: from a validated configuration to a clean exit."""

    def __init__(
        self,
        config: DaemonConfig,
        *,
        config_path: Path,
        runtime_factory: RuntimeFactory,
        sources: Sequence[CardEventSource] = (),
        notifier: Notifier | None = None,
        publish: Callable[[str, Mapping[str, object]], None] | None = None,
        config_loader: Callable[[Path], DaemonConfig] = load_config,
        events: EventHub | None = None,
    ) -> None:
        self.config = config
        self._config_path = config_path
        self._factory = runtime_factory
        self._sources = list(sources)
        self._notifier = notifier or Notifier()
        self._publish_hook = publish
        self._load = config_loader
        self._holder = RuntimeHolder()
        self._lanes: list[Lane] = []
        self._card_lanes: list[CardLane] = []
        self._scanner_lanes: list[ScannerLane] = []
        self._local_api: LocalApiMount | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._textfile_stop = asyncio.Event()
        self._reloading: asyncio.Task[bool] | None = None
        self._executor = ThreadPoolExecutor(max_workers=max(2, len(config.lanes) + 1),
                                            thread_name_prefix="sscard-worker")
        self._reader_locks: dict[str, threading.Lock] = {}
        self.reloads = {"done": 0, "refused": 0}
        self.events = events if events is not None else EventHub()
        """Every presentation and lane move, screened (issue 18's faces read it)."""
        self._gates: LaneGates | None = None
        self._central_seen: tuple[str, str] | None = None
        self.status_provider = DaemonStatus(
            config=lambda: self.config, lanes=lambda: self._lanes, runtime=self.runtime,
            gates=lambda: self._gates.status() if self._gates is not None else {})
        self.metrics: TerminalMetrics | None = None
        if (config.http is not None and config.http.metrics) or config.metrics_textfile:
            self.metrics = TerminalMetrics(status=self.status_provider)
            self.metrics.attach(self.events)

    # --- what the lanes use ----------------------------------------------------------------

    def runtime(self) -> AbstractContextManager[Runtime]:
        """The current runtime, held for one presentation (a reload waits for it)."""
        return self._holder.use()

    def reader_lock(self, reader: str) -> threading.Lock:
        """One lock per reader, shared by its lane and (later) the local API."""
        return self._reader_locks.setdefault(reader, threading.Lock())

    def _publish(self, lane: str, event: Mapping[str, object]) -> None:
        events_log.info("%s", json.dumps({"lane": lane, **event}, ensure_ascii=False,
                                         default=str, sort_keys=True),
                        extra={"lane": lane, "reason": event.get("reason"),
                               "transaction_id": event.get("transaction_id")})
        runtime = self._holder.current
        if runtime is not None and event.get("journaled"):
            runtime.presented()
        if self._gates is not None:
            self._gates.present(lane, event)      # accepts only; on the gate's own thread
        try:
            self.events.publish_presentation(lane, event)
        except Exception:
            log.exception("lane %s: publishing the presentation event failed", lane)
        if self._publish_hook is not None:
            self._publish_hook(lane, event)

    def _lane_moved(self, lane: str, left: LaneState, entered: LaneState, why: str) -> None:
        event: dict[str, object] = {"lane": lane, "state": entered.value,
                                    "previous": left.value}
        if entered is LaneState.LOST:
            event["fault"] = why        # a fixed phrase or an error class name
        self.events.publish(event, "lane")

    def _publish_central_link(self) -> None:
        """A ``central`` event when the link or the breaker changed (the passenger
        display's offline indicator, ``sscard events``); no I/O, on the loop."""
        runtime = self._holder.current
        if runtime is None or runtime.central_link is None:
            return
        try:
            central = runtime.central_link()
        except Exception as exc:
            log.warning("reading the central link state failed: %s", type(exc).__name__)
            return
        seen = (central.link, central.circuit)
        if seen != self._central_seen:
            self._central_seen = seen
            self.events.publish({"link": central.link, "circuit": central.circuit}, "central")

    def _gate_fault(self, lane: str) -> None:
        for each in self._lanes:
            if each.name == lane:
                each.machine.count("gate.faults")

    # --- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        try:
            self._holder.set(await loop.run_in_executor(self._executor, self._factory,
                                                        self.config))
            await self._start_lanes(loop)
            await self._check_readers()
            await self._start_local_api()
            self._install_signals(loop)
            health = asyncio.create_task(self._health_loop(), name="sscard-health")
            textfile = self._start_textfile()
            self._notifier.ready(self._status_line())
            log.info("ready in %.2f s: terminal %s, profile %s, %d lane(s)",
                     time.monotonic() - started, self.config.terminal_id,
                     self.config.profile.name, len(self._lanes))
            await self._stop.wait()
            health.cancel()
            if textfile is not None:
                self._textfile_stop.set()
                await textfile
                await self._write_textfile()        # the last counts, for the collector
            await self._shutdown()
        finally:
            self._remove_signals(loop)
            if self._local_api is not None:
                await self._local_api.stop()
            for source in self._sources:
                with contextlib.suppress(Exception):
                    source.stop()
            for scanner in self._scanner_lanes:
                await loop.run_in_executor(self._executor, scanner.stop_reading)
            if self._gates is not None:
                await loop.run_in_executor(self._executor, self._gates.shutdown)
            runtime = self._holder.current
            if runtime is not None:
                self._holder.set(None)
                await loop.run_in_executor(self._executor, self._close_runtime, runtime)
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._notifier.close()
        return 0

    async def _start_lanes(self, loop: asyncio.AbstractEventLoop) -> None:
        self._gates = LaneGates(self.config, on_fault=self._gate_fault,
                                publish=lambda event: self.events.publish(event, "gate"))
        for config in self.config.lanes:
            if config.input is LaneInput.CAMERA:
                raise ConfigError(f"{self.config.source}: key 'lanes.{config.name}.camera': "
                                  f"this build of the daemon has no camera lanes yet")
            if config.input is LaneInput.SCANNER:
                scanner = ScannerLane(config, runtime=self.runtime, executor=self._executor,
                                      publish=self._publish)
                await loop.run_in_executor(self._executor, scanner.start_reading, loop)
                self._scanner_lanes.append(scanner)
                self._lanes.append(scanner)
                continue
            source = next((s for s in self._sources if s.handles(config)), None)
            if source is None:
                raise ConfigError(f"{self.config.source}: key 'lanes.{config.name}': no "
                                  f"card event source for reader {config.target!r}")
            card_lane = CardLane(config, runtime=self.runtime, executor=self._executor,
                                 reader_lock=self.reader_lock(config.target),
                                 publish=self._publish, probe=source.probe)
            self._card_lanes.append(card_lane)
            self._lanes.append(card_lane)
        for each in self._lanes:
            each.machine.listener = self._lane_moved
        router = _Router(self._card_lanes)
        for source in self._sources:
            source.start(loop, router)
        for each in self._lanes:
            self._tasks.append(asyncio.create_task(each.run(), name=f"lane-{each.name}"))

    async def _start_local_api(self) -> None:
        settings = self.config.local_api
        if settings is None:
            return
        lane = next(lane for lane in self._card_lanes if lane.name == settings.lane)
        runtime = self._holder.current
        assert runtime is not None
        mount = LocalApiMount(self.config, runtime=self.runtime,
                              reader=lambda: lane.current_card,
                              reader_lock=self.reader_lock(lane.config.target),
                              status=self.status_provider, events=self.events,
                              metrics=self.metrics)
        try:
            await mount.start(runtime)
        except ConfigError as exc:
            await mount.stop()
            key = "http.port" if "cannot listen on" in str(exc) else "local_api.socket"
            raise ConfigError(f"{self.config.source}: key '{key}': {exc}") from exc
        self._local_api = mount

    def _start_textfile(self) -> asyncio.Task[None] | None:
        """The node exporter's textfile, rewritten every 15 s (and once more at stop)."""
        path = self.config.metrics_textfile
        if path is None or self.metrics is None:
            return None
        return asyncio.create_task(run_textfile(self.metrics, path, stop=self._textfile_stop),
                                   name="sscard-metrics-textfile")

    async def _write_textfile(self) -> None:
        path = self.config.metrics_textfile
        if path is None or self.metrics is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(
                self._executor, self.metrics.write_textfile, path)
        except OSError as exc:
            log.warning("metrics: cannot write %s: %s", path, exc)

    async def _check_readers(self) -> None:
        """A reader that is not there at start-up is a lane that starts lost (and says so
        in one line), not a daemon that refuses: the other lanes can work."""
        loop = asyncio.get_running_loop()
        for lane in self._card_lanes:
            source = next(s for s in self._sources if s.handles(lane.config))
            try:
                present = await loop.run_in_executor(self._executor, source.probe,
                                                     lane.config.target)
            except Exception as exc:
                present = False
                log.warning("lane %s: probing %r failed: %s", lane.name, lane.config.target,
                            type(exc).__name__)
            if not present:
                log.warning("lane %s: reader %r not found at start-up; the lane recovers "
                            "when it appears", lane.name, lane.config.target)
                lane.reader_lost("reader not found at start-up")

    async def _shutdown(self) -> None:
        self._notifier.stopping("finishing the presentations in progress")
        log.info("stopping: no new presentations; finishing those in progress")
        for lane in self._lanes:
            lane.stop()
        if self._reloading is not None:
            self._reloading.cancel()
        done, pending = await asyncio.wait(self._tasks, timeout=STOP_BUDGET_S) \
            if self._tasks else (set(), set())
        for task in pending:
            log.error("%s did not finish within %.0f s; leaving it", task.get_name(),
                      STOP_BUDGET_S)
            task.cancel()
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.error("%s had failed: %s", task.get_name(),
                          type(task.exception()).__name__)

    @staticmethod
    def _close_runtime(runtime: Runtime) -> None:
        try:
            runtime.close()
        except Exception as exc:
            log.error("closing the runtime failed: %s", type(exc).__name__)

    # --- signals and reload --------------------------------------------------------------

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    @staticmethod
    def _remove_signals(loop: asyncio.AbstractEventLoop) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)

    def request_reload(self) -> None:
        if self._reloading is not None and not self._reloading.done():
            log.info("reload already in progress; this SIGHUP is folded into it")
            return
        self._reloading = asyncio.get_running_loop().create_task(self.reload())

    async def reload(self) -> bool:
        """Load the file again and swap the runtime; False (old one kept) if refused."""
        loop = asyncio.get_running_loop()
        self._notifier.reloading()
        before = self._holder.current
        try:
            config = await loop.run_in_executor(self._executor, self._load, self._config_path)
            if config.lanes != self.config.lanes:
                raise ConfigError(f"{self._config_path}: key 'lanes': changed; lanes own "
                                  f"hardware, restart the daemon to change them")
            await loop.run_in_executor(self._executor, self._swap, config)
        except ConfigError as exc:
            self.reloads["refused"] += 1
            log.error("reload refused, the running configuration stays: %s", exc)
            self._after_swap(before)       # the running configuration may have been rebuilt
            self._notifier.ready(self._status_line())
            return False
        self.config = config
        if self._gates is not None:
            self._gates.set_open_time(config)
        self._after_swap(before)
        self.reloads["done"] += 1
        log.info("reloaded %s: profile %s", self._config_path, config.profile.name)
        self._notifier.ready(self._status_line())
        return True

    def _after_swap(self, before: Runtime | None) -> None:
        runtime = self._holder.current
        if self._local_api is not None and runtime is not None and runtime is not before:
            self._local_api.swap(runtime)

    def _swap(self, config: DaemonConfig) -> None:
        """In a worker thread: with no presentation running, close the old runtime and
        build the new one (two runtimes never write one journal at once). If the new one
        cannot be built, the running configuration's is built again."""
        with self._holder.exclusive():
            old = self._holder.current
            if old is not None:
                self._holder.set(None)
                self._close_runtime(old)
            try:
                self._holder.set(self._factory(config))
                return
            except Exception as exc:
                failure = exc
            try:
                self._holder.set(self._factory(self.config))
            except Exception as exc:
                # Nothing can serve now: the health check withholds the watchdog ping.
                log.critical("the running configuration cannot be rebuilt either: %s", exc)
            raise ConfigError(str(failure) if isinstance(failure, ConfigError)
                              else f"{self._config_path}: cannot build the terminal: "
                                   f"{type(failure).__name__}: {failure}") from failure

    # --- health and watchdog --------------------------------------------------------------

    def health(self) -> _Health:
        if self._holder.current is None:
            return _Health(False, "no runtime: the terminal's parts are not built")
        for task in self._tasks:
            if task.done():
                return _Health(False, f"{task.get_name()} ended")
        for lane in self._lanes:
            if lane.busy_for > STUCK_PRESENTATION_S:
                return _Health(False, f"lane {lane.name} stuck in a presentation for "
                                      f"{lane.busy_for:.0f} s")
        return _Health(True, "ok")

    async def _health_loop(self) -> None:
        watchdog = self._notifier.watchdog_s
        interval = watchdog / 2 if watchdog else _HEALTH_INTERVAL_S
        last_status = ""
        expected = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, expected - time.monotonic()))
            lag = time.monotonic() - expected
            expected = time.monotonic() + interval
            health = self.health()
            if lag > _LOOP_LAG_LIMIT_S:
                health = _Health(False, f"event loop {lag:.1f} s late")
            if health.healthy:
                if watchdog:
                    self._notifier.watchdog()
            else:
                log.error("health check failed, withholding the watchdog ping: %s",
                          health.why)
            self._publish_central_link()
            status = self._status_line()
            if status != last_status:
                self._notifier.status(status)
                last_status = status

    def _status_line(self) -> str:
        states = ", ".join(f"{lane.name} {lane.machine.state.value}" for lane in self._lanes)
        lost = sum(lane.machine.state in (LaneState.LOST, LaneState.RECOVERING)
                   for lane in self._lanes)
        head = f"{len(self._lanes)} lane(s)" + (f", {lost} lost" if lost else "")
        return f"{head}: {states}" if states else head

    def lane_counters(self) -> dict[str, dict[str, int]]:
        """Every lane's counters, for a status page or a metrics exporter."""
        return {lane.name: lane.machine.counters() for lane in self._lanes}


class _Router:
    """Delivers source events to the lane whose reader they concern."""

    def __init__(self, lanes: Sequence[CardLane]) -> None:
        self._lanes = lanes

    def _for(self, reader: str) -> CardLane | None:
        return next((lane for lane in self._lanes if lane.matches(reader)), None)

    def card_inserted(self, reader: str, at: float, card: str | None = None) -> None:
        lane = self._for(reader)
        if lane is not None:
            lane.card_inserted(reader, at, card)

    def card_removed(self, reader: str) -> None:
        lane = self._for(reader)
        if lane is not None:
            lane.card_removed(reader)

    def reader_lost(self, reader: str | None, why: str) -> None:
        lanes = self._lanes if reader is None else [x for x in (self._for(reader),) if x]
        for lane in lanes:
            lane.reader_lost(why)

    def reader_back(self, reader: str | None) -> None:
        lanes = self._lanes if reader is None else [x for x in (self._for(reader),) if x]
        for lane in lanes:
            lane.reader_back(reader)


def default_sources(config: DaemonConfig) -> list[CardEventSource]:
    """The card event sources the configured lanes need: pcscd for PC/SC readers, the
    control directory for ``sim:`` readers."""
    sources: list[CardEventSource] = []
    card_lanes = [lane for lane in config.lanes if lane.reads_cards]
    if any(not lane.is_sim for lane in card_lanes):
        sources.append(PcscEventSource())
    if any(lane.is_sim for lane in card_lanes):
        sources.append(SimReaderEvents(config.state_directory / SIM_CONTROL_DIRECTORY))
    return sources


def run(config: DaemonConfig, *, config_path: Path) -> int:
    """Run the daemon for ``config`` until SIGTERM; the terminal's parts come from the
    composition root (:func:`~.runtime.build_runtime`)."""
    daemon = Daemon(config, config_path=config_path, runtime_factory=build_runtime,
                    sources=default_sources(config))
    return asyncio.run(daemon.run())
