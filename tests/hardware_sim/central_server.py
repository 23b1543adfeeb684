"""The simulated central system: a real HTTP/1.1 server over the terminal protocol.

Why the standard library's ``ThreadingHTTPServer`` and not uvicorn: fault injection needs
the raw socket (a TCP reset, a response that trickles byte by byte, a request that is
never answered). Measured on the shared 2-core box (docs/central-protocol.md): this server
780-1120 validations/s, uvicorn with the same logic 870-1650/s; both clear the 500/s goal
(``python -m bench central`` prints the figure), so the socket access wins.

Routes live in a table (:class:`CentralServer.routes`); other modules add theirs with
:meth:`CentralServer.add_route`. Every route but ``/v1/health`` and ``/v1/admin/*`` is
authenticated with :mod:`sscard_terminal.central.auth` (the same module the client signs
with). Every response carries the server time header.
"""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import socket
import ssl
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sscard_terminal.central import auth
from sscard_terminal.central.signed import sign_document
from sscard_terminal.errors import CentralRefusedError

from . import central_denylist, central_ecodes, central_hsm
from .central_faults import FaultPlan
from .central_lifecycle import validation_document
from .central_store import CentralStore

__all__ = ["MAX_BATCH", "CentralServer", "Request", "Route", "serve", "tls_context"]

MAX_BATCH = 500
"""Most transactions one upload may carry (413 above)."""
MAX_REQUEST_BYTES = 4 * 1024 * 1024
ADMIN_TOKEN_HEADER = "X-Sscard-Admin-Token"


@dataclass(frozen=True)
class Request:
    """What a route handler gets."""

    store: CentralStore
    terminal: dict[str, Any]
    body: Any
    query: dict[str, str]
    today: dt.date


Route = Callable[[Request], tuple[int, dict[str, Any] | bytes]]
"""A handler answers JSON (a dict) or, for binary routes (denylist chunks), bytes."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in one segment, without Nagle: otherwise every answer on a
    # keep-alive connection waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024
    server: _Server

    def setup(self) -> None:
        # TLS handshakes run here, in the connection's own thread, so a slow or hostile
        # client cannot stall accept() for everybody else.
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10.0)
            try:
                self.request.do_handshake()
            except (OSError, ssl.SSLError):
                self.close_connection = True
                raise
            self.request.settimeout(None)
        # The idle timeout, set on the socket as StreamRequestHandler would from a class
        # attribute ``timeout`` (which is one per class, and this one is per server).
        self.request.settimeout(self.server.app.idle_timeout_s)
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines carry nothing useful and the tests read stderr."""

    def do_GET(self) -> None:
        self.server.app.dispatch(self, "GET")

    def do_POST(self) -> None:
        self.server.app.dispatch(self, "POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    app: CentralServer


class CentralServer:
    """The simulator: store + faults + route table + HTTP server."""

    def __init__(self, store: CentralStore, host: str = "127.0.0.1", port: int = 0,
                 faults: FaultPlan | None = None, tls: ssl.SSLContext | None = None,
                 idle_timeout_s: float = 60.0) -> None:
        self.store = store
        # A connection that sends nothing for this long is closed: each one holds a thread.
        self.idle_timeout_s = idle_timeout_s
        self.faults = faults or FaultPlan()
        self.nonces = auth.NonceCache()
        self.stopping = threading.Event()
        self._serving = threading.Event()
        self.routes: dict[tuple[str, str], tuple[Route, bool]] = {}
        for method, path, route in (
            ("GET", "/v1/ping", _ping),
            ("GET", "/v1/time", _time),
            ("POST", "/v1/cards/validate", _validate),
            ("POST", "/v1/transactions/batch", _upload),
            ("GET", "/v1/denylist", _denylist),
            ("GET", "/v1/denylist/chunk", _denylist_chunk),
            ("GET", "/v1/trust-list", _trust_list),
            ("POST", "/v1/ecodes/verify", _delegate(central_ecodes.handle_verify)),
            ("POST", "/v1/hsm/read-auth", _delegate(central_hsm.handle_read_auth)),
        ):
            self.add_route(method, path, route)
        self._httpd = _Server((host, port), _Handler)
        self._httpd.app = self
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True,
                                                 do_handshake_on_connect=False)

    def add_route(self, method: str, path: str, route: Route, *, authenticated: bool = True
                  ) -> None:
        self.routes[(method, path)] = (route, authenticated)

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def serve_forever(self) -> None:
        self._serving.set()
        self._httpd.serve_forever(poll_interval=0.2)

    def shutdown(self) -> None:
        """Stop serving (from another thread) and close the socket; safe if never started."""
        self.stopping.set()
        if self._serving.is_set():
            self._httpd.shutdown()
        self._httpd.server_close()

    # --- one request --------------------------------------------------------------------

    def dispatch(self, handler: _Handler, method: str) -> None:
        target = handler.path
        path, _, query_text = target.partition("?")
        declared = handler.headers.get("Content-Length") or "0"
        if not declared.isascii() or not declared.isdigit():
            # int() would take "-1" (read to EOF: a stuck thread) or raise (no answer).
            self._send(handler, 400, {"error": "bad_request", "reason": "bad Content-Length"})
            handler.close_connection = True
            return
        length = int(declared)
        if length > MAX_REQUEST_BYTES:
            self._send(handler, 413, {"error": "too_large", "reason": "request body too large"})
            handler.close_connection = True
            return
        raw = handler.rfile.read(length) if length else b""
        if path == "/v1/health":
            self._send(handler, 200, {"status": "ok"})
            return
        if path.startswith("/v1/admin/"):
            self._admin(handler, path, raw)
            return
        delay, mode = self.faults.next_request()
        if delay and self.stopping.wait(delay):
            return
        if self._fault(handler, mode):
            return
        entry = self.routes.get((method, path))
        if entry is None:
            self._send(handler, 404, {"error": "not_found", "reason": f"no route {path}"})
            return
        route, authenticated = entry
        terminal: dict[str, Any] = {}
        if authenticated:
            try:
                terminal_id = auth.verify_request(
                    method, target, handler.headers, raw,
                    secret_for=self.store.secret_for, nonces=self.nonces)
            except CentralRefusedError as exc:
                self._send(handler, 401, {"error": "auth_refused", "reason": exc.reason,
                                          "message": str(exc)})
                return
            terminal = self.store.terminal(terminal_id) or {}
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError, RecursionError):
            self._send(handler, 400, {"error": "bad_request", "reason": "body is not JSON"})
            return
        query = dict(urllib.parse.parse_qsl(query_text))
        try:
            status, answer = route(Request(self.store, terminal, body, query, dt.date.today()))
        except (ValueError, TypeError, KeyError) as exc:
            status, answer = 400, {"error": "bad_request", "reason": str(exc)}
        if isinstance(answer, bytes):
            self._send(handler, status, {}, raw=answer, content_type="application/octet-stream")
        else:
            self._send(handler, status, answer)

    @staticmethod
    def _send(handler: _Handler, status: int, answer: dict[str, Any],
              raw: bytes | None = None,
              content_type: str = "application/json; charset=utf-8") -> None:
        data = raw if raw is not None else json.dumps(answer, ensure_ascii=False).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.send_header(auth.HEADER_SERVER_TIME, f"{time.time():.3f}")
        handler.end_headers()
        handler.wfile.write(data)
        handler.wfile.flush()

    def _fault(self, handler: _Handler, mode: str) -> bool:
        """Misbehave as ``mode`` says; True when the request was consumed."""
        if mode == "none":
            return False
        if mode == "error":
            self._send(handler, 503, {"error": "unavailable", "reason": "injected 5xx"})
        elif mode == "timeout":
            self.stopping.wait(30.0)
            handler.close_connection = True
        elif mode == "reset":
            sock: socket.socket = handler.connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.close_connection = True
            sock.close()
        elif mode == "malformed":
            self._send(handler, 200, {}, raw=b'{"status": "normal", "reason": ')
        elif mode == "oversized":
            self._send(handler, 200, {}, raw=b'{"pad": "' + b"x" * (16 * 1024 * 1024) + b'"}')
        elif mode in ("trickle", "trickle_head"):
            data = json.dumps({"status": "normal", "reason": "ok"}).encode() + b" " * 200
            head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(data)}\r\n"
                    f"{auth.HEADER_SERVER_TIME}: {time.time():.3f}\r\n\r\n").encode()
            if mode == "trickle":
                handler.wfile.write(head)
                handler.wfile.flush()
            self._trickle(handler, data if mode == "trickle" else head + data)
            handler.close_connection = True
        return True

    def _trickle(self, handler: _Handler, data: bytes) -> None:
        """Send ``data`` one byte at a time, ``trickle_ms`` apart (until stopped)."""
        interval = self.faults.trickle_interval()
        for byte in data:
            if self.stopping.wait(interval):
                return
            try:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
            except OSError:
                return

    def _admin(self, handler: _Handler, path: str, raw: bytes) -> None:
        given = handler.headers.get(ADMIN_TOKEN_HEADER, "").encode("latin-1", "replace")
        expected = self.store.admin_token().encode()
        if not expected or not hmac.compare_digest(given, expected):
            self._send(handler, 401, {"error": "auth_refused", "reason": "bad_admin_token"})
            return
        if path == "/v1/admin/faults":
            try:
                plan = self.faults.update(json.loads(raw) if raw else {})
            except (ValueError, TypeError) as exc:
                self._send(handler, 400, {"error": "bad_request", "reason": str(exc)})
                return
            self._send(handler, 200, plan)
            return
        self._send(handler, 404, {"error": "not_found", "reason": f"no admin route {path}"})


# --- routes ---------------------------------------------------------------------------


def _delegate(handler: Callable[[CentralStore, Any, dict[str, Any]], tuple[int, dict[str, Any]]]
              ) -> Route:
    def route(request: Request) -> tuple[int, dict[str, Any]]:
        return handler(request.store, request.body, request.terminal)
    return route


def _ping(request: Request) -> tuple[int, dict[str, Any]]:
    return 200, {"terminal_id": request.terminal["terminal_id"], "auth": "ok",
                 "server_time": time.time()}


def _time(request: Request) -> tuple[int, dict[str, Any]]:
    return 200, {"server_time": time.time()}


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} missing or not a string")
    return value


def _validate(request: Request) -> tuple[int, dict[str, Any]]:
    body = request.body
    if not isinstance(body, dict):
        raise ValueError("body is not a JSON object")
    idcode = _text(body, "card_identification_code")
    number = _text(body, "card_number")
    _text(body, "region")
    if body.get("channel") not in ("contact", "contactless", "ecode"):
        raise ValueError("channel must be contact, contactless or ecode")
    card = request.store.card_by_identification_code(idcode)
    return 200, validation_document(
        request.store, card, card_number=number,
        identity_entitled=bool(request.terminal.get("identity_entitled")), today=request.today)


_TX_FIELDS = {"idempotency_key": str, "sequence": int, "terminal_id": str, "kind": str,
              "occurred_at": str, "payload": dict}


def _transaction_problem(item: Any, terminal_id: str) -> str | None:
    if not isinstance(item, dict):
        return "not_an_object"
    for name, kind in _TX_FIELDS.items():
        if not isinstance(item.get(name), kind) or isinstance(item.get(name), bool):
            return f"bad_field:{name}"
    if item["terminal_id"] != terminal_id:
        return "terminal_mismatch"
    if not 1 <= len(item["idempotency_key"]) <= 128:
        return "bad_field:idempotency_key"
    try:
        dt.datetime.fromisoformat(item["occurred_at"])
    except ValueError:
        return "bad_field:occurred_at"
    return None


def _upload(request: Request) -> tuple[int, dict[str, Any]]:
    body = request.body
    if not isinstance(body, dict) or not isinstance(body.get("transactions"), list):
        raise ValueError("body must be {\"transactions\": [...]}")
    items = body["transactions"]
    if len(items) > MAX_BATCH:
        return 413, {"error": "too_large", "reason": f"at most {MAX_BATCH} per batch"}
    terminal_id = request.terminal["terminal_id"]
    acks: list[dict[str, Any]] = []
    now = dt.datetime.now(dt.UTC).isoformat()
    with request.store.atomic() as conn:
        for item in items:
            key = item.get("idempotency_key") if isinstance(item, dict) else None
            problem = _transaction_problem(item, terminal_id)
            if problem is not None:
                acks.append({"idempotency_key": key if isinstance(key, str) else "",
                             "outcome": "rejected", "reason": problem})
                continue
            cur = conn.execute(
                "INSERT OR IGNORE INTO transactions VALUES (?, ?, ?, ?, ?, ?, ?)",
                (item["idempotency_key"], terminal_id, item["sequence"], item["kind"],
                 item["occurred_at"], json.dumps(item["payload"], ensure_ascii=False), now))
            outcome = "accepted" if cur.rowcount == 1 else "duplicate"
            acks.append({"idempotency_key": item["idempotency_key"], "outcome": outcome,
                         "reason": None})
    return 200, {"acks": acks}


def _denylist(request: Request) -> tuple[int, dict[str, Any]]:
    since = int(request.query.get("since", "0"))
    document = central_denylist.denylist_answer(
        request.store, since, request.today, chunked=request.query.get("chunked") == "1")
    return 200, sign_document(request.store.central_private_key(), document)


def _denylist_chunk(request: Request) -> tuple[int, dict[str, Any] | bytes]:
    data = central_denylist.chunk(request.store, int(request.query["version"]),
                                  int(request.query["index"]),
                                  int(request.query.get("since", "0")))
    if data is None:
        return 404, {"error": "not_found", "reason": "snapshot_gone"}
    return 200, data


def _trust_list(request: Request) -> tuple[int, dict[str, Any]]:
    keys = [{"kid": k["kid"], "alg": k["alg"],
             "public_key": base64.b64encode(k["public_der"]).decode("ascii"),
             "not_before": k["not_before"], "not_after": k["not_after"],
             "revoked": k["revoked"]} for k in request.store.signer_keys()]
    document = {"type": "trust_list", "version": 1 + sum(k["revoked"] for k in keys),
                "issued_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                "keys": keys}
    return 200, sign_document(request.store.central_private_key(), document)


def tls_context(cert: str, key: str, client_ca: str | None) -> ssl.SSLContext:
    """Server TLS; with ``client_ca`` every client must present a certificate it signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    if client_ca is not None:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def serve(db: str, host: str, port: int, faults: FaultPlan,
          ready: Callable[[CentralServer], None] | None = None,
          tls: ssl.SSLContext | None = None) -> None:
    """Run until interrupted (the CLI's ``central-sim serve``)."""
    store = CentralStore.open(db)
    server = CentralServer(store, host, port, faults, tls)
    if ready is not None:
        ready(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()

