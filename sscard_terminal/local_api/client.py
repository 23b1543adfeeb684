"""A blocking client of the local API's Unix socket, for technicians' commands
(``sscard status``, ``sscard events``) and scripts.

Speaks the socket's newline-delimited JSON. When nothing answers it says why in one line a
technician can act on: no socket file (the daemon is not running), a socket nobody listens
on (it stopped without cleaning up, or crashed), or no permission (join the socket's group).
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DaemonUnavailableError, SscardError

__all__ = ["DEFAULT_SOCKET", "DaemonUnavailableError", "LocalApiClient"]

DEFAULT_SOCKET = Path("/run/sscard-terminald/api.sock")
_MAX_LINE = 1024 * 1024



class LocalApiClient:
    """One connection per call (and one for a stream)."""

    def __init__(self, path: Path = DEFAULT_SOCKET, *, timeout: float = 10.0) -> None:
        self.path = path
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self.path))
        except FileNotFoundError:
            sock.close()
            raise DaemonUnavailableError(
                f"the daemon is not running: no socket at {self.path} "
                "(start it: systemctl start sscard-terminald; or give --socket)") from None
        except ConnectionRefusedError:
            sock.close()
            raise DaemonUnavailableError(
                f"the daemon is not running: {self.path} exists but nobody listens on it "
                "(it stopped or crashed; see journalctl -u sscard-terminald)") from None
        except PermissionError:
            sock.close()
            raise DaemonUnavailableError(
                f"no permission to use {self.path}: run as a member of its group "
                "(usually sscard), or as root") from None
        except OSError as exc:
            sock.close()
            if exc.errno == errno.ENOTSOCK:
                raise DaemonUnavailableError(f"{self.path} is not a socket") from None
            raise DaemonUnavailableError(f"cannot reach the daemon at {self.path}: "
                                      f"{exc.strerror or exc}") from None
        return sock

    def call(self, function: str, **params: Any) -> dict[str, Any]:
        """One request; the whole answer (``code``, ``data``, maybe ``error``)."""
        with self._connect() as sock:
            sock.sendall(json.dumps({"function": function, **params}).encode() + b"\n")
            reader = sock.makefile("rb")
            try:
                return _answer(reader.readline(_MAX_LINE), self.path)
            except TimeoutError:
                raise DaemonUnavailableError(f"the daemon at {self.path} did not answer "
                                          f"within {self.timeout:g} s") from None
            finally:
                reader.close()

    def data(self, function: str, **params: Any) -> Any:
        """``data`` of a successful answer; raises for a refusal."""
        answer = self.call(function, **params)
        if answer.get("code") != 0:
            why = answer.get("error") or f"code {answer.get('code')}"
            raise SscardError(f"{function}: {why}")
        return answer.get("data")

    def events(self) -> Iterator[dict[str, Any]]:
        """Follow the event stream until the daemon goes away (then raises
        :class:`DaemonUnavailableError`) or the caller stops iterating."""
        sock = self._connect()
        sock.settimeout(None)
        reader = sock.makefile("rb")
        try:
            sock.sendall(b'{"function": "events"}\n')
            first = _answer(reader.readline(_MAX_LINE), self.path)
            if first.get("code") != 0:
                raise SscardError(f"events: {first.get('error')}")
            while True:
                line = reader.readline(_MAX_LINE)
                if not line:
                    raise DaemonUnavailableError(f"the daemon at {self.path} closed the stream "
                                              "(stopped or restarting)")
                message = json.loads(line)
                event = message.get("event") if isinstance(message, dict) else None
                if isinstance(event, dict):
                    yield event
        finally:
            reader.close()
            sock.close()


def _answer(line: bytes, path: Path) -> dict[str, Any]:
    if not line:
        raise DaemonUnavailableError(f"the daemon at {path} closed the connection without an "
                                  "answer")
    try:
        answer = json.loads(line)
    except ValueError:
        raise SscardError(f"{path} answered something that is not JSON: is it the "
                          "sscard local API?") from None
    if not isinstance(answer, dict):
        raise SscardError(f"{path} answered a JSON {type(answer).__name__}, not an object")
    return answer
