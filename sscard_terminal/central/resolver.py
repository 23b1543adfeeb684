"""Name resolution that gives up when the caller's deadline does.

``getaddrinfo`` cannot be interrupted and obeys no timeout of ours: glibc's resolver waits
5 s per server per try when the DNS server's packets are lost (a bus in a tunnel whose
modem still holds its route). Called inline, it held a validator's tap that long, far
past the 300 ms a passenger may wait. Here the lookup runs in a helper thread and the
caller waits only as long as its deadline allows; the lookup may go on finishing
alone. Callers that ask for the same name while a lookup is under way wait for that one,
so a dead resolver costs one blocked thread per name, not one per tap.

Every connection asks the system's resolver again (it stays the authority on names), but
the last answer that came back is kept: when DNS is down while the route to the central
is fine, a common outage, a caller that has such an answer waits for the fresh lookup
only half of its time, then connects to the last known address instead of going
offline. That address cannot be abused: TLS checks the central's name on it and every
answer that matters is signed.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from typing import Any

__all__ = ["DeadlineResolver", "ResolutionFailed", "ResolutionTimedOut"]

_AddrInfo = tuple[Any, ...]
_log = logging.getLogger(__name__)


class ResolutionTimedOut(Exception):
    """The name was not resolved before the caller's deadline."""


class ResolutionFailed(Exception):
    """The resolver answered that the name does not resolve (or failed)."""


class _Lookup:
    """One ``getaddrinfo`` under way; every caller of the same name waits on it."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: list[_AddrInfo] = []
        self.error: OSError | None = None


class DeadlineResolver:
    """``host`` to socket addresses, waiting no longer than the caller can."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, int], _Lookup] = {}
        self._last_good: dict[tuple[str, int], list[_AddrInfo]] = {}
        self._closed = False

    def resolve(self, host: str, port: int, timeout: float | None) -> list[_AddrInfo]:
        """Addresses of ``host`` (``getaddrinfo`` tuples), within ``timeout`` seconds.

        An address literal is returned at once. When the name resolved before, the fresh
        lookup gets half of ``timeout``; if it fails or is late, the last answer is used.
        Otherwise raises :class:`ResolutionTimedOut` when ``timeout`` passes first (or
        :meth:`close` ran), :class:`ResolutionFailed` when the resolver says no.
        """
        if _is_address(host):
            return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                      flags=socket.AI_NUMERICHOST)
        key = (host, port)
        with self._lock:
            if self._closed:
                raise ResolutionTimedOut("the transport was closed")
            last_good = self._last_good.get(key)
            lookup = self._pending.get(key)
            if lookup is None:
                lookup = _Lookup()
                try:
                    threading.Thread(target=self._run, args=(key, lookup), daemon=True,
                                     name=f"resolve {host}").start()
                except RuntimeError as exc:   # no thread to be had: never a stuck entry
                    raise ResolutionFailed(f"cannot resolve {host!r}: {exc}") from exc
                self._pending[key] = lookup
        wait = timeout if last_good is None or timeout is None else timeout / 2
        finished = lookup.done.wait(wait)
        if self._closed:
            raise ResolutionTimedOut(f"the transport was closed while resolving {host!r}")
        if last_good is not None and (not finished or lookup.error is not None):
            _log.warning("DNS gave no answer for %s in time (%s); using its last known "
                         "address", host, lookup.error or "no answer yet")
            return last_good
        if not finished:
            raise ResolutionTimedOut(
                f"resolving {host!r} took longer than the caller's deadline; check the "
                f"terminal's DNS servers, or give the central's address by IP")
        if lookup.error is not None:
            raise ResolutionFailed(f"cannot resolve {host!r}: {lookup.error}")
        return lookup.result

    def close(self) -> None:
        """Wake every caller waiting for a lookup; later calls fail at once."""
        with self._lock:
            self._closed = True
            waiting = list(self._pending.values())
        for lookup in waiting:
            lookup.done.set()

    def _run(self, key: tuple[str, int], lookup: _Lookup) -> None:
        try:
            # Looked up at call time (not bound at import), like socket.create_connection.
            lookup.result = socket.getaddrinfo(key[0], key[1], type=socket.SOCK_STREAM)
        except OSError as exc:
            lookup.error = exc
        finally:
            with self._lock:
                del self._pending[key]
                if lookup.error is None and lookup.result:
                    self._last_good[key] = lookup.result
            lookup.done.set()


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
