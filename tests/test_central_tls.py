"""TLS verified by default against a configurable CA; mutual TLS with a client certificate."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.tls_certs import TlsFiles, make_tls_files

from sscard_terminal.central import CentralClient
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


class _TricklingRelay:
    """A TCP relay on 127.0.0.1 in front of the simulator: what the client sends passes at
    once, what the server sends reaches the client one byte every ``interval`` seconds."""

    def __init__(self, target_port: int, interval: float) -> None:
        self._target = target_port
        self._interval = interval
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self._target))
            for args in ((client, server, 0.0), (server, client, self._interval)):
                thread = threading.Thread(target=self._pump, args=args, daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket, interval: float) -> None:
        try:
            while not self._stop.is_set():
                data = source.recv(4096)
                if not data:
                    break
                for piece in ([bytes([b]) for b in data] if interval else [data]):
                    if interval and self._stop.wait(interval):
                        return
                    sink.sendall(piece)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for thread in self._threads:
            thread.join(5.0)


def test_a_tls_handshake_that_trickles_cannot_hold_the_caller_past_its_deadline(
        mtls_sim: CentralSim, tls: TlsFiles) -> None:
    """A central (or a path) that sends the handshake a byte at a time is cut at the
    deadline (the ssl module bounds the whole handshake by the socket timeout, which the
    transport caps by what is left of the deadline)."""
    sim_port = int(mtls_sim.base_url.rsplit(":", 1)[1])
    relay = _TricklingRelay(sim_port, interval=0.005)
    budget = 0.5
    try:
        with CentralClient(f"https://127.0.0.1:{relay.port}", mtls_sim.terminal_id,
                           mtls_sim.secret, ca_file=str(tls.ca_cert),
                           client_cert=(str(tls.client_cert), str(tls.client_key))) as client:
            start = time.monotonic()
            with pytest.raises(CentralUnreachableError):
                client.ping(Deadline.after(budget))
            took = time.monotonic() - start
    finally:
        relay.close()
    assert took < budget + 0.25, f"{took:.3f} s"
