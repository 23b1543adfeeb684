"""Shared pytest fixtures. Each part appends its own section; keep sections independent."""

from __future__ import annotations

# --- card path (task A): real pcscd + vpcd ---------------------------------------------
import os as _os
from collections.abc import Callable as _Callable
from collections.abc import Iterator as _Iterator
from pathlib import Path as _Path

import pytest
from sscard_hardware_sim.device import VirtualDevice
from sscard_hardware_sim.pcscd_runner import (
    VPCD_READER_0,
    VPCD_READER_1,
    PcscdRunner,
    wait_card_state,
)
from sscard_hardware_sim.vpcd_link import VpcdLink


@pytest.fixture(scope="session")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> _Iterator[PcscdRunner]:
    """The machine's one pcscd, started by this test process and serialised with a lock.

    If pcscd cannot start the test FAILS (PcscdStartError), it never skips.
    """
    log = _Path(_os.environ.get("SSCARD_PCSCD_LOG", str(tmp_path_factory.mktemp("pcscd")
                                                          / "pcscd.log")))
    runner = PcscdRunner(log_path=log)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


@pytest.fixture
def vpcd_slot(pcscd: PcscdRunner) -> _Iterator[_Callable[..., VpcdLink]]:
    """``vpcd_slot(device, slot=0)`` inserts a virtual device; all are removed afterwards."""
    links: list[VpcdLink] = []

    def insert(device: VirtualDevice, slot: int = 0) -> VpcdLink:
        link = VpcdLink(device, slot=slot)
        link.insert()
        links.append(link)
        return link

    yield insert
    for link in links:
        link.close()
        # pcscd notices a removal only after ~400 ms: wait, so the next test never
        # mistakes this card for its own.
        wait_card_state(VPCD_READER_0 if link.slot == 0 else VPCD_READER_1, False)


# --- central system (task B): the simulator as a real subprocess -----------------------
from sscard_hardware_sim.central_harness import CentralSim  # noqa: E402 - per-part section

from sscard_terminal.central.client import CentralClient  # noqa: E402 - per-part section


@pytest.fixture
def central_sim(tmp_path: _Path) -> _Iterator[CentralSim]:
    """``sscard central-sim serve`` on 127.0.0.1 (a free port) with a fresh seeded database.

    Yields a :class:`CentralSim`: ``base_url``, ``db``, ``store`` (the same SQLite file,
    for admin changes), ``terminal_id``/``secret`` (bus terminal, no identity),
    ``identity_terminal_id``/``identity_secret`` (hospital terminal, sees identity),
    ``central_public_key``, ``make_client(identity=False, **kw)``, ``set_faults(**plan)``.
    """
    sim = CentralSim(tmp_path / "central.db")
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def client(central_sim: CentralSim) -> _Iterator[CentralClient]:
    """A client of ``central_sim`` as its bus terminal."""
    with central_sim.make_client() as made:
        yield made


# --- decision pipeline: a real denylist file ------------------------------------------
from sscard_terminal.decision import Denylist  # noqa: E402 - per-part section


@pytest.fixture
def denylist(tmp_path: _Path) -> _Iterator[Denylist]:
    """An empty denylist file on the system clock (tests/test_decision_offline.py
    overrides it with one on a manual clock)."""
    with Denylist.open(tmp_path / "denylist.db") as store:
        yield store
