"""The local API (the unified reader interface for HIS front-ends) inside the daemon.

The daemon serves the same handler as ``python -m sscard_terminal.local_api`` on the
configured Unix socket, reading the card on one card lane's reader. That reader is shared
hardware, so the lane and the local API take the same lock (:meth:`Daemon.reader_lock`):

- a read by the local API holds the reader's lock (and the runtime, so a reload waits for
  it) from connecting to the card until the connection is closed, including the HSM
  two-step's wait between Step1 and Step2; it waits for a tap in progress until its own
  deadline, then answers that the reader is busy;
- a tap on that lane while the local API holds the card does not wait behind it: the lane
  counts ``presentations.reader_busy`` and leaves that card to the HIS.

The socket also serves ``status``, ``health``, ``last_decision`` and ``events`` from the
daemon's :class:`~.status.DaemonStatus` and event hub (issue 18).

On a reload the API keeps its socket and gets a card service on the new runtime; the old
service is closed (an open two-step session ends).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from ..apdu.transport import CardInterface, CardTransport
from ..deadline import Deadline
from ..errors import ReaderUnavailableError
from ..local_api.card_service import CardReaderService, CardSettings
from ..local_api.display import DisplayRoutes
from ..local_api.events import EventHub
from ..local_api.handler import LocalApi
from ..local_api.http_server import LoopbackHttpServer, RouteSet
from ..local_api.metrics import MetricsRoutes, TerminalMetrics
from ..local_api.security import HttpSecurity
from ..local_api.status import StatusProvider
from ..local_api.unix_server import UnixSocketServer
from .config import DaemonConfig
from .presenter import Runtime

__all__ = ["LocalApiMount", "LockedTransport"]

log = logging.getLogger(__name__)


class LockedTransport(CardTransport):
    """A card connection that holds the reader's lock and the runtime until closed."""

    def __init__(self, inner: CardTransport, release: contextlib.ExitStack) -> None:
        self._inner = inner
        self._release = release
        self._closed = False

    @property
    def atr(self) -> bytes:
        return self._inner.atr

    @property
    def interface(self) -> CardInterface:
        return self._inner.interface

    @property
    def reader_name(self) -> str:
        return self._inner.reader_name

    def transmit(self, apdu: bytes) -> bytes:
        return self._inner.transmit(apdu)

    def transaction(self) -> AbstractContextManager[None]:
        return self._inner.transaction()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._inner.close()
        finally:
            self._release.close()


class LocalApiMount:
    """The local API's socket and its card service on the current runtime."""

    def __init__(self, config: DaemonConfig, *,
                 runtime: Callable[[], AbstractContextManager[Runtime]],
                 reader: Callable[[], str], reader_lock: threading.Lock,
                 status: StatusProvider | None = None, events: EventHub | None = None,
                 metrics: TerminalMetrics | None = None) -> None:
        assert config.local_api is not None
        self._path = config.local_api.socket
        self._runtime = runtime
        self._reader = reader
        self._lock = reader_lock
        self._settings = CardSettings(terminal_number=config.terminal_id)
        self._status = status
        self._events = events
        self._http = config.http
        self._metrics = metrics
        self._bridge: LoopbackHttpServer | None = None
        self._api: LocalApi | None = None
        self._server: UnixSocketServer | None = None

    def _open(self, deadline: Deadline) -> CardTransport:
        """Connect to the card on the lane's reader, holding the runtime and the lock."""
        release = contextlib.ExitStack()
        try:
            runtime = release.enter_context(self._runtime())
            if not self._lock.acquire(timeout=deadline.remaining()):
                raise ReaderUnavailableError(f"reader {self._reader()!r} is busy with a tap")
            release.callback(self._lock.release)
            inner = runtime.open_card(self._reader(), deadline)
        except BaseException:
            release.close()
            raise
        return LockedTransport(inner, release)

    def _service(self, runtime: Runtime) -> CardReaderService:
        return CardReaderService(self._open, authenticator=runtime.authenticator,
                                 settings=self._settings)

    async def start(self, runtime: Runtime) -> None:
        self._api = LocalApi(self._service(runtime), status=self._status, events=self._events)
        self._server = UnixSocketServer(self._api, self._path)
        await self._server.start()
        log.info("local API on %s, reading %s", self._path, self._reader())
        if self._http is not None:
            await self._start_bridge(self._api)

    async def _start_bridge(self, api: LocalApi) -> None:
        """The loopback bridge: the API behind its token, the passenger display and
        ``/metrics`` when configured. A port it cannot take is a ConfigError."""
        http = self._http
        assert http is not None
        routes: list[RouteSet] = []
        if http.display:
            routes.append(DisplayRoutes(api.events))
        if http.metrics and self._metrics is not None:
            routes.append(MetricsRoutes(self._metrics))
        self._bridge = LoopbackHttpServer(
            api, port=http.port, security=HttpSecurity(http.token, frozenset(http.allow_origins)),
            routes=routes)
        await self._bridge.start()
        log.info("loopback bridge on 127.0.0.1:%d%s%s", self._bridge.port,
                 ", passenger display at /display/" if http.display else "",
                 ", /metrics" if http.metrics else "")

    def swap(self, runtime: Runtime) -> None:
        """A reload: later requests use a card service on the new runtime."""
        if self._api is None:
            return
        old, self._api.service = self._api.service, self._service(runtime)
        with contextlib.suppress(Exception):
            old.close()

    async def stop(self) -> None:
        if self._bridge is not None:
            await self._bridge.stop()
            self._bridge = None
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._api is not None:
            await self._api.aclose()
            self._api = None
