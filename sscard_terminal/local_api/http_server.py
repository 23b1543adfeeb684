"""The opt-in loopback bridge: HTTP and WebSocket on 127.0.0.1 only, on aiohttp.

The unified-interface functions are ``POST /`` (or ``/api``) and a WebSocket (``GET /``,
``/ws``); further route sets (the event stream, the passenger display, ``/metrics``)
plug in as :class:`RouteSet`. Every request, on every route, first passes the Host,
Origin and token middleware of :mod:`.security`.

Why aiohttp rather than the hand-written HTTP/1.1 and RFC 6455 this replaced: the
daemon needs static pages, an event stream and a metrics endpoint beside the API, and a
maintained server with a middleware chain carries all of them with the checks in one
place (docs/local-api.md, "Why aiohttp"). Its limits are set explicitly here: request
line and each header at most 16 KiB, at most 64 headers, bodies at most 64 KiB (413
before they are read), WebSocket messages at most 64 KiB (1009), a connection that
sends no complete request within 10 s is closed.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http import HttpVersion11, RawRequestMessage
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.web_protocol import ERROR as _PARSE_ERROR

from ..cards.unified import UnifiedCode
from ..errors import ConfigError
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
from .security import (
    _STATUS_CODES,
    Access,
    HttpSecurity,
    Refused,
    json_answer,
    security_middleware,
)

__all__ = ["LOOPBACK", "HttpSecurity", "LoopbackHttpServer", "RouteSet"]

_log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
"""The only address the bridge listens on; there is deliberately no option for another."""

_MAX_LINE_BYTES = 16 * 1024
_MAX_HEADERS = 64
_READ_TIMEOUT_S = 10.0
"""A request head or body not complete within this is dropped; a WebSocket that has not
authenticated within this is closed (1008)."""
_SHUTDOWN_TIMEOUT_S = 2.0

_RequestFactory = Callable[..., web.BaseRequest]

SOCKETS_KEY: web.AppKey[weakref.WeakSet[Any]] = web.AppKey("sscard_websockets",
                                                          weakref.WeakSet)


class RouteSet(Protocol):
    """Routes another part mounts on the bridge (the event stream, the display, metrics):
    it adds them to ``app`` and says, by canonical path, what each needs
    (:class:`~.security.Access`). A route it adds but does not name is answered 404 by
    the middleware: an undeclared route fails closed."""

    def install(self, app: web.Application) -> Mapping[str, Access]: ...


class _ClientErrorLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's protocol logger: a client's malformed request (bad request line, bad
    header, oversized line) is the client's error, logged at INFO in one line; anything
    else stays an ERROR with its traceback."""

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        if isinstance(exc_info, HttpProcessingError):
            self.logger.info("local API bridge refused a malformed request: %s",
                             exc_info.message)
            return
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)


def track(request: web.Request, socket_: web.WebSocketResponse) -> None:
    """Register an open WebSocket so that stopping the bridge closes it (route sets with
    long-lived sockets call this after ``prepare``)."""
    request.app[SOCKETS_KEY].add(socket_)


class LoopbackHttpServer:
    """Serves :class:`LocalApi` (and any :class:`RouteSet`) on 127.0.0.1:``port``
    (0: any free port; read :attr:`port` after :meth:`start`)."""

    def __init__(self, api: LocalApi, *, port: int, security: HttpSecurity,
                 routes: Sequence[RouteSet] = ()) -> None:
        self.api = api
        self.port = port
        self.security = security
        self._ids = itertools.count(1)
        self._access: dict[str, Access] = {
            "/": Access.WEBSOCKET_TOKEN, "/api": Access.BEARER, "/ws": Access.WEBSOCKET_TOKEN}
        self.app = web.Application(
            middlewares=[security_middleware(security, lambda: self.port, self._route_access)],
            client_max_size=MAX_REQUEST_BYTES)
        self.app[SOCKETS_KEY] = weakref.WeakSet()
        self.app.router.add_post("/", self._post)
        self.app.router.add_post("/api", self._post)
        self.app.router.add_get("/", self._websocket)
        self.app.router.add_get("/ws", self._websocket)
        for route_set in routes:
            self._access.update(route_set.install(self.app))
        self.app.on_shutdown.append(self._close_websockets)
        self._runner: web.AppRunner | None = None
        self._handler_args: dict[str, Any] = {}

    @property
    def access(self) -> Mapping[str, Access]:
        """What each canonical path needs (the description test reads it)."""
        return dict(self._access)

    def _route_access(self, request: web.Request) -> Access | None:
        resource = request.match_info.route.resource
        # No resource: no such path, or no such method on a path (405, OPTIONS).
        access = self._access.get(request.path if resource is None else resource.canonical)
        if access is Access.WEBSOCKET_TOKEN and request.method == "POST":
            return Access.BEARER  # "/" is both the POST API and the WebSocket
        return access

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((LOOPBACK, self.port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on {LOOPBACK}:{self.port}: {exc}") from exc
        self.port = sock.getsockname()[1]
        self._handler_args = {
            "access_log": None,
            "logger": _ClientErrorLog(logging.getLogger(f"{__name__}.protocol"), {}),
            "keepalive_timeout": _READ_TIMEOUT_S, "max_line_size": _MAX_LINE_BYTES,
            "max_field_size": _MAX_LINE_BYTES, "max_headers": _MAX_HEADERS}
        runner = web.AppRunner(self.app, handle_signals=False, handler_cancellation=True,
                               shutdown_timeout=_SHUTDOWN_TIMEOUT_S, **self._handler_args)
        await runner.setup()
        if runner.server is not None:
            runner.server.request_factory = _http11_errors(runner.server.request_factory)
        await _LoopbackSite(runner, sock, self._handler_args).start()
        self._runner = runner
        _log.info("local API bridge on http://%s:%d (HTTP POST and WebSocket)",
                  LOOPBACK, self.port)

    async def stop(self) -> None:
        """Stop listening and drop every connection (their sessions are released)."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> LoopbackHttpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _close_websockets(self, app: web.Application) -> None:
        sockets = app[SOCKETS_KEY]
        await asyncio.gather(*(ws.close(code=WSCloseCode.GOING_AWAY, message=b"stopping")
                               for ws in list(sockets)), return_exceptions=True)

    # --- HTTP POST ------------------------------------------------------------------------

    async def _post(self, request: web.Request) -> web.StreamResponse:
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise Refused(411, "send a Content-Length, not a chunked body")
        length_text = request.headers.get("Content-Length")
        if length_text is None or not (length_text.isascii() and length_text.isdigit()):
            raise Refused(411, "Content-Length required")
        # Compared as text first: int() refuses more than 4300 digits with ValueError
        # (aiohttp's own request.content_length raises it).
        digits = length_text.lstrip("0") or "0"
        length = int(digits) if len(digits) <= len(str(MAX_REQUEST_BYTES)) else -1
        if not 0 <= length <= MAX_REQUEST_BYTES:
            raise Refused(413, f"request larger than {MAX_REQUEST_BYTES} bytes")
        try:
            body = await asyncio.wait_for(request.content.readexactly(length),
                                          _READ_TIMEOUT_S)
        except TimeoutError:
            raise Refused(408, f"body not received within {_READ_TIMEOUT_S:g} s") from None
        except asyncio.IncompleteReadError:
            raise Refused(400, "body shorter than its Content-Length") from None
        try:
            api_request = decode_request(body)
        except RequestError as exc:
            return json_answer(error_response(int(exc.code), str(exc)), 400)
        return json_answer(await self.api.handle(api_request, "http"))

    # --- the API WebSocket -----------------------------------------------------------------

    async def _events(self, connection: web.WebSocketResponse, request: ApiRequest) -> None:
        """The connection becomes the event stream: an acknowledgement, then one
        ``{"event": {...}}`` message per event until the client closes."""
        subscription = self.api.events.subscribe()
        answer: dict[str, Any] = {"code": 0, "data": "subscribed", "function": "events"}
        if request.request_id is not None:
            answer["id"] = request.request_id
        await _send(connection, answer)

        async def until_closed() -> None:
            while (await connection.receive()).type in (WSMsgType.TEXT, WSMsgType.BINARY):
                pass

        hangup = asyncio.ensure_future(until_closed())
        try:
            await pump(subscription, lambda event: _send_event(connection, event), hangup)
        finally:
            hangup.cancel()

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise Refused(405, "use POST with a JSON body, or a WebSocket upgrade",
                          {"Allow": "POST, GET, OPTIONS"})
        if request.headers.get("Sec-WebSocket-Version") != "13":
            raise Refused(426, "WebSocket version 13 only", {"Sec-WebSocket-Version": "13"})
        connection = web.WebSocketResponse(max_msg_size=MAX_REQUEST_BYTES + 1, autoping=True)
        if not connection.can_prepare(request):
            raise Refused(400, "bad WebSocket handshake (Sec-WebSocket-Key)")
        await connection.prepare(request)
        track(request, connection)
        owner = f"ws:{next(self._ids)}"
        authenticated = bool(request.query.getall("token", []))  # checked by the middleware
        try:
            await self._messages(connection, owner, authenticated=authenticated)
        finally:
            # Shielded: a client that vanishes cancels this handler, and its session
            # (a card held between Step1 and Step2) must still be released.
            await asyncio.shield(self.api.release(owner))
            await connection.close()
        return connection

    async def _messages(self, connection: web.WebSocketResponse, owner: str, *,
                        authenticated: bool) -> None:
        # A connection without a token gets as long as an HTTP request to present one:
        # silent (or only pinging) it would otherwise hold its socket for ever.
        loop = asyncio.get_running_loop()
        auth_by = loop.time() + _READ_TIMEOUT_S
        while True:
            if authenticated:
                message = await connection.receive()
            else:
                try:
                    # Not receive(timeout): aiohttp restarts that timeout on every ping
                    # it answers, so a pinging client would never be asked to leave.
                    message = await asyncio.wait_for(connection.receive(),
                                                     max(0.0, auth_by - loop.time()))
                except TimeoutError:
                    await connection.close(code=WSCloseCode.POLICY_VIOLATION,
                                           message=b"not authenticated in time")
                    return
            if message.type is WSMsgType.BINARY:
                await connection.close(code=WSCloseCode.UNSUPPORTED_DATA,
                                       message=b"text messages only")
                return
            if message.type is not WSMsgType.TEXT:
                return  # closed by the peer, or by aiohttp for a protocol error (1002/1007/1009)
            try:
                api_request = decode_request(message.data)
            except RequestError as exc:
                await _send(connection, error_response(int(exc.code), str(exc)))
                continue
            if authenticated and api_request.function == "events":
                await self._events(connection, api_request)
                return
            if api_request.function == "auth" or not authenticated:
                token = api_request.params.get("token")
                if api_request.function == "auth" and self.security.token_matches(
                        token if isinstance(token, str) else None):
                    authenticated = True
                    await _send(connection, {"code": 0, "data": "", "function": "auth"})
                    continue
                await _send(connection, error_response(
                    int(UnifiedCode.NO_CONNECTION),
                    'authenticate first: {"function": "auth", "token": "..."} '
                    "(or ?token= on the URL)", api_request))
                await connection.close(code=WSCloseCode.POLICY_VIOLATION,
                                       message=b"not authenticated")
                return
            await _send(connection, await self.api.handle(api_request, owner))


class _BridgeProtocol(web.RequestHandler):
    """aiohttp's connection protocol with the bridge's answers to requests it cannot
    parse: JSON with a unified code like every other refusal (no echo of the client's
    bytes), 431 for an oversized request line or header, as the bridge answered before
    it moved onto aiohttp."""

    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if not isinstance(exc, HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        self.logger.info("local API bridge refused a malformed request: %s",
                         type(exc).__name__)
        if isinstance(exc, LineTooLong):
            status, text = 431, f"request line or header above {_MAX_LINE_BYTES} bytes"
        elif "Content-Length overflow" in exc.message:  # llhttp's reason, above 2**64
            status, text = 413, f"request larger than {MAX_REQUEST_BYTES} bytes"
        else:
            status, text = 400, "malformed HTTP request"
        response = json_answer(error_response(int(_STATUS_CODES[status]), text), status)
        response.force_close()
        return response


class _LoopbackSite(web.BaseSite):
    """A site on the bridge's own bound socket, serving with :class:`_BridgeProtocol`."""

    __slots__ = ("_handler_args", "_sock")

    def __init__(self, runner: web.AppRunner, sock: socket.socket,
                 handler_args: Mapping[str, Any]) -> None:
        super().__init__(runner)
        self._sock = sock
        self._handler_args = dict(handler_args)

    @property
    def name(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        if server is None:
            raise RuntimeError("the runner is not set up")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _BridgeProtocol(server, loop=loop, **self._handler_args), sock=self._sock)


def _http11_errors(factory: _RequestFactory) -> _RequestFactory:
    """aiohttp answers a request it cannot parse (garbage, a bad request line or header)
    as HTTP/1.0, the version of its placeholder message; an HTTP/1.1 server answers such
    a client in HTTP/1.1 (RFC 9112 2.3), as this bridge always did."""

    def make(message: RawRequestMessage, *args: Any) -> web.BaseRequest:
        if message is _PARSE_ERROR:
            message = message._replace(version=HttpVersion11)
        return factory(message, *args)

    return make


async def _send_event(connection: web.WebSocketResponse, event: dict[str, Any]) -> None:
    await _send(connection, {"event": event})


async def _send(connection: web.WebSocketResponse, answer: dict[str, Any]) -> None:
    await connection.send_str(encode_response(answer).decode("utf-8"))
