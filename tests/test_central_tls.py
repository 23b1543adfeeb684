"""TLS verified by default against a configurable CA; mutual TLS with a client certificate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.tls_certs import TlsFiles, make_tls_files

from sscard_terminal.deadline import Deadline
from sscard_terminal.errors import CentralUnreachableError


@pytest.fixture
def tls(tmp_path: Path) -> TlsFiles:
    return make_tls_files(tmp_path)


@pytest.fixture
def mtls_sim(tmp_path: Path, tls: TlsFiles) -> Iterator[CentralSim]:
    sim = CentralSim(tmp_path / "c.db", "--tls-cert", str(tls.server_cert), "--tls-key",
                     str(tls.server_key), "--client-ca", str(tls.ca_cert),
                     harness_cert=(str(tls.client_cert), str(tls.client_key)))
    try:
        yield sim
    finally:
        sim.stop()


def test_mutual_tls_with_the_configured_ca_and_client_certificate(
        mtls_sim: CentralSim, tls: TlsFiles) -> None:
    assert mtls_sim.base_url.startswith("https://127.0.0.1:")
    with mtls_sim.make_client(ca_file=str(tls.ca_cert),
                              client_cert=(str(tls.client_cert), str(tls.client_key))) as client:
        assert client.ping(Deadline.after(5)).auth_ok


def test_without_client_certificate_the_central_is_unreachable(
        mtls_sim: CentralSim, tls: TlsFiles) -> None:
    with mtls_sim.make_client(ca_file=str(tls.ca_cert)) as client:
        with pytest.raises(CentralUnreachableError):
            client.ping(Deadline.after(5))


def test_server_certificate_is_verified_by_default(mtls_sim: CentralSim, tls: TlsFiles) -> None:
    # The system trust store does not know the test CA: refused, never silently accepted.
    with mtls_sim.make_client(client_cert=(str(tls.client_cert), str(tls.client_key))) as client:
        with pytest.raises(CentralUnreachableError, match="CERTIFICATE_VERIFY_FAILED"):
            client.ping(Deadline.after(5))
