"""An httpx transport whose in-flight requests another thread can abort.

``httpx.Client.close()`` returns connections to nobody, but a thread blocked reading an
answer stays blocked until its timeout. A validator shutting down (or a caller giving up)
must not wait for that, so this transport hands httpcore a network backend that keeps a
weak set of the sockets it opened; :meth:`AbortableTransport.abort` shuts them down,
which wakes every blocked ``recv`` at once with an error the client reports as
"central unreachable".

It also holds every socket operation to the caller's deadline (:meth:`AbortableTransport.
bounded_by`). httpx's timeouts apply to each ``recv`` alone, so a central that sends its
status line, headers or body a byte at a time, each byte inside the read timeout, could
otherwise keep a validator waiting for as long as it liked; here each read and write is
given at most what is left of the deadline, and none starts once it has passed. The
central's name is resolved within the deadline too (:mod:`.resolver`): httpcore would
call ``getaddrinfo`` inline, which waits seconds when DNS packets are lost.

httpx does not take a network backend, so the connection pool is rebuilt with one: this
touches ``HTTPTransport._pool`` (stable across httpx 0.2x); a test fails if that changes.
"""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

from ..deadline import Deadline
from .resolver import DeadlineResolver, ResolutionFailed, ResolutionTimedOut

__all__ = ["AbortableTransport"]

_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class _BoundedStream(httpcore.NetworkStream):
    """A network stream whose every operation ends by the deadline of the calling thread.

    A pooled connection serves one request at a time, in the thread that sent it (sync
    httpx reads the answer in that thread too), so the deadline lives per thread.
    """

    def __init__(self, inner: httpcore.NetworkStream, backend: _TrackingBackend) -> None:
        self._inner = inner
        self._backend = backend

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, self._backend.cap(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, self._backend.cap(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        timeout = self._backend.cap(timeout, httpcore.ConnectTimeout)
        return _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, timeout),
                              self._backend)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _TrackingBackend(httpcore.NetworkBackend):
    """httpcore's sync backend, remembering each socket so it can be shut down, and
    capping each socket operation by the calling thread's deadline."""

    def __init__(self) -> None:
        self._inner = httpcore.SyncBackend()
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._aborted = False
        self._local = threading.local()
        self._resolver = DeadlineResolver()

    @contextlib.contextmanager
    def bounded_by(self, deadline: Deadline) -> Iterator[None]:
        previous = getattr(self._local, "deadline", None)
        self._local.deadline = deadline
        try:
            yield
        finally:
            self._local.deadline = previous

    def cap(self, timeout: float | None, expired: type[httpcore.TimeoutException]
            ) -> float | None:
        """``timeout`` cut to what is left of this thread's deadline; ``expired`` if none."""
        deadline: Deadline | None = getattr(self._local, "deadline", None)
        if deadline is None:
            return timeout
        left = deadline.remaining()
        if left <= 0.0:
            raise expired("the caller's deadline has passed")
        if math.isinf(left):
            return timeout
        return left if timeout is None else min(timeout, left)

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[_SocketOption] | None = None,
                    ) -> httpcore.NetworkStream:
        if self._aborted:
            raise httpcore.ConnectError("transport closed")
        stream = self._connect(host, port, timeout, local_address, socket_options)
        sock = stream.get_extra_info("socket")
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.add(sock)
                aborted = self._aborted
            if aborted:  # abort() ran while this connect was under way: it missed the socket
                stream.close()
                raise httpcore.ConnectError("transport closed")
        return _BoundedStream(stream, self)

    def _connect(self, host: str, port: int, timeout: float | None,
                 local_address: str | None, socket_options: Iterable[_SocketOption] | None,
                 ) -> httpcore.NetworkStream:
        """Resolve within the deadline, then try each address as ``create_connection``
        does, each attempt given what is left of the deadline."""
        try:
            addresses = self._resolver.resolve(
                host, port, self.cap(timeout, httpcore.ConnectTimeout))
        except ResolutionTimedOut as exc:
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except ResolutionFailed as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        last: Exception = httpcore.ConnectError(f"{host!r} resolved to no address")
        for _family, _type, _proto, _name, sockaddr in addresses:
            try:
                return self._inner.connect_tcp(
                    str(sockaddr[0]), port, self.cap(timeout, httpcore.ConnectTimeout),
                    local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        raise last

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
        self._resolver.close()
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

    def bounded_by(self, deadline: Deadline) -> contextlib.AbstractContextManager[None]:
        """While in this block, no socket operation of this thread outlives ``deadline``."""
        return self._backend.bounded_by(deadline)
