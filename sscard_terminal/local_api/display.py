"""The passenger display: a page the bridge serves on loopback for the validator's or the
gate's own screen (a kiosk browser on ``http://127.0.0.1:<port>/display/``), updated live.

The page and its script and style ship in the package (``local_api/display_assets/``); it loads
nothing from anywhere else (a Content-Security-Policy of ``'self'`` holds it to that), so
it works with no network beyond loopback. Its WebSocket (``/display/events``) carries only
:func:`~.display_text.display_view` of each presentation (outcome, reason and notices in
Chinese and English, concession, renewal notice, at most a masked name) and the central
link's state for the offline indicator, never a full event.

No token (a kiosk has nobody to type one), but the middleware still holds the Host to
loopback and the Origin, when sent, to the bridge's own or an allowed one.
``?lane=NAME`` on the page shows that lane's presentations only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from importlib import resources
from typing import Any

from aiohttp import WSMsgType, web

from .display_text import display_view
from .events import EventHub, pump
from .http_server import track
from .protocol import encode_response
from .security import Access

__all__ = ["ASSETS", "DisplayRoutes"]

ASSETS: Mapping[str, str] = {
    "index.html": "text/html",
    "display.css": "text/css",
    "display.js": "text/javascript",
}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _asset(name: str) -> bytes:
    return resources.files(__package__).joinpath("display_assets", name).read_bytes()


class DisplayRoutes:
    """``/display/`` (the page), ``/display/{asset}``, ``/display/events`` (its feed)."""

    def __init__(self, hub: EventHub) -> None:
        self.hub = hub
        self._online: bool | None = None
        hub.add_listener(self._central)
        self._assets = {name: _asset(name) for name in ASSETS}

    def install(self, app: web.Application) -> Mapping[str, Access]:
        app.router.add_get("/display/", self._page, allow_head=False)
        app.router.add_get("/display/events", self._events, allow_head=False)
        app.router.add_get("/display/{asset}", self._static, allow_head=False)
        return {"/display/": Access.DISPLAY, "/display/events": Access.DISPLAY,
                "/display/{asset}": Access.DISPLAY}

    def _central(self, event: Mapping[str, Any]) -> None:
        if event.get("type") == "central" and event.get("link") in ("up", "down"):
            self._online = event["link"] == "up"

    def _serve(self, name: str) -> web.Response:
        return web.Response(body=self._assets[name], headers={
            "Content-Type": f"{ASSETS[name]}; charset=utf-8", "Cache-Control": "no-store",
            "Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"})

    async def _page(self, request: web.Request) -> web.StreamResponse:
        return self._serve("index.html")

    async def _static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["asset"]
        if name not in ASSETS or name == "index.html":
            raise web.HTTPNotFound()
        return self._serve(name)

    async def _events(self, request: web.Request) -> web.StreamResponse:
        lane = request.query.get("lane") or None
        connection = web.WebSocketResponse(max_msg_size=1024, autoping=True, heartbeat=20)
        if not connection.can_prepare(request):
            raise web.HTTPBadRequest(text="WebSocket only")
        await connection.prepare(request)
        track(request, connection)
        subscription = self.hub.subscribe(queue_size=16)

        async def send(event: dict[str, Any]) -> None:
            if event.get("type") == "presentation":
                if lane is not None and event.get("lane") != lane:
                    return
                view = display_view(event)
            elif event.get("type") == "central" and event.get("link") in ("up", "down"):
                view = {"type": "link", "online": event["link"] == "up"}
            else:
                return  # lane and gate events, lag markers: not the passenger's business
            await connection.send_str(encode_response(view).decode("utf-8"))

        async def until_closed() -> None:
            while (await connection.receive()).type in (WSMsgType.TEXT, WSMsgType.BINARY):
                pass  # the page sends nothing; anything it does is ignored

        if self._online is not None:
            await send({"type": "central", "link": "up" if self._online else "down"})
        hangup = asyncio.ensure_future(until_closed())
        try:
            await pump(subscription, send, hangup)
        finally:
            hangup.cancel()
            await connection.close()
        return connection
