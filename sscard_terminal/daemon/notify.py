"""The systemd notify protocol: READY, STATUS, WATCHDOG and STOPPING to the service manager.

Why the protocol's few lines and not a library: sending a notification is one datagram of
newline-separated ``KEY=VALUE`` lines to the ``AF_UNIX`` socket named by
``$NOTIFY_SOCKET`` (a path, or an abstract socket written with a leading ``@``). systemd
documents it as a stable interface meant to be spoken directly (sd_notify(3), "Notes").
The candidates were weighed: ``sdnotify`` (pure Python) has had no release since 2017 and
swallows send errors; ``systemd-python`` and ``cysystemd`` compile against libsystemd,
which adds a C build and a shared library to the daemon for one ``sendto``. Style rule 13
prefers a maintained library for protocols whose *parser* benefits from many users; here we
only send, never parse anything that comes back, so the stdlib ``socket`` module is the
smaller and safer dependency.

Outside systemd (``$NOTIFY_SOCKET`` unset) every call is a no-op, so the daemon runs the
same from a shell or a test. A send that fails is logged once per kind of failure and never
raised: the service manager being gone must not stop the terminal from deciding taps. The
socket is non-blocking: a receiver that does not read (its queue full) costs a dropped
STATUS line, never a blocked event loop.

The watchdog interval comes from ``$WATCHDOG_USEC`` (honoured only when ``$WATCHDOG_PID``
is unset or names this process, as sd_watchdog_enabled(3) says); the daemon pings at half
of it, from its event loop's own health check (see :mod:`.app`), never from a timer thread
that would keep a stuck loop alive.

Linux-only (``AF_UNIX`` datagrams); the SDK never imports this module.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

__all__ = ["Notifier", "watchdog_interval"]

log = logging.getLogger(__name__)

# A notification is at most a few hundred bytes; the kernel's datagram limit is far above.
_MAX_STATUS_CHARS = 400


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout in seconds that systemd set for this process, or None."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID", "")
    if pid and pid != str(os.getpid()):
        return None        # meant for another process (we were exec'd by a wrapper)
    try:
        value = int(usec)
    except ValueError:
        log.warning("ignoring WATCHDOG_USEC=%r: not a whole number of microseconds", usec)
        return None
    return value / 1_000_000 if value > 0 else None


def _address(raw: str) -> str | None:
    if raw.startswith("@"):
        return "\0" + raw[1:]         # abstract namespace
    if raw.startswith("/"):
        return raw
    log.warning("ignoring NOTIFY_SOCKET=%r: neither a path nor an @abstract name", raw)
    return None


class Notifier:
    """Sends notifications to ``$NOTIFY_SOCKET``; a no-op when it is unset."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        raw = env.get("NOTIFY_SOCKET", "")
        self._address = _address(raw) if raw else None
        self._socket: socket.socket | None = None
        self._failed_once: set[str] = set()
        self.watchdog_s = watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str | None = None) -> bool:
        lines = ["READY=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.send(*lines)

    def status(self, text: str) -> bool:
        return self.send(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        return self.send("RELOADING=1")

    def stopping(self, status: str | None = None) -> bool:
        lines = ["STOPPING=1"]
        if status is not None:
            lines.append(f"STATUS={_one_line(status)}")
        return self.send(*lines)

    def send(self, *lines: str) -> bool:
        """Send one datagram; True if it went out (False also when not under systemd)."""
        if self._address is None:
            return False
        payload = "\n".join(lines).encode("utf-8")
        try:
            if self._socket is None:
                # Python's sockets are close-on-exec already (PEP 446). Non-blocking: a
                # datagram to a receiver whose queue is full would otherwise block, and
                # this is called from the event loop (a stuck manager must not stop taps).
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.setblocking(False)
            self._socket.sendto(payload, self._address)
        except OSError as exc:
            kind = type(exc).__name__
            if kind not in self._failed_once:
                self._failed_once.add(kind)
                log.warning("systemd notification not delivered (%s); the daemon goes on",
                            exc.strerror or exc)
            return False
        return True

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _one_line(text: str) -> str:
    """STATUS is one line: a newline would start a new KEY=VALUE."""
    flat = " ".join(text.split())
    return flat[:_MAX_STATUS_CHARS]
