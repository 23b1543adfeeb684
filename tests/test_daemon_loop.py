"""LOOP MECHANICS ONLY, with a fake presenter: the daemon's asyncio loop, its lanes, READY,
the watchdog, SIGHUP and SIGTERM.

What is real here: the event loop and its worker threads, the systemd notify datagrams (to
a socket the test owns), the signals (sent to this process while the daemon's handlers
are installed), the configuration files, and the virtual card opened on each tap. What
is fake: the presenter, which records each call and answers a fixed result instead of
reading, deciding and journaling (that is the composition root's, tested with it), and the
card event source, which the test drives in place of pcscd. These tests say nothing about
decisions; they pin how the loop moves lanes, pings, reloads and stops.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sscard_hardware_sim.virtual_scanner import VirtualScanner

from sscard_terminal.apdu.transport import CardTransport
from sscard_terminal.daemon import app as app_module
from sscard_terminal.daemon.app import STOP_BUDGET_S, Daemon
from sscard_terminal.daemon.config import DaemonConfig, LaneConfig, load_config
from sscard_terminal.daemon.lane import LaneState
from sscard_terminal.daemon.notify import Notifier
from sscard_terminal.daemon.presenter import Runtime
from sscard_terminal.daemon.runtime import BACKGROUND_STOP_S
from sscard_terminal.daemon.scanner_lane import MAX_WAITING_CODES
from sscard_terminal.daemon.sim_events import SimReaderEvents
from sscard_terminal.daemon.sources import CardEventSink, CardEventSource
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.sim import open_sim_reader
from sscard_terminal.errors import ConfigError

from .test_systemd_units import UNIT, directives

# --- the fakes (labelled as such) ------------------------------------------------------


@dataclass(frozen=True)
class FakeResult:
    accepted: bool
    reason: str
    transaction_id: str
    decision: object | None
    journaled: bool = True

    def event(self) -> Mapping[str, object]:
        return {"outcome": "accept" if self.accepted else "refuse", "reason": self.reason,
                "transaction_id": self.transaction_id}


@dataclass
class FakePresenter:
    """Records each presentation; ``gate`` (if set) holds it until the test releases it."""

    name: str
    calls: list[tuple[str, float, bytes]] = field(default_factory=list)
    codes: list[tuple[str, float, str]] = field(default_factory=list)
    gate: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)
    raise_next: BaseException | None = None
    undecided_next: bool = False

    def present_card(self, transport: CardTransport, *, arrived_at: float,
                     lane: str = "") -> FakeResult:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        self.calls.append((lane, arrived_at, transport.atr))
        if self.raise_next is not None:
            exc, self.raise_next = self.raise_next, None
            raise exc
        n = len(self.calls)
        if self.undecided_next:
            self.undecided_next = False
            return FakeResult(False, "card_removed", f"{self.name}-{n}", decision=None)
        return FakeResult(True, "accepted", f"{self.name}-{n}", decision=object())

    def present_code(self, text: str, *, arrived_at: float, lane: str = "") -> FakeResult:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        self.codes.append((lane, arrived_at, text))
        n = len(self.codes)
        return FakeResult(text.startswith("OK"), "accepted" if text.startswith("OK")
                          else "ecode_refused", f"{self.name}-code-{n}", decision=object())


class Factory:
    """Builds a runtime per configuration (a reload builds another); counts closes."""

    def __init__(self) -> None:
        self.built: list[FakePresenter] = []
        self.closed: list[str] = []
        self.opened: list[str] = []
        self.fail_with: ConfigError | None = None

    def __call__(self, config: DaemonConfig) -> Runtime:
        if self.fail_with is not None:
            raise self.fail_with
        presenter = FakePresenter(f"{config.profile.name}#{len(self.built)}")
        self.built.append(presenter)

        def open_card(reader: str, deadline: Deadline) -> CardTransport:
            self.opened.append(reader)
            # A real virtual card per tap: the holder when the reader names one.
            return open_sim_reader(reader if reader.startswith("sim:gen") else
                                   "sim:gen2-adult")

        return Runtime(presenter=presenter, open_card=open_card,
                       close=lambda: self.closed.append(presenter.name))


class DrivenEvents:
    """Stands in for pcscd: the test inserts and removes cards on sim: readers."""

    def __init__(self) -> None:
        self.sink: CardEventSink | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.present: dict[str, bool] = {}

    def handles(self, lane: LaneConfig) -> bool:
        return lane.is_sim

    def start(self, loop: asyncio.AbstractEventLoop, sink: CardEventSink) -> None:
        self.loop, self.sink = loop, sink

    def probe(self, reader: str) -> bool:
        return self.present.get(reader, True)

    def stop(self) -> None:
        self.sink = None

    def insert(self, reader: str) -> float:
        assert self.sink is not None
        at = time.monotonic()
        self.sink.card_inserted(reader, at)
        return at

    def remove(self, reader: str) -> None:
        assert self.sink is not None
        self.sink.card_removed(reader)


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    yield sock, path
    sock.close()


def drain(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            lines += sock.recv(4096).decode().split("\n")
        except BlockingIOError:
            return lines


def write_config(path: Path, state: Path, key: Path, profile: str = "bus-validator",
                 lanes: str = '[lanes.front]\nreader = "sim:front"\n\n'
                              '[lanes.back]\nreader = "sim:back"\n') -> Path:
    path.write_text(f'[terminal]\nid = "T-LOOP"\nprofile = "{profile}"\n'
                    f'state_directory = "{state}"\n\n[journal]\nkey_file = "{key}"\n\n{lanes}')
    return path


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    key = tmp_path / "journal.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    return write_config(tmp_path / "terminal.toml", state, key)


@dataclass
class Harness:
    daemon: Daemon
    factory: Factory
    events: DrivenEvents
    notify: socket.socket
    published: list[tuple[str, Mapping[str, object]]]
    task: asyncio.Task[int]

    def lane(self, name: str) -> LaneState:
        return next(lane.machine.state for lane in self.daemon._lanes if lane.name == name)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def start(config_file: Path, notify_path: str, notify: socket.socket, *,
                watchdog_usec: int | None = None, factory: Factory | None = None,
                sources: list[CardEventSource] | None = None) -> Harness:
    env = {"NOTIFY_SOCKET": notify_path}
    if watchdog_usec is not None:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    factory = factory or Factory()
    events = DrivenEvents()
    published: list[tuple[str, Mapping[str, object]]] = []
    daemon = Daemon(load_config(config_file), config_path=config_file,
                    runtime_factory=factory, sources=sources or [events],
                    notifier=Notifier(env),
                    publish=lambda lane, event: published.append((lane, event)))
    task = asyncio.create_task(daemon.run())
    harness = Harness(daemon, factory, events, notify, published, task)
    return harness


async def ready(h: Harness) -> list[str]:
    lines: list[str] = []

    def got_ready() -> bool:
        lines.extend(drain(h.notify))
        return "READY=1" in lines

    await until(got_ready)
    return lines


# --- tests -----------------------------------------------------------------------------


def test_ready_then_taps_are_presented_on_their_lane_then_a_clean_stop(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        lines = await ready(h)
        assert any(line.startswith("STATUS=2 lane(s)") for line in lines)
        presenter = h.factory.built[0]
        at = h.events.insert("sim:front")
        await until(lambda: h.lane("front") is LaneState.WAITING_FOR_REMOVAL)
        assert presenter.calls[0][:2] == ("front", at)     # the deadline starts at arrival
        assert presenter.calls[0][2]                         # the virtual card's ATR
        assert h.published == [("front", {"outcome": "accept", "reason": "accepted",
                                          "transaction_id": f"{presenter.name}-1"})]
        assert h.lane("back") is LaneState.IDLE
        h.events.remove("sim:front")
        await until(lambda: h.lane("front") is LaneState.IDLE)
        h.daemon.request_stop()
        assert await h.task == 0
        assert "STOPPING=1" in drain(sock)
        assert h.factory.closed == [presenter.name]
        counters = h.daemon.lane_counters()["front"]
        for move in ("idle.card_present", "card_present.reading", "reading.deciding",
                     "deciding.showing", "showing.waiting_for_removal",
                     "waiting_for_removal.idle"):
            assert counters[f"transition.{move}"] == 1, move

    asyncio.run(scenario())


def test_a_quick_swap_between_polls_is_two_taps(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        await ready(h)
        h.events.insert("sim:front")
        await until(lambda: h.lane("front") is LaneState.WAITING_FOR_REMOVAL)
        h.events.insert("sim:front")         # removed and re-inserted between two polls
        await until(lambda: len(h.factory.built[0].calls) == 2)
        await until(lambda: h.lane("front") is LaneState.WAITING_FOR_REMOVAL)
        counters = h.daemon.lane_counters()["front"]
        assert counters["transition.waiting_for_removal.card_present"] == 1
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_a_card_pulled_mid_read_is_never_shown_as_decided(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        await ready(h)
        presenter = h.factory.built[0]
        presenter.undecided_next = True
        presenter.gate = threading.Event()
        h.events.insert("sim:front")
        await until(presenter.started.is_set)
        h.events.remove("sim:front")         # pulled while the presentation runs
        presenter.gate.set()
        await until(lambda: h.lane("front") is LaneState.IDLE and len(h.published) == 1)
        counters = h.daemon.lane_counters()["front"]
        assert counters["transition.reading.idle"] == 1
        assert "transition.reading.deciding" not in counters
        assert "entered.showing" not in counters
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_a_presenter_that_raises_does_not_end_the_lane(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        await ready(h)
        presenter = h.factory.built[0]
        presenter.raise_next = KeyError("a bug in a part")
        h.events.insert("sim:front")
        await until(lambda: h.daemon.lane_counters()["front"].get("presentations.crashed") == 1)
        await until(lambda: h.lane("front") is LaneState.IDLE)
        h.events.insert("sim:front")
        await until(lambda: len(h.published) == 1)
        assert h.daemon.health().healthy
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_a_lost_lane_is_back_within_2_s_while_the_other_lane_decides(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        await ready(h)
        h.events.present["sim:back"] = False
        assert h.events.sink is not None
        h.events.sink.reader_lost("sim:back", "reader unplugged")
        await asyncio.sleep(1.5)                # several failed attempts: backoff grows
        assert h.lane("back") in (LaneState.LOST, LaneState.RECOVERING)
        h.events.insert("sim:front")            # the other lane keeps deciding
        await until(lambda: len(h.published) == 1)
        h.events.present["sim:back"] = True     # plugged back in; no event says so
        back_at = time.monotonic()
        await until(lambda: h.lane("back") is LaneState.IDLE, timeout=3.0)
        assert time.monotonic() - back_at < 2.0
        counters = h.daemon.lane_counters()["back"]
        assert counters["recovered"] == 1 and counters["entered.recovering"] >= 3
        lines = drain(sock)
        assert any("1 lost" in line for line in lines if line.startswith("STATUS="))
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_a_reader_missing_at_start_starts_lost_not_refused(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket

    async def scenario() -> None:
        factory = Factory()
        h = await start(config_file, path, sock, factory=factory)
        h.events.present["sim:back"] = False
        await ready(h)
        await until(lambda: h.lane("back") in (LaneState.LOST, LaneState.RECOVERING))
        assert h.lane("front") is LaneState.IDLE
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_watchdog_pings_stop_when_a_presentation_hangs(
        config_file: Path, notify_socket: tuple[socket.socket, str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sock, path = notify_socket
    monkeypatch.setattr(app_module, "STUCK_PRESENTATION_S", 0.3)

    async def scenario() -> None:
        h = await start(config_file, path, sock, watchdog_usec=200_000)  # ping every 0.1 s
        await ready(h)
        await asyncio.sleep(0.6)
        assert drain(sock).count("WATCHDOG=1") >= 3
        presenter = h.factory.built[0]
        presenter.gate = threading.Event()
        h.events.insert("sim:front")
        await until(presenter.started.is_set)
        await asyncio.sleep(0.5)                 # past the (shortened) stuck limit
        drain(sock)
        await asyncio.sleep(0.5)
        assert "WATCHDOG=1" not in drain(sock)   # systemd would restart us now
        assert not h.daemon.health().healthy
        presenter.gate.set()
        await until(lambda: h.daemon.health().healthy)
        await asyncio.sleep(0.4)
        assert "WATCHDOG=1" in drain(sock)
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_watchdog_pings_stop_when_the_loop_is_blocked(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket

    async def scenario() -> None:
        h = await start(config_file, path, sock, watchdog_usec=200_000)
        await ready(h)
        await asyncio.sleep(0.3)
        drain(sock)
        time.sleep(0.8)                          # the loop itself is stuck
        assert "WATCHDOG=1" not in drain(sock)
        await asyncio.sleep(0.3)
        assert "WATCHDOG=1" in drain(sock)       # and pings again once it runs
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_sighup_refuses_a_bad_config_and_swaps_in_a_good_one(
        config_file: Path, notify_socket: tuple[socket.socket, str],
        caplog: pytest.LogCaptureFixture) -> None:
    sock, path = notify_socket
    good = config_file.read_text()

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        await ready(h)
        first = h.factory.built[0]
        config_file.write_text(good.replace('id = "T-LOOP"', "id = 5"))
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: h.daemon.reloads["refused"] == 1)
        refusals = [r.getMessage() for r in caplog.records if "reload refused" in r.getMessage()]
        assert len(refusals) == 1 and "\n" not in refusals[0]
        assert "key 'terminal.id'" in refusals[0]
        h.events.insert("sim:front")
        await until(lambda: len(first.calls) == 1)       # the old runtime still serves
        h.events.remove("sim:front")
        config_file.write_text(good.replace('"bus-validator"', '"library-gate"'))
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: h.daemon.reloads["done"] == 1)
        assert h.daemon.config.profile.name == "library-gate"
        second = h.factory.built[1]
        await until(lambda: first.name in h.factory.closed)    # the old one released
        await until(lambda: h.lane("front") is LaneState.IDLE)
        h.events.insert("sim:front")
        await until(lambda: len(second.calls) == 1)
        assert len(first.calls) == 1
        lines = drain(sock)
        assert lines.count("RELOADING=1") == 2
        config_file.write_text(good + '\n[lanes.side]\nreader = "sim:side"\n')
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: h.daemon.reloads["refused"] == 2)   # lanes own hardware
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_sigterm_finishes_the_presentation_in_progress(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        await ready(h)
        presenter = h.factory.built[0]
        presenter.gate = threading.Event()
        h.events.insert("sim:front")
        await until(presenter.started.is_set)
        os.kill(os.getpid(), signal.SIGTERM)
        await until(lambda: "STOPPING=1" in drain(sock))
        await asyncio.sleep(0.2)
        assert not h.task.done()                 # waiting for the tap in progress
        h.events.insert("sim:back")              # no new presentation once stopping
        presenter.gate.set()
        assert await asyncio.wait_for(h.task, STOP_BUDGET_S) == 0
        assert [lane for lane, _event in h.published] == ["front"]
        assert [call[0] for call in presenter.calls] == ["front"]

    asyncio.run(scenario())


def test_a_runtime_that_cannot_be_built_is_refused_before_ready(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    factory = Factory()
    factory.fail_with = ConfigError("terminal.toml: key 'journal.key_file': key does not match")

    async def scenario() -> None:
        h = await start(config_file, path, sock, factory=factory)
        with pytest.raises(ConfigError, match="does not match"):
            await h.task
        assert "READY=1" not in drain(sock)

    asyncio.run(scenario())


def test_the_stop_budget_fits_inside_the_units_timeout() -> None:
    timeout = directives(UNIT.read_text())["Service.TimeoutStopSec"][0]
    assert timeout.endswith("s")
    assert STOP_BUDGET_S + BACKGROUND_STOP_S + 1.0 <= float(timeout[:-1])


# --- scanner lanes, on a real pty behind a by-id style link ------------------------------


@pytest.fixture
def scanner_config(tmp_path: Path) -> tuple[Path, Path]:
    state = tmp_path / "state"
    state.mkdir()
    key = tmp_path / "journal.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    link = tmp_path / "by-id" / "usb-Virtual_Scanner_0001-if00"
    lanes = f'[lanes.front]\nreader = "sim:front"\n\n[lanes.qr]\nscanner = "{link}"\n'
    return write_config(tmp_path / "terminal.toml", state, key, lanes=lanes), link


def test_a_scanned_code_is_presented_on_the_scanner_lane(
        scanner_config: tuple[Path, Path], notify_socket: tuple[socket.socket, str]) -> None:
    config_file, link = scanner_config
    sock, path = notify_socket

    async def scenario() -> None:
        with VirtualScanner(link) as device:
            h = await start(config_file, path, sock)
            await ready(h)
            presenter = h.factory.built[0]
            before = time.monotonic()
            device.scan("OK-code-1")
            await until(lambda: len(h.published) == 1)
            lane, arrived_at, text = presenter.codes[0]
            assert (lane, text) == ("qr", "OK-code-1")
            assert before <= arrived_at <= time.monotonic()
            assert h.published[0][1]["outcome"] == "accept"
            device.scan("BAD-code-2")
            await until(lambda: len(h.published) == 2)
            assert h.published[1][1]["outcome"] == "refuse"
            await until(lambda: h.lane("qr") is LaneState.IDLE)
            counters = h.daemon.lane_counters()["qr"]
            assert counters["transition.idle.reading"] == 2
            assert counters["transition.showing.idle"] == 2
            h.daemon.request_stop()
            await h.task

    asyncio.run(scenario())


def test_an_unplugged_scanner_is_back_within_2_s_of_its_return(
        scanner_config: tuple[Path, Path], notify_socket: tuple[socket.socket, str]) -> None:
    config_file, link = scanner_config
    sock, path = notify_socket

    async def scenario() -> None:
        with VirtualScanner(link) as device:
            h = await start(config_file, path, sock)
            await ready(h)
            device.unplug()
            await until(lambda: h.lane("qr") is LaneState.RECOVERING)
            h.events.insert("sim:front")             # the card lane goes on deciding
            await until(lambda: len(h.published) == 1)
            device.replug()
            back_at = time.monotonic()
            await until(lambda: h.lane("qr") is LaneState.IDLE, timeout=3.0)
            assert time.monotonic() - back_at < 2.0
            device.scan("OK-after-replug")
            await until(lambda: len(h.published) == 2)
            assert h.daemon.lane_counters()["qr"]["recovered"] == 1
            h.daemon.request_stop()
            await h.task

    asyncio.run(scenario())


def test_a_scanner_missing_at_start_starts_lost_and_joins_when_plugged(
        scanner_config: tuple[Path, Path], notify_socket: tuple[socket.socket, str]) -> None:
    config_file, link = scanner_config
    sock, path = notify_socket

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        await ready(h)                                 # READY: the card lane works
        await until(lambda: h.lane("qr") is LaneState.RECOVERING)
        with VirtualScanner(link) as device:
            await until(lambda: h.lane("qr") is LaneState.IDLE, timeout=3.0)
            device.scan("OK-late")
            await until(lambda: len(h.published) == 1)
            h.daemon.request_stop()
            await h.task

    asyncio.run(scenario())


def test_a_flooding_scanner_is_bounded_and_counted(
        scanner_config: tuple[Path, Path], notify_socket: tuple[socket.socket, str]) -> None:
    config_file, link = scanner_config
    sock, path = notify_socket

    async def scenario() -> None:
        with VirtualScanner(link) as device:
            h = await start(config_file, path, sock)
            await ready(h)
            presenter = h.factory.built[0]
            presenter.gate = threading.Event()
            device.scan("OK-first")
            await until(presenter.started.is_set)
            flood = 3 * MAX_WAITING_CODES
            for n in range(flood):
                device.scan(f"OK-flood-{n}")
            device.drain()
            await until(lambda: h.daemon.lane_counters()["qr"].get("codes.dropped", 0)
                        == flood - MAX_WAITING_CODES)
            presenter.gate.set()
            await until(lambda: len(h.published) == 1 + MAX_WAITING_CODES)
            assert [text for _l, _a, text in presenter.codes[1:]] == [
                f"OK-flood-{n}" for n in range(MAX_WAITING_CODES)]
            h.daemon.request_stop()
            await h.task

    asyncio.run(scenario())


# --- sim: readers through their control directory ---------------------------------------


def put_card(directory: Path, reader: str, holder: str) -> None:
    new = directory / f"{reader}.new"
    new.write_text(holder + "\n")
    new.replace(directory / reader)          # atomic: a new inode is a new card


def test_sim_readers_take_cards_from_their_control_directory(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    config = load_config(config_file)
    control = config.state_directory / "sim-readers"

    async def scenario() -> None:
        h = await start(config_file, path, sock, sources=[SimReaderEvents(control)])
        await ready(h)
        presenter = h.factory.built[0]
        put_card(control, "front", "gen3-adult")
        await until(lambda: h.lane("front") is LaneState.WAITING_FOR_REMOVAL)
        assert h.factory.opened == ["sim:gen3-adult"]
        put_card(control, "front", "gen2-adult")  # swapped without ever being empty
        await until(lambda: len(presenter.calls) == 2)
        assert h.factory.opened == ["sim:gen3-adult", "sim:gen2-adult"]
        (control / "front").unlink()
        await until(lambda: h.lane("front") is LaneState.IDLE)
        (control / "back").write_text("../../etc/passwd\n")   # not a holder: ignored
        await asyncio.sleep(0.2)
        assert len(presenter.calls) == 2 and h.lane("back") is LaneState.IDLE
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


def test_a_reload_whose_parts_cannot_be_built_keeps_the_running_configuration(
        config_file: Path, notify_socket: tuple[socket.socket, str]) -> None:
    sock, path = notify_socket
    good = config_file.read_text()

    async def scenario() -> None:
        h = await start(config_file, path, sock)
        await ready(h)
        config_file.write_text(good.replace('"bus-validator"', '"library-gate"'))
        h.factory.fail_with = ConfigError("journal key does not match")
        rebuilt = len(h.factory.built)

        def fail_once(config: DaemonConfig) -> Runtime:
            h.factory.fail_with = None            # the running configuration builds again
            raise ConfigError(f"{config.source}: key 'journal': journal key does not match")

        h.daemon._factory = lambda config: (fail_once(config)
                                            if config.profile.name == "library-gate"
                                            else h.factory(config))
        os.kill(os.getpid(), signal.SIGHUP)
        await until(lambda: h.daemon.reloads["refused"] == 1)
        assert h.daemon.config.profile.name == "bus-validator"
        assert len(h.factory.built) == rebuilt + 1    # rebuilt from the running config
        assert h.factory.closed == [h.factory.built[0].name]
        h.events.insert("sim:front")
        await until(lambda: len(h.factory.built[-1].calls) == 1)
        assert h.daemon.health().healthy
        h.daemon.request_stop()
        await h.task

    asyncio.run(scenario())


# --- the local API on a lane's reader ---------------------------------------------------


class ApiClient:
    """Newline-delimited JSON on the daemon's Unix socket, as a HIS plugin speaks it."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(str(path))
        self.file = self.sock.makefile("rb")

    def call(self, request: dict[str, object]) -> dict[str, object]:
        self.sock.sendall(json.dumps(request).encode() + b"\n")
        answer: dict[str, object] = json.loads(self.file.readline())
        return answer

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_the_local_api_reads_the_lanes_card_and_shares_its_reader_lock(
        tmp_path: Path, notify_socket: tuple[socket.socket, str]) -> None:
    """Loop mechanics with a fake presenter for the lane; the local API's reads are real
    reads of the virtual card on the lane's reader."""
    sock, path = notify_socket
    state = tmp_path / "state"
    state.mkdir()
    key = tmp_path / "journal.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    api_path = tmp_path / "api.sock"
    config_file = write_config(tmp_path / "terminal.toml", state, key,
                               lanes=f'[lanes.desk]\nreader = "sim:desk"\n\n'
                                     f'[local_api]\nsocket = "{api_path}"\n')
    control = state / "sim-readers"

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        h = await start(config_file, path, sock, sources=[SimReaderEvents(control)])
        await ready(h)
        presenter = h.factory.built[0]
        put_card(control, "desk", "gen3-adult")
        await until(lambda: len(presenter.calls) == 1)
        client = await loop.run_in_executor(None, ApiClient, api_path)
        basic = await loop.run_in_executor(None, client.call,
                                           {"function": "iReadCardBas", "iType": 3})
        # No security module in the fake runtime: a generation 3 card answers -2201.
        assert basic["code"] == -2201
        step1 = await loop.run_in_executor(None, client.call,
                                           {"function": "iReadCardBas_HSM_Step1", "iType": 3})
        assert step1["code"] == 0                 # the HIS now holds the card
        assert h.factory.opened[-1] == "sim:gen3-adult"
        put_card(control, "desk", "gen3-adult")   # a tap while the HIS holds the reader
        await until(lambda: h.daemon.lane_counters()["desk"].get(
            "presentations.reader_busy") == 1)
        assert len(presenter.calls) == 1          # not presented behind the HIS's back
        status = await loop.run_in_executor(None, client.call, {"function": "status"})
        lanes = status["data"]["lanes"]               # type: ignore[index]
        assert [(x["name"], x["kind"], x["device"]) for x in lanes] == [
            ("desk", "card", "sim:desk")]
        last = await loop.run_in_executor(None, client.call, {"function": "last_decision"})
        assert last["data"]["transaction_id"] == f"{presenter.name}-1"  # type: ignore[index]
        assert h.daemon.events.published >= 2        # lane changes and the presentation
        await loop.run_in_executor(None, client.close)   # the HIS goes: the card is free
        await asyncio.sleep(0.2)
        put_card(control, "desk", "gen2-adult")
        await until(lambda: len(presenter.calls) == 2)
        h.daemon.request_stop()
        await h.task
        assert not api_path.exists()

    asyncio.run(scenario())
