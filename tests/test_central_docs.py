"""The protocol documents stay in step with the simulator's route table."""

from __future__ import annotations

import re
from pathlib import Path

from sscard_hardware_sim.central_server import CentralServer
from sscard_hardware_sim.central_store import CentralStore

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_route_is_in_openapi_and_the_prose(tmp_path: Path) -> None:
    server = CentralServer(CentralStore.open(tmp_path / "c.db"))
    try:
        routes = {path for _, path in server.routes}
    finally:
        server.shutdown()
    spec = (DOCS / "openapi.yaml").read_text(encoding="utf-8")
    prose = (DOCS / "central-protocol.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^  (/v1/[\w/-]+):$", spec, flags=re.MULTILINE))
    assert spec.startswith("openapi: 3.1")
    assert routes | {"/v1/health", "/v1/admin/faults"} == documented
    assert all(route in prose for route in routes)
