"""Run the simulated central as a real subprocess (``sscard central-sim serve``).

Used by the ``central_sim`` pytest fixture and by ``python -m bench central``: the server
binds port 0, prints the port it got (no race for a "free" port), and is ready once
``/v1/health`` answers.
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from sscard_terminal.central.client import CentralClient

from .central_server import ADMIN_TOKEN_HEADER
from .central_store import CentralStore

__all__ = ["CentralSim"]


class CentralSim:
    """A running simulator: its URL, database, credentials and the central's public key."""

    terminal_id = "T-BUS-0001"
    identity_terminal_id = "T-HIS-0001"

    def __init__(self, db: Path, *extra_args: str, startup_s: float = 15.0,
                 harness_cert: tuple[str, str] | None = None) -> None:
        self.db = Path(db)
        # The harness's own health and admin calls do not check the server certificate
        # (they may present a client certificate when the server demands one).
        self._harness_tls = ssl.create_default_context()
        self._harness_tls.check_hostname = False
        self._harness_tls.verify_mode = ssl.CERT_NONE
        if harness_cert is not None:
            self._harness_tls.load_cert_chain(*harness_cert)
        cmd = [sys.executable, "-m", "sscard_terminal.cli.main", "central-sim", "serve",
               "--host", "127.0.0.1", "--port", "0", "--db", str(self.db), *extra_args]
        self.process = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            self.base_url = self._read_url(startup_s)
            self._wait_healthy(startup_s)
        except BaseException:
            self.stop()
            raise
        self.store = CentralStore.open(self.db)
        self.secret = self.store.secret_for(self.terminal_id) or ""
        self.identity_secret = self.store.secret_for(self.identity_terminal_id) or ""
        self.central_public_key = self.store.central_public_key_text()
        self.admin_token = self.store.admin_token()

    def _read_url(self, startup_s: float) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            _, err = self.process.communicate(timeout=startup_s)
            raise RuntimeError(f"central-sim did not start: {line!r} {err[-2000:]}")
        return line.rsplit(" ", 1)[1].strip()

    def _wait_healthy(self, startup_s: float) -> None:
        end = time.monotonic() + startup_s
        while True:
            try:
                if httpx.get(self.base_url + "/v1/health", timeout=1.0,
                             verify=self._harness_tls).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise RuntimeError("central-sim /v1/health never answered")
            time.sleep(0.02)

    def make_client(self, *, identity: bool = False, **kwargs: Any) -> CentralClient:
        """A client for the bus terminal (or, with ``identity``, the hospital terminal)."""
        terminal = self.identity_terminal_id if identity else self.terminal_id
        secret = self.identity_secret if identity else self.secret
        kwargs.setdefault("central_public_key", self.central_public_key)
        return CentralClient(self.base_url, terminal, secret, **kwargs)

    def set_faults(self, **plan: Any) -> dict[str, Any]:
        """``mode``, ``latency_ms``, ``fail_rate``, ``count`` through the admin call."""
        answer = httpx.post(self.base_url + "/v1/admin/faults", json=plan, verify=self._harness_tls,
                            headers={ADMIN_TOKEN_HEADER: self.admin_token}, timeout=5.0)
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5.0)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        store = getattr(self, "store", None)
        if store is not None:
            store.close()
