"""The gate output seam (issue 18, item 2): the sim gate, the serial relay over a real
pseudo-terminal, the GPIO driver as far as it can be tested without a chip, and the
controller's rules (never open for a refusal; a failing gate is a reported lane fault,
never an exception into the lane)."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sscard_terminal.decision.rules import Outcome
from sscard_terminal.drivers.gate import (
    GateController,
    GateOutputError,
    GateState,
    SimGate,
    gate_from_config,
)
from sscard_terminal.drivers.gate_gpio import GpioGate
from sscard_terminal.drivers.gate_serial import SerialRelayGate, parse_frame
from sscard_terminal.errors import ConfigError
from sscard_terminal.terminal.presentation import Presentation

OPEN = bytes.fromhex("A00101A2")
CLOSE = bytes.fromhex("A00100A1")


def presentation(outcome: Outcome, transaction_id: str = "t1") -> Presentation:
    return Presentation(channel="card", outcome=outcome, reason="accepted"
                        if outcome is Outcome.ACCEPT else "card_lost", message="",
                        transaction_id=transaction_id, online=False, elapsed_ms=12.0,
                        lane="gate-1")


class Faults:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.event = threading.Event()

    def __call__(self, lane: str, message: str) -> None:
        self.seen.append((lane, message))
        self.event.set()


# --- the controller and the sim gate ---------------------------------------------------------


def test_gate_opens_for_accepts_only_and_closes_after_the_open_time() -> None:
    changes: list[GateState] = []
    gate = SimGate(on_change=lambda state, fault: changes.append(state))
    controller = GateController(gate, open_seconds=0.2, lane="gate-1")
    assert controller.present(presentation(Outcome.REFUSE)) is False
    assert controller.present(presentation(Outcome.DEFER)) is False
    assert gate.history == [] and gate.state is GateState.CLOSED
    assert controller.present(presentation(Outcome.ACCEPT)) is True
    assert gate.state is GateState.OPEN
    opened = gate.history[0][0]
    end = time.monotonic() + 3
    while gate.state is GateState.OPEN and time.monotonic() < end:
        time.sleep(0.01)
    assert [what for _, what in gate.history] == ["open", "close"]
    assert 0.18 <= gate.history[1][0] - opened < 1.0
    assert changes == [GateState.OPEN, GateState.CLOSED]


def test_a_second_accept_extends_the_opening() -> None:
    gate = SimGate()
    controller = GateController(gate, open_seconds=0.3)
    controller.present(presentation(Outcome.ACCEPT))
    time.sleep(0.2)
    controller.present(presentation(Outcome.ACCEPT, "t2"))
    time.sleep(0.2)
    assert gate.state is GateState.OPEN  # 0.4 s after the first, 0.2 after the second
    gate.close()
    assert gate.state is GateState.CLOSED


def test_a_failing_gate_is_a_reported_fault_never_an_exception() -> None:
    gate = SimGate()
    faults = Faults()
    controller = GateController(gate, open_seconds=0.1, lane="gate-1", on_fault=faults)
    gate.broken = "relay does not answer"
    assert controller.present(presentation(Outcome.ACCEPT, "tx-9")) is False
    assert faults.seen == [("gate-1", "relay does not answer")]
    assert gate.state is GateState.FAULT and controller.faults == 1
    # It heals when the relay answers again.
    gate.broken = None
    assert controller.present(presentation(Outcome.ACCEPT)) is True
    # A close that fails in the timer's thread, after present() returned, is reported too.
    faults.event.clear()
    gate.broken = "relay stuck"
    assert faults.event.wait(3)
    assert faults.seen[-1] == ("gate-1", "relay stuck") and gate.state is GateState.FAULT


def test_open_time_is_bounded() -> None:
    with pytest.raises(ConfigError, match="open time"):
        GateController(SimGate(), open_seconds=0)
    with pytest.raises(ConfigError, match="open time"):
        GateController(SimGate(), open_seconds=3600)


# --- the serial relay, over a real pty -------------------------------------------------------


@contextlib.contextmanager
def pty_port(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A pseudo-terminal: the master fd (the "relay board" side) and a stable symlink
    to the slave, as /dev/serial/by-id gives one."""
    master, slave = os.openpty()
    link = tmp_path / "usb-relay"
    link.symlink_to(os.ttyname(slave))
    os.close(slave)
    try:
        yield master, link
    finally:
        with contextlib.suppress(OSError):
            os.close(master)


def read_exactly(fd: int, size: int, timeout: float = 3.0) -> bytes:
    data = b""
    end = time.monotonic() + timeout
    while len(data) < size and time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        if ready:
            data += os.read(fd, size - len(data))
    return data


def test_serial_relay_sends_the_boards_frames(tmp_path: Path) -> None:
    with pty_port(tmp_path) as (master, port):
        gate = SerialRelayGate(str(port), open_frame=OPEN, close_frame=CLOSE)
        controller = GateController(gate, open_seconds=0.2)
        controller.present(presentation(Outcome.REFUSE))
        controller.present(presentation(Outcome.ACCEPT))
        started = time.monotonic()
        assert read_exactly(master, 4) == OPEN
        assert read_exactly(master, 4) == CLOSE
        assert time.monotonic() - started >= 0.15
        end = time.monotonic() + 2  # the frame is read before the driver marks it sent
        while gate.state is not GateState.CLOSED and time.monotonic() < end:
            time.sleep(0.01)
        assert gate.state is GateState.CLOSED
        gate.shutdown()


def test_serial_relay_unplugged_is_a_fault_and_heals(tmp_path: Path) -> None:
    faults = Faults()
    gate = SerialRelayGate(str(tmp_path / "usb-relay"), open_frame=OPEN, close_frame=CLOSE)
    controller = GateController(gate, open_seconds=5, lane="gate-2", on_fault=faults)
    assert controller.present(presentation(Outcome.ACCEPT)) is False  # not plugged in
    assert faults.seen and "usb-relay" in faults.seen[0][1]
    assert gate.state is GateState.FAULT
    with pty_port(tmp_path) as (master, _):
        assert controller.present(presentation(Outcome.ACCEPT)) is True
        assert read_exactly(master, 4) == OPEN
        os.close(master)  # the board goes away while the gate is open
        with pytest.raises(GateOutputError):
            gate.close()
        assert gate.state is GateState.FAULT
    gate.shutdown()


def test_serial_config_is_validated_naming_the_key() -> None:
    good: dict[str, Any] = {"driver": "serial", "port": "/dev/serial/by-id/usb-relay",
                            "open_frame": "A0 01 01 A2", "close_frame": "a0:01:00:a1"}
    gate = gate_from_config(good, where="lanes.gate-1.gate")
    assert isinstance(gate, SerialRelayGate) and gate.close_frame == CLOSE
    for bad, key in (({**good, "open_frame": "A0 0G"}, "open_frame"),
                     ({**good, "port": "COM3"}, "port"),
                     ({**good, "baudrate": "fast"}, "baudrate"),
                     ({**good, "colour": "red"}, "colour"),
                     ({k: v for k, v in good.items() if k != "close_frame"}, "close_frame")):
        with pytest.raises(ConfigError, match=f"lanes.gate-1.gate.*{key}"):
            gate_from_config(bad, where="lanes.gate-1.gate")
    with pytest.raises(ConfigError, match="driver"):
        gate_from_config({"driver": "relay"})
    assert isinstance(gate_from_config({"driver": "sim"}), SimGate)
    assert parse_frame("FF", where="x") == b"\xff"
    with pytest.raises(ConfigError):
        parse_frame("", where="x")


# --- GPIO: what can be tested without a chip ----------------------------------------------------


def test_gpio_config_is_validated() -> None:
    gate = gate_from_config({"driver": "gpio", "chip": "/dev/gpiochip0", "line": 17,
                             "active_low": True}, where="g")
    assert isinstance(gate, GpioGate) and gate.line == 17 and gate.active_low
    for bad, key in (({"chip": "/sys/class/gpio", "line": 1}, "chip"),
                     ({"chip": "/dev/gpiochip0", "line": -1}, "line"),
                     ({"chip": "/dev/gpiochip0", "line": True}, "line"),
                     ({"chip": "/dev/gpiochip0", "line": 1, "active_low": "yes"},
                      "active_low")):
        with pytest.raises(ConfigError, match=f"g.{key}"):
            gate_from_config({"driver": "gpio", **bad}, where="g")


@pytest.mark.parametrize("chip", ["/dev/gpiochip250", "/dev/null"])
def test_gpio_without_a_usable_chip_is_a_fault(chip: str) -> None:
    """No chip at that path, or a device that is not a GPIO chip: a lane fault with the
    chip named, not an exception into the lane."""
    faults = Faults()
    controller = GateController(GpioGate(chip, 17), open_seconds=1, lane="gate-3",
                                on_fault=faults)
    assert controller.present(presentation(Outcome.ACCEPT)) is False
    assert faults.seen and chip in faults.seen[0][1]
    assert controller.gate.state is GateState.FAULT
    controller.gate.shutdown()
