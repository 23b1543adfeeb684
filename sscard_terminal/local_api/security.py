"""The loopback bridge's gate: Host, Origin and token, checked ahead of every handler.

Any web page open in a browser on the terminal can reach a loopback port, so every
request passes, in this order and before any handler or body read:

1. **Host** must be ``127.0.0.1:<port>`` or ``localhost:<port>``: a page on an
   attacker's domain that re-resolves to 127.0.0.1 (DNS rebinding) sends its own
   domain as Host and is refused (403);
2. **Origin**, when sent (browsers always send it for cross-origin POST and for
   WebSocket), must be in the configured allowlist, or, for the passenger display's
   own routes, the bridge's own origin; there is no wildcard CORS, and a preflight is
   answered only for an allowed origin (403 otherwise);
3. **the path and method** (404, 405), so that a probe learns nothing more;
4. **the token**, by the route's :class:`Access`: ``Authorization: Bearer <token>`` for
   HTTP; for the API WebSocket, where browsers cannot set headers, a ``token`` query
   parameter (a wrong one is 401 before the upgrade) or a first message (checked by the
   WebSocket handler). Compared in constant time (401).

Every refusal is a JSON answer with a unified return code, CORS headers only for an
allowed origin (others cannot even read the refusal).
"""

from __future__ import annotations

import enum
import hmac
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from ..cards.unified import UnifiedCode
from ..errors import ConfigError
from .protocol import encode_response, error_response

__all__ = ["Access", "HttpSecurity", "Refused", "json_answer", "security_middleware"]

_log = logging.getLogger("sscard_terminal.local_api.http_server")

_STATUS_CODES = {
    400: UnifiedCode.ILLEGAL_INPUT, 401: UnifiedCode.NO_CONNECTION,
    403: UnifiedCode.NO_CONNECTION, 404: UnifiedCode.COMMAND_NOT_SUPPORTED,
    405: UnifiedCode.COMMAND_NOT_SUPPORTED, 411: UnifiedCode.WRONG_DATA_LENGTH,
    408: UnifiedCode.CARD_DOES_NOT_ANSWER, 413: UnifiedCode.WRONG_DATA_LENGTH,
    426: UnifiedCode.ILLEGAL_INPUT, 431: UnifiedCode.WRONG_DATA_LENGTH,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Access(enum.Enum):
    """What a route needs beyond Host and Origin."""

    BEARER = "bearer"
    """``Authorization: Bearer <token>`` (HTTP requests)."""
    WEBSOCKET_TOKEN = "websocket-token"  # noqa: S105 (a name, not a secret)
    """A WebSocket: ``?token=`` checked here when given, else the first message must
    authenticate (the handler enforces it)."""
    DISPLAY = "display"
    """The passenger display (page and its masked event feed): no token, but Origin, when
    sent, must be the bridge's own or an allowed one."""


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


class Refused(Exception):
    """A request refused with an HTTP status; internal to the package."""

    def __init__(self, status: int, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


def json_answer(answer: Mapping[str, object], status: int = 200,
                headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer as HIS code expects it (UTF-8, Chinese as is, never cached)."""
    response = web.Response(body=encode_response(dict(answer)), status=status,
                            content_type="application/json", charset="utf-8")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _cors(origin: str | None) -> dict[str, str]:
    return {} if origin is None else {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def security_middleware(security: HttpSecurity, port: Callable[[], int],
                        access: Callable[[web.Request], Access | None]) -> Middleware:
    """The middleware: ``port`` is read per request (the bridge may have asked for any
    free port); ``access`` names a matched route's :class:`Access` (None: unmatched)."""

    def own_origins() -> tuple[str, str]:
        return f"http://127.0.0.1:{port()}", f"http://localhost:{port()}"

    def check(request: web.Request) -> tuple[str | None, Access]:
        try:
            urlsplit(request.raw_path)
        except ValueError as exc:  # e.g. "//[": an unclosed IPv6 literal
            raise Refused(400, "malformed request target") from exc
        hosts = request.headers.getall("Host", [])
        host = hosts[0].lower() if len(hosts) == 1 else ""
        if host not in (f"127.0.0.1:{port()}", f"localhost:{port()}"):
            raise Refused(403, f"Host must be 127.0.0.1:{port()} or localhost:{port()}")
        origins = request.headers.getall("Origin", [])
        if len(origins) > 1:
            raise Refused(400, "duplicate Origin header")
        origin = origins[0] if origins else None
        route = access(request)
        own = route is Access.DISPLAY and origin in own_origins()
        if origin is not None and origin not in security.allowed_origins and not own:
            raise Refused(403, "Origin not allowed")
        if request.method == "OPTIONS" and route is not None:
            raise _Preflight(origin)
        exception = request.match_info.http_exception
        if exception is not None or route is None:
            status = exception.status if exception is not None else 404
            allow = exception.headers.get("Allow") if exception is not None else None
            raise Refused(status, "no such path" if status == 404 else "method not allowed",
                          {"Allow": allow} if allow else None)
        if route is Access.BEARER and not security.token_matches(_bearer(request)):
            raise Refused(401, "missing or wrong token (Authorization: Bearer <token>)",
                          {"WWW-Authenticate": "Bearer"})
        if route is Access.WEBSOCKET_TOKEN:
            tokens = request.query.getall("token", [])
            if tokens and not security.token_matches(tokens[-1]):
                raise Refused(401, "wrong token")
        return origin, route

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin: str | None = None
        try:
            origin, _ = check(request)
            response = await handler(request)
        except _Preflight as preflight:
            if preflight.origin is None:
                return _refusal(Refused(403, "a preflight needs an Origin"), None, security)
            return web.Response(status=204, headers={
                **_cors(preflight.origin), "Access-Control-Allow-Methods": "POST",
                "Access-Control-Allow-Headers": "Authorization, Content-Type",
                "Access-Control-Max-Age": "600"})
        except Refused as refused:
            return _refusal(refused, origin if origin is not None else
                            request.headers.get("Origin"), security)
        if not response.prepared:
            for name, value in _cors(origin).items():
                response.headers[name] = value
        return response

    return middleware


class _Preflight(Exception):
    def __init__(self, origin: str | None) -> None:
        super().__init__("preflight")
        self.origin = origin


def _refusal(refused: Refused, origin: str | None, security: HttpSecurity) -> web.Response:
    _log.info("local API bridge refused a request: %d %s", refused.status, refused)
    answer = error_response(int(_STATUS_CODES.get(refused.status, UnifiedCode.UNKNOWN)),
                            str(refused))
    allowed = origin if origin in security.allowed_origins else None
    return json_answer(answer, refused.status, {**refused.headers, **_cors(allowed)})
