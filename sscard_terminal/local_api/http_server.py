"""The opt-in loopback bridge: HTTP ``POST`` and WebSocket on 127.0.0.1 only.

Any web page open in a browser on the terminal can reach a loopback port, so every
request passes three checks before it can touch a card:

1. **Host** must be ``127.0.0.1:<port>`` or ``localhost:<port>``: a page on an
   attacker's domain that re-resolves to 127.0.0.1 (DNS rebinding) sends its own
   domain as Host and is refused (403);
2. **Origin**, when sent (browsers always send it for cross-origin POST and for
   WebSocket), must be in the configured allowlist; there is no wildcard CORS, and a
   preflight is answered only for an allowed origin (403 otherwise);
3. **the token**: ``Authorization: Bearer <token>`` for HTTP; for WebSocket, where
   browsers cannot set headers, a ``token`` query parameter or a first message
   ``{"function": "auth", "token": "..."}`` within the read timeout (else closed,
   1008). Compared in constant time (401).

One request per HTTP connection (``Connection: close``): HIS front-ends make one call
at a time, and it keeps the parser small. Hand-written on asyncio streams rather than
uvicorn: uvicorn's WebSocket support needs a further package (``websockets`` or
``wsproto``), and owning the few hundred lines lets the checks above run before any
body is read and keeps every size limit explicit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..cards.unified import UnifiedCode
from ..errors import ConfigError
from .connections import StreamServer
from .handler import LocalApi
from .protocol import (
    MAX_REQUEST_BYTES,
    RequestError,
    decode_request,
    encode_response,
    error_response,
)
from .websocket import CLOSE_POLICY_VIOLATION, WebSocket, WebSocketClosed, accept_key

__all__ = ["LOOPBACK", "HttpSecurity", "LoopbackHttpServer"]

_log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
"""The only address the bridge listens on; there is deliberately no option for another."""

_MAX_HEAD_BYTES = 16 * 1024
_READ_TIMEOUT_S = 10.0
_PATHS = ("/", "/api", "/ws")
_REASONS = {
    101: "Switching Protocols", 200: "OK", 204: "No Content", 400: "Bad Request",
    401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    411: "Length Required", 413: "Content Too Large", 426: "Upgrade Required",
    431: "Request Header Fields Too Large",
}
_STATUS_CODES = {
    400: UnifiedCode.ILLEGAL_INPUT, 401: UnifiedCode.NO_CONNECTION,
    403: UnifiedCode.NO_CONNECTION, 404: UnifiedCode.COMMAND_NOT_SUPPORTED,
    405: UnifiedCode.COMMAND_NOT_SUPPORTED, 411: UnifiedCode.WRONG_DATA_LENGTH,
    413: UnifiedCode.WRONG_DATA_LENGTH, 426: UnifiedCode.ILLEGAL_INPUT,
    431: UnifiedCode.WRONG_DATA_LENGTH,
}


@dataclass(frozen=True)
class HttpSecurity:
    """The token every caller must present and the web origins allowed to call."""

    token: str
    allowed_origins: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if len(self.token) < 16:
            raise ConfigError("the local API token must be at least 16 characters")
        if "*" in self.allowed_origins or "null" in self.allowed_origins:
            raise ConfigError("allowed origins are exact origins (scheme://host[:port]); "
                              "'*' and 'null' are refused")

    def token_matches(self, presented: str | None) -> bool:
        if presented is None:
            return False
        return hmac.compare_digest(presented.encode("utf-8"), self.token.encode("utf-8"))


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


@dataclass
class _Head:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


def _parse_head(raw: bytes) -> _Head:
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _Refused(400, "not an HTTP/1.x request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or " " in name:
            raise _Refused(400, "malformed header line")
        if name in headers and name in ("host", "origin", "authorization", "content-length"):
            raise _Refused(400, f"duplicate {name} header")
        headers[name] = value.strip()
    try:
        target = urlsplit(parts[1])
    except ValueError as exc:  # e.g. "//[": an unclosed IPv6 literal
        raise _Refused(400, "malformed request target") from exc
    return _Head(parts[0], target.path, parse_qs(target.query), headers)


def _response(status: int, body: bytes = b"", headers: Iterable[tuple[str, str]] = (),
              *, content_type: str = "application/json; charset=utf-8") -> bytes:
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    if status != 101:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}",
                  "Connection: close", "Cache-Control: no-store"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def _send(connection: WebSocket, answer: dict[str, Any]) -> None:
    await connection.send_text(encode_response(answer).decode("utf-8"))


class LoopbackHttpServer(StreamServer):
    """Serves :class:`LocalApi` over HTTP and WebSocket on 127.0.0.1:``port`` (0: any
    free port; read :attr:`port` after :meth:`start`)."""

    def __init__(self, api: LocalApi, *, port: int, security: HttpSecurity) -> None:
        super().__init__()
        self.api = api
        self.port = port
        self.security = security
        self._ids = itertools.count(1)

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, LOOPBACK, self.port, limit=_MAX_HEAD_BYTES)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {LOOPBACK}:{self.port}: {exc}") from exc
        self.port = self._server.sockets[0].getsockname()[1]
        _log.info("local API bridge on http://%s:%d (HTTP POST and WebSocket)",
                  LOOPBACK, self.port)

    # --- one connection ------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            await self._request(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            pass  # the client vanished or stalled: nothing to answer to
        except Exception:
            # A bug of ours costs this connection only, never the server.
            _log.exception("local API bridge: unexpected error; connection dropped")
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        origin: str | None = None
        try:
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            except asyncio.LimitOverrunError as exc:
                raise _Refused(431, f"request head above {_MAX_HEAD_BYTES} bytes") from exc
            head = _parse_head(raw)
            origin = self._check_host_and_origin(head)
            if head.path not in _PATHS:
                raise _Refused(404, f"no such path; use one of {', '.join(_PATHS)}")
            if head.method == "OPTIONS":
                writer.write(self._preflight(origin))
            elif head.method == "GET" and "websocket" in (head.header("upgrade") or "").lower():
                await self._websocket(head, reader, writer)
                return
            elif head.method == "POST":
                status, answer = await self._post(head, reader)
                writer.write(_response(status, encode_response(answer), self._cors(origin)))
            else:
                raise _Refused(405, "use POST with a JSON body, or a WebSocket upgrade",
                               [("Allow", "POST, GET, OPTIONS")])
        except _Refused as refused:
            _log.info("local API bridge refused a request: %d %s", refused.status, refused)
            answer = error_response(int(_STATUS_CODES.get(refused.status, UnifiedCode.UNKNOWN)),
                                    str(refused))
            # CORS headers only for an allowed origin: others cannot even read the refusal.
            allowed = origin if origin in self.security.allowed_origins else None
            writer.write(_response(refused.status, encode_response(answer),
                                   [*refused.headers, *self._cors(allowed)]))
        await writer.drain()

    def _check_host_and_origin(self, head: _Head) -> str | None:
        host = (head.header("host") or "").lower()
        if host not in (f"127.0.0.1:{self.port}", f"localhost:{self.port}"):
            raise _Refused(403, f"Host must be 127.0.0.1:{self.port} or localhost:{self.port}")
        origin = head.header("origin")
        if origin is not None and origin not in self.security.allowed_origins:
            raise _Refused(403, "Origin not allowed")
        return origin

    def _cors(self, origin: str | None) -> list[tuple[str, str]]:
        if origin is None:
            return []
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]

    def _preflight(self, origin: str | None) -> bytes:
        if origin is None:
            raise _Refused(403, "a preflight needs an Origin")
        return _response(204, b"", [
            *self._cors(origin),
            ("Access-Control-Allow-Methods", "POST"),
            ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
            ("Access-Control-Max-Age", "600"),
        ])

    def _bearer(self, head: _Head) -> str | None:
        scheme, _, token = (head.header("authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    async def _post(self, head: _Head, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        if not self.security.token_matches(self._bearer(head)):
            raise _Refused(401, "missing or wrong token (Authorization: Bearer <token>)",
                           [("WWW-Authenticate", "Bearer")])
        if "chunked" in (head.header("transfer-encoding") or "").lower():
            raise _Refused(411, "send a Content-Length, not a chunked body")
        length_text = head.header("content-length")
        if length_text is None or not (length_text.isascii() and length_text.isdigit()):
            raise _Refused(411, "Content-Length required")
        # Compared as text first: int() refuses more than 4300 digits with ValueError.
        digits = length_text.lstrip("0") or "0"
        length = int(digits) if len(digits) <= len(str(MAX_REQUEST_BYTES)) else -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            raise _Refused(413, f"request larger than {MAX_REQUEST_BYTES} bytes")
        body = await asyncio.wait_for(reader.readexactly(length), _READ_TIMEOUT_S)
        try:
            request = decode_request(body)
        except RequestError as exc:
            return 400, error_response(int(exc.code), str(exc))
        return 200, await self.api.handle(request, "http")

    async def _websocket(self, head: _Head, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        if head.header("sec-websocket-version") != "13":
            raise _Refused(426, "WebSocket version 13 only", [("Sec-WebSocket-Version", "13")])
        key = head.header("sec-websocket-key") or ""
        try:
            valid_key = len(base64.b64decode(key, validate=True)) == 16
        except (binascii.Error, ValueError):
            valid_key = False
        if not valid_key:
            raise _Refused(400, "bad Sec-WebSocket-Key")
        token = head.query.get("token", [None])[-1]
        if token is not None and not self.security.token_matches(token):
            raise _Refused(401, "wrong token")
        writer.write(_response(101, headers=[
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Accept", accept_key(key))]))
        await writer.drain()
        owner = f"ws:{next(self._ids)}"
        connection = WebSocket(reader, writer, max_message=MAX_REQUEST_BYTES)
        try:
            await self._messages(connection, owner, authenticated=token is not None)
        except WebSocketClosed:
            pass
        finally:
            await connection.close()
            await self.api.release(owner)

    async def _messages(self, connection: WebSocket, owner: str, *, authenticated: bool) -> None:
        # A connection without a token gets as long as an HTTP request to present one:
        # silent (or only pinging) it would otherwise hold its socket for ever.
        loop = asyncio.get_running_loop()
        auth_by = loop.time() + _READ_TIMEOUT_S
        while True:
            if authenticated:
                text = await connection.receive()
            else:
                try:
                    text = await asyncio.wait_for(connection.receive(),
                                                  max(0.0, auth_by - loop.time()))
                except TimeoutError:
                    await connection.close(CLOSE_POLICY_VIOLATION, "not authenticated in time")
                    return
            try:
                request = decode_request(text)
            except RequestError as exc:
                await _send(connection, error_response(int(exc.code), str(exc)))
                continue
            if request.function == "auth" or not authenticated:
                token = request.params.get("token")
                if request.function == "auth" and self.security.token_matches(
                        token if isinstance(token, str) else None):
                    authenticated = True
                    answer: dict[str, Any] = {"code": 0, "data": "", "function": "auth"}
                    await _send(connection, answer)
                    continue
                refusal = error_response(int(UnifiedCode.NO_CONNECTION),
                                         'authenticate first: {"function": "auth", "token": '
                                         '"..."} (or ?token= on the URL)', request)
                await _send(connection, refusal)
                await connection.close(CLOSE_POLICY_VIOLATION, "not authenticated")
                return
            await _send(connection, await self.api.handle(request, owner))
