"""Reader and card events from our own monitor loop, across a pcscd restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sscard_hardware_sim.pcscd_runner import VPCD_READER_0, PcscdRunner, wait_card_state
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.vpcd_link import VpcdLink

from sscard_terminal.drivers.pcsc import ReaderEvent, ReaderEventKind, ReaderMonitor

pytestmark = pytest.mark.pcsc

Kind = ReaderEventKind


def _next(monitor: ReaderMonitor, kind: ReaderEventKind, reader: str | None = None,
          timeout: float = 5.0) -> ReaderEvent:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        event = monitor.get(max(0.0, end - time.monotonic()))
        if event is not None and event.kind is kind and reader in (None, event.reader):
            return event
    raise AssertionError(f"no {kind.value} event within {timeout} s")


def test_card_insert_and_remove_are_events(vpcd_slot: Callable[..., VpcdLink]) -> None:
    with ReaderMonitor() as monitor:
        _next(monitor, Kind.READER_ADDED, VPCD_READER_0)
        link = vpcd_slot(VirtualCard.from_holder("gen2-adult"))
        inserted = _next(monitor, Kind.CARD_INSERTED, VPCD_READER_0)
        assert inserted.atr == link.device.atr
        link.remove()
        _next(monitor, Kind.CARD_REMOVED, VPCD_READER_0)


def test_monitor_stop_leaves_no_thread(pcscd: PcscdRunner) -> None:
    before = set(threading.enumerate())
    monitor = ReaderMonitor().start()
    _next(monitor, Kind.READER_ADDED)
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 1.0
    assert set(threading.enumerate()) <= before


def test_events_resume_within_2_s_after_a_pcscd_restart(pcscd: PcscdRunner) -> None:
    link = VpcdLink(VirtualCard.from_holder("gen2-adult"))
    with ReaderMonitor() as monitor:
        _next(monitor, Kind.READER_ADDED, VPCD_READER_0)
        pcscd.kill_daemon()
        _next(monitor, Kind.READER_LOST)
        pcscd.restart()
        back_at = time.monotonic()
        back = _next(monitor, Kind.READER_BACK)
        assert back.at - back_at < 2.0
        _next(monitor, Kind.READER_ADDED, VPCD_READER_0)
        try:
            link.insert()
            _next(monitor, Kind.CARD_INSERTED, VPCD_READER_0)
        finally:
            link.close()
            wait_card_state(VPCD_READER_0, False)


def test_a_card_swapped_while_the_monitor_was_busy_is_a_removal_and_an_insertion(
        pcscd: PcscdRunner) -> None:
    """pcscd sees the removal and the new card while our monitor is held up (here: its
    listener is slow); the reader is "present" before and after, only pcsc-lite's event
    counter moved. That must still be two events, or the daemon misses a tap."""
    first = VpcdLink(VirtualCard.from_holder("gen2-adult"))
    second = VpcdLink(VirtualCard.from_holder("gen3-adult"))
    hold = threading.Event()
    held = threading.Event()

    def slow_listener(event: ReaderEvent) -> None:
        if event.kind is Kind.CARD_INSERTED and not held.is_set():
            held.set()
            hold.wait(10)

    try:
        with ReaderMonitor(on_event=slow_listener) as monitor:
            _next(monitor, Kind.READER_ADDED, VPCD_READER_0)
            first.insert()
            assert held.wait(5)                         # the monitor is stuck in our listener
            first.remove()
            wait_card_state(VPCD_READER_0, False)       # pcscd saw the card go...
            second.insert()
            wait_card_state(VPCD_READER_0, True)        # ...and the next one come
            hold.set()
            _next(monitor, Kind.CARD_INSERTED, VPCD_READER_0)   # the first card
            _next(monitor, Kind.CARD_REMOVED, VPCD_READER_0)
            swapped = _next(monitor, Kind.CARD_INSERTED, VPCD_READER_0)
            assert swapped.atr == second.device.atr
    finally:
        hold.set()
        first.close()
        second.close()
        wait_card_state(VPCD_READER_0, False)
