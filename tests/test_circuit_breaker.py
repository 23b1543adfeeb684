"""The central's circuit breaker: a silent central is remembered, one probe at a time."""

from __future__ import annotations

import datetime as dt
import threading
import time
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.circuit_breaker import CircuitBreaker, CircuitState, GuardedCentral
from sscard_terminal.central.client import CentralClient
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import DecisionEngine, Denylist
from sscard_terminal.errors import (
    CentralProtocolError,
    CentralRefusedError,
    CentralUnreachableError,
    DeadlineExceededError,
)
from sscard_terminal.profiles import load_profile

from .decision_helpers import ManualClock, read_tap, tap


class HandClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def silent() -> str:
    raise CentralUnreachableError("no answer")


def answers() -> str:
    return "ok"


def test_opens_after_threshold_silent_calls_and_then_refuses_without_calling() -> None:
    clock = HandClock()
    breaker = CircuitBreaker(failure_threshold=3, cool_down_s=5.0, clock=clock)
    for _ in range(2):
        with pytest.raises(CentralUnreachableError):
            breaker.call(silent)
        assert breaker.state is CircuitState.CLOSED
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)
    assert breaker.state is CircuitState.OPEN
    calls = []
    with pytest.raises(CentralUnreachableError, match="not asked again"):
        breaker.call(lambda: calls.append(1))
    assert calls == []          # the central was not asked at all
    assert breaker.counters()["refused_open"] == 1
    assert breaker.counters()["opened"] == 1


def test_refused_open_call_costs_no_time() -> None:
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=60.0)

    def slow_silence() -> None:
        time.sleep(0.2)
        raise DeadlineExceededError("budget spent")

    with pytest.raises(DeadlineExceededError):
        breaker.call(slow_silence)
    started = time.monotonic()
    with pytest.raises(CentralUnreachableError):
        breaker.call(slow_silence)
    assert time.monotonic() - started < 0.05


def test_a_success_resets_the_count_of_silent_calls() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=HandClock())
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)
    assert breaker.call(answers) == "ok"
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("error", [CentralRefusedError("no", "bad-signature"),
                                   CentralProtocolError("garbage")])
def test_a_central_that_answers_badly_is_not_silent(error: Exception) -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=HandClock())

    def answer_badly() -> None:
        raise error

    for _ in range(3):
        with pytest.raises(type(error)):
            breaker.call(answer_badly)
    assert breaker.state is CircuitState.CLOSED


def test_half_open_lets_exactly_one_probe_through() -> None:
    clock = HandClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=5.0, clock=clock)
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)
    clock.t += 4.9
    assert breaker.state is CircuitState.OPEN
    clock.t += 0.1
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow() is True        # the probe
    assert breaker.allow() is False       # everybody else waits for its answer
    assert breaker.allow() is False
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow() is True and breaker.allow() is True


def test_failed_probe_reopens_for_a_full_cool_down() -> None:
    clock = HandClock()
    breaker = CircuitBreaker(failure_threshold=3, cool_down_s=5.0, clock=clock)
    for _ in range(3):
        with pytest.raises(CentralUnreachableError):
            breaker.call(silent)
    clock.t += 5.0
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)               # the probe, silent again: open at once
    assert breaker.state is CircuitState.OPEN
    clock.t += 4.0
    assert breaker.allow() is False
    clock.t += 1.0
    assert breaker.call(answers) == "ok"
    assert breaker.state is CircuitState.CLOSED
    assert breaker.counters()["probes"] == 2


def test_a_probe_that_never_reports_frees_its_slot_after_a_cool_down() -> None:
    clock = HandClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=2.0, clock=clock)
    breaker.allow()
    breaker.record_failure()
    clock.t += 2.0
    assert breaker.allow() is True         # a probe that will never report back
    clock.t += 1.0
    assert breaker.allow() is False
    clock.t += 1.0
    assert breaker.allow() is True         # another probe may go


def test_a_bug_in_the_probe_frees_the_slot_without_judging_the_central() -> None:
    clock = HandClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=1.0, clock=clock)
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)
    clock.t += 1.0

    def bug() -> None:
        raise KeyError("oops")

    with pytest.raises(KeyError):
        breaker.call(bug)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow() is True


def test_many_threads_in_half_open_send_one_probe() -> None:
    clock = HandClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=1.0, clock=clock)
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)
    clock.t += 1.0
    gate = threading.Barrier(16)
    went_through: list[int] = []
    lock = threading.Lock()

    def tap(i: int) -> None:
        gate.wait()
        if breaker.allow():
            with lock:
                went_through.append(i)

    threads = [threading.Thread(target=tap, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(went_through) == 1


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cool_down_s=0)


# --- with the real central simulator, silent ------------------------------------------


def test_a_silent_central_is_remembered_so_offline_taps_stop_waiting(
        central_sim: CentralSim, client: CentralClient, tmp_path: Path) -> None:
    clock = ManualClock(wall=dt.datetime.now(dt.UTC))
    with Denylist.open(tmp_path / "denylist.db", clock=clock) as denylist:
        denylist.refresh(client, deadline=Deadline.after(5.0))
        breaker = CircuitBreaker(failure_threshold=2, cool_down_s=0.5)
        engine = DecisionEngine(load_profile("bus-validator"),
                                central=GuardedCentral(client, breaker), denylist=denylist,
                                clock=clock)

        def timed(n: int) -> float:
            started = time.monotonic()
            decision = engine.decide(tap(n), deadline=Deadline.after(1.0))
            assert decision.accepted and not decision.online
            return time.monotonic() - started

        central_sim.set_faults(mode="timeout")        # packets in, nothing back
        waited = [timed(n) for n in (1, 2)]
        assert min(waited) > 0.15                      # each spent the online budget
        assert breaker.state is CircuitState.OPEN
        remembered = [timed(n) for n in range(3, 9)]
        assert max(remembered) < 0.05                  # the outage is remembered
        central_sim.set_faults(mode="none")
        time.sleep(0.5)
        probe = engine.decide(read_tap(central_sim.store, DEMO_CARDS["normal"].card_number),
                              deadline=Deadline.after(1.0))
        assert probe.online
        assert breaker.state is CircuitState.CLOSED


def test_with_background_probes_no_call_ever_probes() -> None:
    clock = HandClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=5.0, clock=clock)
    breaker.probe_in_background()
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)
    clock.t += 5.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow() is False                 # a tap never waits on a probe
    assert breaker.probe(silent) is False           # the background probe: still silent
    assert breaker.state is CircuitState.OPEN
    clock.t += 4.0
    asked: list[int] = []
    assert breaker.probe(lambda: asked.append(1)) is False   # cool-down not over: not asked
    assert asked == []
    clock.t += 1.0
    assert breaker.probe(answers) is True
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow() is True


def test_a_background_probe_answered_with_a_refusal_closes_the_circuit() -> None:
    clock = HandClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_s=1.0, clock=clock)
    breaker.probe_in_background()
    with pytest.raises(CentralUnreachableError):
        breaker.call(silent)
    clock.t += 1.0

    def refused() -> None:
        raise CentralRefusedError("no", "clock-skew")

    assert breaker.probe(refused) is True
    assert breaker.state is CircuitState.CLOSED
