"""The local API for HIS front-ends: unified-interface functions as JSON.

A transport-independent handler (:class:`LocalApi`, over the blocking
:class:`CardReaderService`) served on a Unix socket (:class:`UnixSocketServer`, the
primary interface) and, opt-in, on a loopback HTTP + WebSocket bridge
(:class:`LoopbackHttpServer` on aiohttp, Host/Origin/token checked by a middleware).
The daemon mounts these; until it exists ``python -m sscard_terminal.local_api`` runs
them. Protocol and security model: docs/local-api.md.
"""

from __future__ import annotations

from .card_service import CardOpener, CardReaderService, CardSettings, IType
from .events import EventHub
from .handler import FUNCTIONS, LocalApi
from .http_server import LOOPBACK, HttpSecurity, LoopbackHttpServer, RouteSet
from .protocol import MAX_REQUEST_BYTES, ApiRequest, decode_request, encode_response
from .status import StatusProvider, TerminalStatus
from .unix_server import SOCKET_MODE, UnixSocketServer

__all__ = [
    "FUNCTIONS",
    "LOOPBACK",
    "MAX_REQUEST_BYTES",
    "SOCKET_MODE",
    "ApiRequest",
    "CardOpener",
    "CardReaderService",
    "CardSettings",
    "EventHub",
    "HttpSecurity",
    "IType",
    "LocalApi",
    "LoopbackHttpServer",
    "RouteSet",
    "StatusProvider",
    "TerminalStatus",
    "UnixSocketServer",
    "decode_request",
    "encode_response",
]
