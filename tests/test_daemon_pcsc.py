"""LOOP MECHANICS ONLY, on the real pcscd with vpcd: the daemon's PC/SC lanes follow the
real reader and card events, and come back after pcscd restarts.

Real: pcscd, vpcd, the virtual card, the daemon's PC/SC event source and its lane, the
card opened through PC/SC on each tap. Fake: the presenter (records the tap, answers a
fixed result; deciding is the composition root's). These tests say nothing about
decisions.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sscard_hardware_sim.pcscd_runner import VPCD_READER_0, PcscdRunner, wait_card_state
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.vpcd_link import VpcdLink

from sscard_terminal.apdu.transport import CardTransport
from sscard_terminal.daemon.config import DaemonConfig
from sscard_terminal.daemon.lane import LaneState
from sscard_terminal.daemon.pcsc_events import PcscEventSource
from sscard_terminal.daemon.presenter import Runtime
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.pcsc import PcscTransport

from .test_daemon_loop import Factory, FakePresenter, ready, start, until, write_config

pytestmark = pytest.mark.pcsc


class PcscFactory(Factory):
    def __call__(self, config: DaemonConfig) -> Runtime:
        presenter = FakePresenter(f"pcsc#{len(self.built)}")
        self.built.append(presenter)

        def open_card(reader: str, deadline: Deadline) -> CardTransport:
            self.opened.append(reader)
            return PcscTransport(reader)

        return Runtime(presenter=presenter, open_card=open_card, close=lambda: None)


@pytest.fixture
def pcsc_config(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir()
    key = tmp_path / "journal.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    return write_config(tmp_path / "terminal.toml", state, key,
                        lanes='[lanes.door]\nreader_prefix = "Virtual PCD 00 00"\n')


@pytest.fixture
def notify(tmp_path: Path) -> tuple[socket.socket, str]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.setblocking(False)
    return sock, path


def test_a_card_on_a_pcsc_reader_is_presented_through_pcsc(
        pcsc_config: Path, notify: tuple[socket.socket, str],
        vpcd_slot: Callable[..., VpcdLink]) -> None:
    sock, path = notify

    async def scenario() -> None:
        factory = PcscFactory()
        h = await start(pcsc_config, path, sock, factory=factory,
                        sources=[PcscEventSource()])
        await ready(h)
        link = await asyncio.get_running_loop().run_in_executor(
            None, vpcd_slot, VirtualCard.from_holder("gen2-adult"))
        await until(lambda: h.lane("door") is LaneState.WAITING_FOR_REMOVAL)
        presenter = factory.built[0]
        assert factory.opened == [VPCD_READER_0]
        assert presenter.calls[0][2] == link.device.atr
        await asyncio.get_running_loop().run_in_executor(None, link.remove)
        await until(lambda: h.lane("door") is LaneState.IDLE)
        h.daemon.request_stop()
        sock.close()
        assert await h.task == 0

    asyncio.run(scenario())


def test_a_pcsc_lane_is_back_within_2_s_of_pcscd_restarting(
        pcsc_config: Path, notify: tuple[socket.socket, str], pcscd: PcscdRunner) -> None:
    sock, path = notify

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        factory = PcscFactory()
        h = await start(pcsc_config, path, sock, factory=factory,
                        sources=[PcscEventSource()])
        await ready(h)
        await loop.run_in_executor(None, pcscd.kill_daemon)
        await until(lambda: h.lane("door") in (LaneState.LOST, LaneState.RECOVERING))
        await loop.run_in_executor(None, pcscd.restart)
        back_at = time.monotonic()
        await until(lambda: h.lane("door") is LaneState.IDLE, timeout=4.0)
        assert time.monotonic() - back_at < 2.0
        link = VpcdLink(VirtualCard.from_holder("gen2-adult"))
        try:
            await loop.run_in_executor(None, link.insert)
            await until(lambda: len(factory.built[0].calls) == 1)
        finally:
            link.close()
            await loop.run_in_executor(None, wait_card_state, VPCD_READER_0, False)
        assert h.daemon.lane_counters()["door"]["recovered"] >= 1
        h.daemon.request_stop()
        sock.close()
        assert await h.task == 0

    asyncio.run(scenario())
