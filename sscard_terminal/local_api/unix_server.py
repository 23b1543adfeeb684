"""The primary transport: newline-delimited JSON on a Unix socket.

One request per line, one answer per line, in order, per connection; many connections
at once. ``{"function": "events"}`` turns a connection into the event stream (one
``{"event": {...}}`` per line until the client hangs up). The socket file is created
with mode 0660 (the group decides who may read cards) and appears atomically: it is
bound inside a private directory, given its mode, then renamed into place, so no other
user ever sees it with the umask's mode. A stale socket file (no server answers on it)
is replaced; a live one, or any file that is not a socket, is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any

from ..cards.unified import UnifiedCode
from ..errors import ConfigError
from .connections import StreamServer
from .events import pump
from .handler import LocalApi
from .protocol import (
    MAX_REQUEST_BYTES,
    ApiRequest,
    RequestError,
    decode_request,
    encode_response,
    error_response,
)

__all__ = ["SOCKET_MODE", "UnixSocketServer"]

_log = logging.getLogger(__name__)

SOCKET_MODE = 0o660


def _check_stale(path: Path) -> None:
    """Make room for the socket: remove a dead socket file, refuse anything else."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise ConfigError(f"{path} exists and is not a socket: not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        return  # stale: the rename in _bind replaces it atomically
    except OSError as exc:
        raise ConfigError(f"{path}: cannot tell whether a server is running: {exc}") from exc
    finally:
        probe.close()
    raise ConfigError(f"{path}: another local API server is already listening there")


def _bind(path: Path) -> tuple[socket.socket, int]:
    """A listening socket at ``path`` with mode 0660, and its inode (for removal)."""
    _check_stale(path)
    private = Path(tempfile.mkdtemp(prefix=".sscard-", dir=path.parent))
    temporary = private / "s"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(temporary))
        os.chmod(temporary, SOCKET_MODE)
        sock.listen(64)
        os.replace(temporary, path)
        inode = path.lstat().st_ino
    except OSError as exc:
        sock.close()
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise ConfigError(f"cannot create the socket {path}: {exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            private.rmdir()
    sock.setblocking(False)
    return sock, inode


class UnixSocketServer(StreamServer):
    """Serves :class:`LocalApi` on a Unix socket; ``async with`` starts and stops it."""

    def __init__(self, api: LocalApi, path: Path) -> None:
        super().__init__()
        self.api = api
        self.path = path
        self._inode: int | None = None
        self._ids = itertools.count(1)

    async def start(self) -> None:
        sock, self._inode = _bind(self.path)
        # limit: a line longer than the cap is refused rather than buffered.
        self._server = await asyncio.start_unix_server(
            self._serve, sock=sock, limit=MAX_REQUEST_BYTES + 1)
        _log.info("local API listening on %s", self.path)

    def _stopped(self) -> None:
        # Remove the socket file, but only if it is still ours.
        with contextlib.suppress(OSError):
            if self.path.lstat().st_ino == self._inode:
                self.path.unlink()

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        owner = f"unix:{next(self._ids)}"
        try:
            await self._lines(reader, writer, owner)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client vanished mid-read or mid-write
        except Exception:
            # A bug of ours costs this connection only, never the server.
            _log.exception("local API: unexpected error; connection dropped")
        finally:
            writer.close()
            await self.api.release(owner)

    async def _lines(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     owner: str) -> None:
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                # The line cannot be resynchronised cheaply: answer, then hang up.
                answer = error_response(int(UnifiedCode.WRONG_DATA_LENGTH),
                                        f"request larger than {MAX_REQUEST_BYTES} bytes")
                writer.write(encode_response(answer) + b"\n")
                await writer.drain()
                return
            except asyncio.IncompleteReadError as exc:
                if not exc.partial.strip():
                    return  # clean end of the connection
                line = exc.partial  # a last request without its newline (half-close)
            if not line.strip():
                continue
            try:
                request = decode_request(line)
            except RequestError as exc:
                response = error_response(int(exc.code), str(exc))
            else:
                if request.function == "events":
                    await self._events(request, reader, writer)
                    return
                response = await self.api.handle(request, owner)
            writer.write(encode_response(response) + b"\n")
            await writer.drain()

    async def _events(self, request: ApiRequest, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        """The connection becomes a stream: an acknowledgement, then one event per line
        until the client hangs up (anything it sends meanwhile is ignored)."""
        subscription = self.api.events.subscribe()
        answer = {"code": 0, "data": "subscribed", "function": "events"}
        if request.request_id is not None:
            answer["id"] = request.request_id
        writer.write(encode_response(answer) + b"\n")
        await writer.drain()

        async def until_eof() -> None:
            while await reader.read(4096):
                pass

        async def send(event: dict[str, Any]) -> None:
            writer.write(encode_response({"event": event}) + b"\n")
            await writer.drain()

        hangup = asyncio.ensure_future(until_eof())
        try:
            await pump(subscription, send, hangup)
        finally:
            hangup.cancel()
