"""An httpx transport whose in-flight requests another thread can abort.

``httpx.Client.close()`` returns connections to nobody, but a thread blocked reading an
answer stays blocked until its timeout. A validator shutting down (or a caller giving up)
must not wait for that, so this transport hands httpcore a network backend that keeps a
weak set of the sockets it opened; :meth:`AbortableTransport.abort` shuts them down,
which wakes every blocked ``recv`` at once with an error the client reports as
"central unreachable".

httpx does not take a network backend, so the connection pool is rebuilt with one: this
touches ``HTTPTransport._pool`` (stable across httpx 0.2x); a test fails if that changes.
"""

from __future__ import annotations

import socket
import ssl
import threading
import weakref
from collections.abc import Iterable

import httpcore
import httpx

__all__ = ["AbortableTransport"]

_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _TrackingBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, remembering each socket so it can be shut down."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._aborted = False

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[_SocketOption] | None = None,
                    ) -> httpcore.NetworkStream:
        if self._aborted:
            raise httpcore.ConnectError("transport closed")
        stream = self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.add(sock)
        return stream

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[_SocketOption] | None = None,
                            ) -> httpcore.NetworkStream:
        return self._inner.connect_unix_socket(path, timeout, socket_options)

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


class AbortableTransport(httpx.HTTPTransport):
    """``httpx.HTTPTransport`` (HTTP/1.1, no proxy) plus :meth:`abort`."""

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits,
                 socket_options: list[_SocketOption]) -> None:
        super().__init__(verify=verify, limits=limits, retries=0, socket_options=socket_options)
        self._backend = _TrackingBackend()
        ssl_context = verify if isinstance(verify, ssl.SSLContext) else None
        if verify is False:
            ssl_context = ssl.create_default_context()
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            retries=0,
            socket_options=socket_options,
            network_backend=self._backend,
        )

    def abort(self) -> None:
        """Fail every request in flight now and refuse new connections."""
        self._backend.abort()
