"""Shared pytest fixtures. Each part appends its own section; keep sections independent."""

from __future__ import annotations


# --- card path (task A): real pcscd + vpcd ---------------------------------------------

import os as _os  # noqa: E402
from collections.abc import Callable as _Callable  # noqa: E402
from collections.abc import Iterator as _Iterator  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

import pytest  # noqa: E402

from sscard_hardware_sim.device import VirtualDevice  # noqa: E402
from sscard_hardware_sim.pcscd_runner import PcscdRunner  # noqa: E402
from sscard_hardware_sim.vpcd_link import VpcdLink  # noqa: E402


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
