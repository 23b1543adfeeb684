"""``CentralClient``: the terminal side of the central protocol (docs/central-protocol.md).

Design rules, each for a reason:

- **The caller's deadline is the only timeout.** Every method takes a
  :class:`~sscard_terminal.deadline.Deadline`; each attempt gets what is left of it. httpx
  timeouts bound each socket read alone, so the transport also caps every read and write
  by what is left of the deadline (:class:`~.abortable.AbortableTransport`), and the body
  is read chunk by chunk with the deadline checked between chunks: a central that
  trickles its headers or its body cannot hold a validator past its budget, and neither
  can a DNS resolver that does not answer (:mod:`.resolver`). When the
  budget runs out the answer is :class:`CentralUnreachableError` at once: the caller
  decides offline. (An injected ``transport`` keeps only the chunk check.)
- **Retries only where a repeat cannot do harm**: GETs, card validation (a query), and
  transaction upload (every transaction carries an idempotency key). Never beyond the
  deadline. ``post_json`` is not retried unless the caller says it is idempotent.
- **Bounded answers.** A body above ``max_response_bytes`` is refused as
  :class:`CentralProtocolError` without reading it all.
- **No httpx exception leaves this module**; refusals carry the central's reason.
- **The clock offset** is measured from the server-time header of every answer.
- **Personal data never reaches the logs**: card numbers are masked, identity is only
  in the returned value (whose repr masks it).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import logging
import math
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..deadline import Deadline
from ..errors import (
    CentralError,
    CentralProtocolError,
    CentralRefusedError,
    CentralUnreachableError,
    ConfigError,
)
from ..privacy import mask_card_number, mask_id_number
from . import auth
from .abortable import AbortableTransport
from .models import (
    Application,
    CardStatus,
    CardValidation,
    Channel,
    DenylistEntry,
    DenylistUpdate,
    ECodeCheck,
    Entitlement,
    HolderIdentity,
    PingResult,
    TransactionAck,
    TransactionUpload,
    TrustedKey,
    TrustList,
    parse_until,
)
from .signed import load_public_key, verify_document

__all__ = ["MAX_BATCH", "CentralClient", "TerminalConfig", "read_signed_trust_list"]

_log = logging.getLogger(__name__)

MAX_BATCH = 500
"""Transactions per upload request; larger batches are split (the central refuses > 500)."""
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_MIN_ATTEMPT_S = 0.005
"""Below this much budget an attempt cannot succeed; answer unreachable instead."""
_MAX_ATTEMPTS = 3
_MAX_SAID = 200   # characters of a reason or warning the central wrote
# Shapes of personal numbers inside a central's text: an 18-character ID number and a
# 9-character card number (a letter and 8 digits), each standing alone.
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")
_CARD_NUMBER = re.compile(r"(?<![0-9A-Za-z])[A-Z][0-9]{8}(?![0-9A-Za-z])")


@dataclass(frozen=True)
class TerminalConfig:
    """What a terminal needs to talk to its central (``central-sim terminal-config`` prints it)."""

    base_url: str
    terminal_id: str
    secret: str
    central_public_key: str | None = None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify: bool = True

    def __repr__(self) -> str:
        return (f"TerminalConfig(base_url={self.base_url!r}, terminal_id={self.terminal_id!r}, "
                "secret=<hidden>)")

    @staticmethod
    def load_json(path: Path) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read terminal config {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"terminal config {path} is not a JSON object")
        return data

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> TerminalConfig:
        """The config from parsed JSON; a missing or mistyped field is a ConfigError here,
        not a TypeError at the first request (unknown fields are ignored)."""
        missing = [k for k in ("base_url", "terminal_id", "secret") if not data.get(k)]
        if missing:
            raise ConfigError(f"terminal config lacks {', '.join(missing)}")
        known = set(cls.__dataclass_fields__)
        fields = {k: v for k, v in data.items() if k in known}
        for name, value in fields.items():
            wanted = bool if name == "verify" else str
            if not isinstance(value, wanted) and not (wanted is str and value is None):
                raise ConfigError(f"terminal config: {name} must be a JSON "
                                  f"{'true/false' if wanted is bool else 'string'}")
        return cls(**fields)


def _ssl_context(ca_file: str | None, client_cert: str | tuple[str, str] | None,
                 verify: bool) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if not verify:  # an explicit, documented opt-out (lab setups only)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if isinstance(client_cert, tuple):
            context.load_cert_chain(client_cert[0], client_cert[1])
        elif client_cert is not None:
            context.load_cert_chain(client_cert)
    except (OSError, ssl.SSLError, TypeError) as exc:
        raise ConfigError(f"TLS setup failed (CA {ca_file}, client cert): {exc}") from exc
    return context


def _checked_base_url(base_url: object) -> str:
    """The central's URL, refused now (ConfigError) if no request could ever use it."""
    if not isinstance(base_url, str):
        raise ConfigError("central URL must be a string")
    try:
        parts = urllib.parse.urlsplit(base_url)
    except ValueError as exc:
        raise ConfigError(f"central URL {base_url!r} is not usable: {exc}") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"central URL {base_url!r} is not an http(s) URL with a host")
    return base_url


def _checked_credentials(terminal_id: object, secret: object) -> tuple[str, str]:
    """The terminal id travels in a header and in the signed string (one field a line):
    printable ASCII only, so it can neither fail to encode nor run into the next field."""
    if not isinstance(terminal_id, str) or not isinstance(secret, str) or not (
            terminal_id and secret):
        raise ConfigError("central client needs a terminal id and a secret (strings)")
    if not (terminal_id.isascii() and terminal_id.isprintable()):
        raise ConfigError(f"terminal id {terminal_id!r} is not printable ASCII")
    return terminal_id, secret


class CentralClient:
    """A pooled, signed, deadline-bound client of the central system. Thread-safe.

    ``central_public_key`` (base64url raw Ed25519, or a key object) pins the key the
    denylist and the trust list must be signed with. ``transport`` replaces the network
    (tests; TLS options then belong to that transport). TLS is verified by default
    against the system store or ``ca_file``; ``client_cert`` (a PEM path holding cert and
    key, or a ``(cert, key)`` pair) enables mutual TLS.
    """

    def __init__(
        self,
        base_url: str,
        terminal_id: str,
        secret: str,
        *,
        central_public_key: str | Ed25519PublicKey | None = None,
        transport: httpx.BaseTransport | None = None,
        ca_file: str | None = None,
        client_cert: str | tuple[str, str] | None = None,
        verify: bool = True,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.time,
        max_connections: int = 8,
    ) -> None:
        self._terminal_id, self._secret = _checked_credentials(terminal_id, secret)
        base_url = _checked_base_url(base_url)
        if not isinstance(central_public_key, str | Ed25519PublicKey | None):
            raise ConfigError("central public key must be base64url text or an Ed25519 key")
        self._clock = clock
        self._max_response = max_response_bytes
        self._abortable: AbortableTransport | None = None
        self._closed = threading.Event()
        self._prefix = urllib.parse.urlsplit(base_url).path.rstrip("/")
        self._public_key = (load_public_key(central_public_key)
                            if isinstance(central_public_key, str) else central_public_key)
        if transport is None:
            tls: ssl.SSLContext | bool = (
                _ssl_context(ca_file, client_cert, verify) if verify or client_cert else False)
            limits = httpx.Limits(max_connections=max_connections,
                                  max_keepalive_connections=max_connections)
            # No Nagle: httpx writes headers and body separately, and a small body held
            # back for the server's delayed ACK costs ~40 ms per request.
            self._abortable = AbortableTransport(
                verify=tls, limits=limits,
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])
            transport = self._abortable
        self._http = httpx.Client(base_url=base_url.rstrip("/"), transport=transport,
                                  follow_redirects=False)
        self._offset = 0.0
        self._offset_known = False
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: TerminalConfig, *,
                    transport: httpx.BaseTransport | None = None) -> CentralClient:
        cert: str | tuple[str, str] | None = config.client_cert
        if config.client_cert and config.client_key:
            cert = (config.client_cert, config.client_key)
        return cls(config.base_url, config.terminal_id, config.secret,
                   central_public_key=config.central_public_key, transport=transport,
                   ca_file=config.ca_file, client_cert=cert, verify=config.verify)

    def __repr__(self) -> str:
        return f"CentralClient({str(self._http.base_url)!r}, {self._terminal_id!r})"

    # --- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Close pooled connections. A call blocked in another thread fails at once as
        unreachable (with an injected ``transport``, that transport decides)."""
        self._closed.set()
        if self._abortable is not None:
            self._abortable.abort()
        self._http.close()

    def __enter__(self) -> CentralClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @property
    def terminal_id(self) -> str:
        return self._terminal_id

    @property
    def clock_offset(self) -> float | None:
        """Seconds server time minus local time, from the last answer (None before any)."""
        with self._lock:
            return self._offset if self._offset_known else None

    # --- the protocol -----------------------------------------------------------------------

    def ping(self, deadline: Deadline) -> PingResult:
        """One signed round trip: latency, clock offset, and whether auth is accepted.

        A refusal is an answer here (``auth_ok`` False, ``refusal_reason`` set), not an error:
        it is what a technician runs ``sscard central ping`` to find out.
        """
        start = time.monotonic()
        try:
            answer = self._request("GET", "/v1/ping", None, deadline, retry=True)
            auth_ok, reason = True, None
            terminal_id = str(answer.get("terminal_id", self._terminal_id))
        except CentralRefusedError as exc:
            auth_ok, reason, terminal_id = False, exc.reason, self._terminal_id
        latency = time.monotonic() - start
        offset = self.clock_offset or 0.0
        return PingResult(latency_s=latency, clock_offset_s=offset, auth_ok=auth_ok,
                          terminal_id=terminal_id, server_time=self._clock() + offset,
                          refusal_reason=reason)

    def server_time(self, deadline: Deadline) -> float:
        """The central's Unix time (also updates :attr:`clock_offset`)."""
        answer = self._request("GET", "/v1/time", None, deadline, retry=True)
        value = answer.get("server_time")
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(
                value):  # JSON as Python reads it admits NaN and Infinity
            raise CentralProtocolError("time answer without a numeric server_time")
        return float(value)

    def validate_card(self, card_identification_code: str, card_number: str, region: str,
                      channel: Channel, deadline: Deadline) -> CardValidation:
        """The card's status, applications, entitlements (and identity if entitled).

        An unknown card is an answer (``CardStatus.UNKNOWN``), not an error.
        """
        body = {"card_identification_code": card_identification_code.upper(),
                "card_number": card_number, "region": region, "channel": channel.value}
        answer = self._request("POST", "/v1/cards/validate", body, deadline, retry=True)
        result = parse_validation(answer)
        _log.debug("validated card %s via %s: %s (%s)", mask_card_number(card_number),
                   channel.value, result.status.value, result.reason)
        return result

    def verify_ecode(self, code_text: str, deadline: Deadline) -> ECodeCheck:
        """The central's verdict on an e-code text (not retried: the central may count uses)."""
        answer = self._request("POST", "/v1/ecodes/verify", {"code": code_text}, deadline,
                               retry=False)
        accepted = answer.get("accepted")
        reason = answer.get("reason")
        if not isinstance(accepted, bool) or not isinstance(reason, str):
            raise CentralProtocolError("e-code answer lacks accepted/reason")
        kind = answer.get("kind")
        card = answer.get("card")
        return ECodeCheck(accepted=accepted, reason=_said(reason),
                          kind=kind if isinstance(kind, str) else None,
                          card=parse_validation(card) if isinstance(card, dict) else None)

    def upload_transactions(self, batch: Sequence[TransactionUpload],
                            deadline: Deadline) -> list[TransactionAck]:
        """Upload; one ack per transaction, in order. Safe to repeat (idempotency keys).

        Batches above :data:`MAX_BATCH` are sent in several requests within the deadline.
        """
        acks: list[TransactionAck] = []
        for start in range(0, len(batch), MAX_BATCH):
            part = batch[start:start + MAX_BATCH]
            answer = self._request("POST", "/v1/transactions/batch",
                                   {"transactions": [t.to_json() for t in part]}, deadline,
                                   retry=True)
            acks.extend(_parse_acks(answer, [t.idempotency_key for t in part]))
        return acks

    def denylist(self, since_version: int, deadline: Deadline) -> DenylistUpdate:
        """Changes since ``since_version`` (a snapshot when too far behind), signature checked."""
        document = self._signed(f"/v1/denylist?since={int(since_version)}", "denylist",
                                deadline)
        return _parse_denylist(document)

    def trust_list(self, deadline: Deadline) -> TrustList:
        """The e-code signer keys, signature checked against the pinned central key (the
        signed envelope stays on the result, for a cache to check again)."""
        key = self._pinned_key("trust_list")
        return read_signed_trust_list(
            self._request("GET", "/v1/trust-list", None, deadline, retry=True), key)

    def get_json(self, path: str, deadline: Deadline) -> dict[str, Any]:
        """A signed GET of an extension route; retried within the deadline."""
        return self._request("GET", path, None, deadline, retry=True)

    def post_json(self, path: str, body: Mapping[str, Any], deadline: Deadline, *,
                  idempotent: bool = False) -> dict[str, Any]:
        """A signed POST of an extension route (e.g. ``/v1/hsm/read-auth``)."""
        return self._request("POST", path, dict(body), deadline, retry=idempotent)

    # --- plumbing ---------------------------------------------------------------------------

    def _signed(self, path: str, kind: str, deadline: Deadline) -> dict[str, Any]:
        key = self._pinned_key(kind)
        return verify_document(key, self._request("GET", path, None, deadline, retry=True),
                               kind)

    def _pinned_key(self, kind: str) -> Ed25519PublicKey:
        if self._public_key is None:
            raise ConfigError(f"no central public key configured: cannot verify the {kind}")
        return self._public_key

    def _request(self, method: str, path: str, body: Mapping[str, Any] | None,
                 deadline: Deadline, *, retry: bool) -> dict[str, Any]:
        raw = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        attempts = _MAX_ATTEMPTS if retry else 1
        last: CentralError | None = None
        for attempt in range(attempts):
            if self._closed.is_set():
                raise CentralUnreachableError(f"{method} {path}: the client was closed")
            remaining = deadline.remaining()
            if remaining < _MIN_ATTEMPT_S:
                break
            try:
                return self._attempt(method, path, raw, deadline, remaining)
            except _Retryable as exc:
                last = CentralUnreachableError(str(exc))
                last.__cause__ = exc.__cause__
                _log.debug("%s %s attempt %d failed: %s", method, path, attempt + 1, exc)
        if last is not None:
            raise last
        raise CentralUnreachableError(f"{method} {path}: no time left in the caller's budget")

    def _attempt(self, method: str, path: str, raw: bytes, deadline: Deadline,
                 remaining: float) -> dict[str, Any]:
        headers = auth.sign_request(self._terminal_id, self._secret, method, self._prefix + path,
                                    body=raw, now=self._clock())
        if raw:
            headers["Content-Type"] = "application/json"
        # Uncompressed only: the byte cap must bound memory, and one 64 KiB read of gzip
        # inflates to ~64 MB before any cap could look at it.
        headers["Accept-Encoding"] = "identity"
        sent = self._clock()
        bounded = (contextlib.nullcontext() if self._abortable is None
                   else self._abortable.bounded_by(deadline))
        try:
            # An endless deadline (Deadline.never()) means no timeout: sockets take no inf.
            timeout = httpx.Timeout(None if math.isinf(remaining) else remaining)
            with bounded, self._http.stream(method, path, content=raw or None, headers=headers,
                                            timeout=timeout) as response:
                self._note_server_time(response.headers, sent)
                data = self._read_capped(response, deadline)
                status = response.status_code
        except httpx.TimeoutException as exc:
            why = f": {exc}" if str(exc) else ""   # e.g. the name did not resolve in time
            raise CentralUnreachableError(
                f"{method} {path}: no answer within the budget ({remaining * 1000:.0f} ms)"
                f"{why}") from exc
        except (httpx.TransportError, RuntimeError) as exc:
            # RuntimeError: the client was closed from another thread.
            raise _Retryable(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise CentralProtocolError(f"{method} {path}: {exc}") from exc
        except httpx.InvalidURL as exc:
            raise ConfigError(f"central URL is not usable: {exc}") from exc
        if status >= 500:
            raise _Retryable(f"{method} {path}: central answered HTTP {status}")
        answer = _decode(data, method, path)
        if status in (401, 403):
            said = answer.get("reason")
            reason = _said(said) if isinstance(said, str) else "refused"
            raise CentralRefusedError(f"central refused {method} {path}: {reason}", reason=reason)
        if status != 200:
            raise CentralProtocolError(
                f"{method} {path}: HTTP {status} {_said(str(answer.get('reason', '')))}".rstrip())
        return answer

    def _read_capped(self, response: httpx.Response, deadline: Deadline) -> bytes:
        encoding = response.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding != "identity":
            raise CentralProtocolError(
                f"answer is {encoding}-encoded though only identity was accepted")
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_response:
            raise CentralProtocolError(
                f"answer of {int(declared)} bytes exceeds the {self._max_response}-byte cap")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():  # identity only (above): nothing inflates
            size += len(chunk)
            if size > self._max_response:
                raise CentralProtocolError(f"answer exceeds the {self._max_response}-byte cap")
            chunks.append(chunk)
            if deadline.expired:
                raise httpx.ReadTimeout("deadline passed while the answer trickled in")
        return b"".join(chunks)

    def _note_server_time(self, headers: httpx.Headers, sent: float) -> None:
        value = headers.get(auth.HEADER_SERVER_TIME)
        if value is None:
            return
        try:
            server = float(value)
        except ValueError:
            return
        if not math.isfinite(server):  # "nan" and "inf" parse, but are no time
            return
        offset = server - (sent + self._clock()) / 2.0
        with self._lock:
            self._offset, self._offset_known = offset, True


class _Retryable(Exception):
    """Internal: an attempt failed in a way a repeat might fix (network, 5xx)."""


def _decode(data: bytes, method: str, path: str) -> dict[str, Any]:
    try:
        answer = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CentralProtocolError(f"{method} {path}: answer is not JSON") from exc
    except RecursionError:  # nested deeper than the interpreter's stack
        raise CentralProtocolError(f"{method} {path}: answer is nested too deeply") from None
    if not isinstance(answer, dict):
        raise CentralProtocolError(f"{method} {path}: answer is not a JSON object")
    return answer


# --- parsing (strict on what matters, lenient on unknown extras) ----------------------------


def _opt_str(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CentralProtocolError(f"field {name} is not a string")
    return value


def _until(data: Mapping[str, Any]) -> str | None:
    """``until`` checked: an instant with its zone, or a date (an end a terminal cannot
    read would keep a card refused, or let it through, at the wrong time)."""
    value = _opt_str(data, "until")
    if value is not None:
        try:
            parse_until(value)
        except ValueError:
            raise CentralProtocolError("field until is neither a date nor a time with "
                                       "its zone") from None
    return value


def _enum_set(values: Any, enum_type: type[Application] | type[Entitlement], name: str
              ) -> frozenset[Any]:
    if values is None:
        return frozenset()
    if not isinstance(values, list):
        raise CentralProtocolError(f"field {name} is not a list")
    known = {e.value: e for e in enum_type}
    # Unknown names are skipped: a newer central may know more applications than we do.
    return frozenset(known[v] for v in values if isinstance(v, str) and v in known)


def parse_validation(data: Mapping[str, Any]) -> CardValidation:
    """A :class:`CardValidation` from the central's JSON; malformed -> CentralProtocolError."""
    try:
        status = CardStatus(data.get("status"))
    except ValueError:
        raise CentralProtocolError("validation answer has no known status") from None
    reason = data.get("reason")
    if not isinstance(reason, str):
        raise CentralProtocolError("validation answer has no reason")
    holder = None
    raw_holder = data.get("holder")
    if raw_holder is not None:
        if not isinstance(raw_holder, dict):
            raise CentralProtocolError("field holder is not an object")
        name, number = raw_holder.get("name"), raw_holder.get("id_number")
        if not isinstance(name, str) or not isinstance(number, str):
            raise CentralProtocolError("holder lacks name or id_number")
        holder = HolderIdentity(name=name, id_number=number)
    return CardValidation(
        status=status, reason=_said(reason), card_ref=_opt_str(data, "card_ref"),
        since=_opt_str(data, "since"), until=_until(data),
        expires_on=_opt_str(data, "expires_on"),
        applications=_enum_set(data.get("applications"), Application, "applications"),
        entitlements=_enum_set(data.get("entitlements"), Entitlement, "entitlements"),
        holder=holder, warning=_said_or_none(_opt_str(data, "warning")))


def _parse_acks(answer: Mapping[str, Any], keys: Iterable[str]) -> list[TransactionAck]:
    raw = answer.get("acks")
    wanted = list(keys)
    if not isinstance(raw, list) or len(raw) != len(wanted):
        raise CentralProtocolError("upload answer does not acknowledge every transaction")
    acks = []
    for key, item in zip(wanted, raw, strict=True):
        if not isinstance(item, dict) or item.get("outcome") not in (
                "accepted", "duplicate", "rejected"):
            raise CentralProtocolError("upload answer has a malformed acknowledgement")
        if item["outcome"] != "rejected" and item.get("idempotency_key") != key:
            raise CentralProtocolError("upload answer acknowledges a transaction not sent")
        reason = item.get("reason")
        acks.append(TransactionAck(idempotency_key=key, outcome=item["outcome"],
                                   reason=_said_or_none(reason)))
    return acks


def _said(text: str) -> str:
    """A text the central wrote (a reason, a warning), fit for logs, errors, the journal
    and a gate's display.

    Control and format characters become ``?`` (a CR LF forges a log line, an escape
    clears a technician's terminal, a bidi override reverses what is shown) and a long
    text is cut to :data:`_MAX_SAID` characters.
    """
    # A little past the cut, so that a number straddling it is still seen whole.
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in text[:_MAX_SAID + 20])
    # Reasons are meant to be codes; numbers a central put in one anyway are masked.
    cleaned = _ID_NUMBER.sub(lambda m: mask_id_number(m.group()), cleaned)
    cleaned = _CARD_NUMBER.sub(lambda m: mask_card_number(m.group()), cleaned)
    return cleaned if len(cleaned) <= _MAX_SAID else cleaned[:_MAX_SAID - 1] + "…"


def _said_or_none(text: object) -> str | None:
    return _said(text) if isinstance(text, str) else None


def _int(document: Mapping[str, Any], name: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise CentralProtocolError(f"signed document: {name} is not an integer")
    return value


def _parse_denylist(document: Mapping[str, Any]) -> DenylistUpdate:
    added_raw, removed_raw = document.get("added"), document.get("removed")
    if not isinstance(added_raw, list) or not isinstance(removed_raw, list):
        raise CentralProtocolError("denylist: added/removed are not lists")
    added = []
    for item in added_raw:
        if not isinstance(item, dict) or not isinstance(item.get("card_ref"), str):
            raise CentralProtocolError("denylist: malformed entry")
        try:
            status = CardStatus(item.get("status"))
        except ValueError:
            raise CentralProtocolError("denylist: entry with an unknown status") from None
        added.append(DenylistEntry(card_ref=item["card_ref"], status=status,
                                   until=_until(item)))
    if not all(isinstance(r, str) for r in removed_raw):
        raise CentralProtocolError("denylist: malformed removal")
    return DenylistUpdate(version=_int(document, "version"),
                          since_version=_int(document, "since_version"),
                          full=bool(document.get("full")), added=tuple(added),
                          removed=tuple(removed_raw))


def read_signed_trust_list(envelope: object, central_key: Ed25519PublicKey) -> TrustList:
    """The trust list in a signed envelope, checked against the pinned central key.

    The envelope is kept on the result. Raises :class:`CentralProtocolError` when the
    envelope is malformed, is not a trust list or does not verify.
    """
    document = verify_document(central_key, envelope, "trust_list")
    # verify_document refused anything but a dict, so the cast only tells the type checker.
    return dataclasses.replace(_parse_trust_list(document),
                               envelope=cast("dict[str, Any]", envelope))


def _parse_trust_list(document: Mapping[str, Any]) -> TrustList:
    raw_keys = document.get("keys")
    if not isinstance(raw_keys, list):
        raise CentralProtocolError("trust list: keys is not a list")
    keys = []
    for item in raw_keys:
        if not isinstance(item, dict) or item.get("alg") not in ("ES256", "EdDSA"):
            raise CentralProtocolError("trust list: malformed key entry")
        try:
            der = base64.b64decode(str(item.get("public_key")), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CentralProtocolError("trust list: public key is not base64") from exc
        kid, nbf, naf = item.get("kid"), item.get("not_before"), item.get("not_after")
        if not (isinstance(kid, str) and isinstance(nbf, str) and isinstance(naf, str)):
            raise CentralProtocolError("trust list: key lacks kid or validity")
        keys.append(TrustedKey(kid=kid, alg=item["alg"], public_key=der, not_before=nbf,
                               not_after=naf, revoked=bool(item.get("revoked"))))
    issued = document.get("issued_at")
    return TrustList(version=_int(document, "version"),
                     issued_at=issued if isinstance(issued, str) else "", keys=tuple(keys))
