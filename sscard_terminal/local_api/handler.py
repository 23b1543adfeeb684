"""The transport-independent request handler: a decoded JSON object in, one out.

Card work runs in a worker thread (:class:`CardReaderService` blocks) with a deadline;
the answer comes back by the deadline even when the card I/O does not (-4, card does
not answer), while the thread finishes and frees the reader on its own.

Logs name the function, the code, the duration and the kind of client, never the
returned string nor the key string (personal data, key material).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..cards.unified import UnifiedCode
from ..deadline import Deadline
from .card_service import CardReaderService, IType
from .desk import ECodeCheck, IdentityPresenter, ecode_answer, identity_answer, status_fields
from .events import EventHub
from .items import parse_items
from .protocol import ApiRequest, RequestError, error_response, gbk_hex
from .status import HealthThresholds, ProcessStatus, StatusProvider, health_of
from .status_codes import StatusCode

__all__ = ["FUNCTIONS", "STREAM_FUNCTIONS", "LocalApi"]

_log = logging.getLogger(__name__)

FUNCTIONS = (
    "iReadCard",
    "iReadCardBas",
    "iReadCardBas_HSM_Step1",
    "iReadCardBas_HSM_Step2",
    "ping",
    "readIdentity",
    "verifyECode",
    "version",
    "status",
    "health",
    "last_decision",
)
"""The functions answered, with the DLL's names (case-sensitive), and the daemon's own."""

STREAM_FUNCTIONS = ("events",)
"""Functions that turn a connection into a stream (the Unix socket, the ``/events``
WebSocket); a plain HTTP POST answers them -13."""

_SUPPORTED_ENCODINGS = ("gbk", "utf-8")


def _itype(request: ApiRequest) -> int:
    value = request.params.get("iType", IType.AUTO_CONTACT_FIRST)
    # Some front-ends send "3": digits are accepted. bool is an int in Python, but
    # true/false is not an iType.
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit() \
            and len(value.strip()) <= 2:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value not in IType.ALL:
        raise RequestError(UnifiedCode.BAD_COMMAND_PARAMETERS,
                           "iType must be 1 (contact), 2 (contactless), 3 or 4 (automatic)")
    return value


def _key(request: ApiRequest) -> str:
    value = request.params.get("key")
    if not isinstance(value, str) or not value:
        raise RequestError(UnifiedCode.ILLEGAL_INPUT,
                           'iReadCardBas_HSM_Step2 needs "key": "<32 hex>|<32 hex>|"')
    return value


def _file_address(request: ApiRequest) -> str:
    value = request.params.get("fileAddr", request.params.get("items"))
    if not isinstance(value, str):
        raise RequestError(UnifiedCode.BAD_COMMAND_PARAMETERS,
                           'iReadCard needs "fileAddr": "SSSEEF05|01|07|$SSSEEF06|08|09|$"')
    return value


def _code_text(request: ApiRequest) -> str:
    value = request.params.get("code")
    if not isinstance(value, str) or not value.strip() or len(value) > 4096:
        raise RequestError(UnifiedCode.ILLEGAL_INPUT,
                           'verifyECode needs "code": the scanned text (at most 4096 characters)')
    return value


def _encoding(request: ApiRequest) -> str:
    value = request.params.get("encoding", "utf-8")
    if not isinstance(value, str) or value.lower() not in _SUPPORTED_ENCODINGS:
        raise RequestError(UnifiedCode.BAD_COMMAND_PARAMETERS,
                           'encoding must be "gbk" or "utf-8"')
    return value.lower()


class LocalApi:
    """Answers requests for one reader; shared by every transport and connection.

    ``owner`` names the client a two-step session belongs to (one per Unix-socket or
    WebSocket connection, one per HTTP token); transports call :meth:`release` when an
    owner goes away.
    """

    def __init__(self, service: CardReaderService, *, operation_timeout_s: float = 10.0,
                 ecode_verifier: ECodeCheck | None = None,
                 identity_presenter: IdentityPresenter | None = None,
                 status: StatusProvider | None = None, events: EventHub | None = None,
                 thresholds: HealthThresholds | None = None) -> None:
        self.service = service
        self._operation_timeout_s = operation_timeout_s
        self._ecode_verifier = ecode_verifier
        self._identity_presenter = identity_presenter
        self.status_provider: StatusProvider = status if status is not None else ProcessStatus()
        self.events = events if events is not None else EventHub()
        self._thresholds = thresholds if thresholds is not None else HealthThresholds()

    async def handle(self, request: ApiRequest, owner: str) -> dict[str, Any]:
        """The answer to ``request``; never raises for bad input or a card failure."""
        started = time.monotonic()
        # The name only when it is one of ours: a caller's string is not for the log.
        shown = request.function if request.function in FUNCTIONS else "unknown function"
        try:
            encoding = _encoding(request)
            extra: dict[str, Any] = {}
            code, data = await self._dispatch(request, owner, extra)
        except RequestError as exc:
            answer = error_response(int(exc.code), str(exc), request)
            code = answer["code"]
        except Exception:
            # A bug of ours must cost this request only, never the server.
            _log.exception("internal error answering %s", shown)
            code = int(UnifiedCode.UNKNOWN)
            answer = error_response(code, "internal error (see the service log)", request)
        else:
            answer = {"code": code, "data": data, "function": request.function, **extra}
            if request.request_id is not None:
                answer["id"] = request.request_id
            if encoding == "gbk" and isinstance(data, str):
                answer["data_gbk_hex"] = gbk_hex(data)
        _log.info("%s from %s: code %d in %.1f ms", shown, owner.partition(":")[0],
                  code, (time.monotonic() - started) * 1000)
        return answer

    async def release(self, owner: str) -> None:
        """Close ``owner``'s two-step session, if any (its client went away)."""
        if self.service.has_session(owner):
            await asyncio.to_thread(self.service.release, owner)

    async def aclose(self) -> None:
        """Release the card of any open session (the server is stopping)."""
        await asyncio.to_thread(self.service.close)

    async def status(self) -> dict[str, Any]:
        """The provider's status as JSON (asked in a worker thread: it may read SQLite)."""
        status = await asyncio.wait_for(asyncio.to_thread(self.status_provider.status),
                                        self._operation_timeout_s)
        return status.to_json()

    async def health(self) -> dict[str, Any]:
        status = await asyncio.wait_for(asyncio.to_thread(self.status_provider.status),
                                        self._operation_timeout_s)
        return health_of(status, self._thresholds).to_json()

    async def _dispatch(self, request: ApiRequest, owner: str,
                        extra: dict[str, Any]) -> tuple[int, Any]:
        function = request.function
        if function == "ping":
            return 0, "pong"
        if function == "version":
            return 0, f"sscard-terminal {__version__}"
        if function == "status":
            return 0, await self.status()
        if function == "health":
            return 0, await self.health()
        if function == "last_decision":
            return 0, self.events.last_decision
        if function in STREAM_FUNCTIONS:
            raise RequestError(UnifiedCode.COMMAND_NOT_SUPPORTED,
                               f"{function} streams: use the Unix socket or the /events "
                               "WebSocket")
        deadline = Deadline.after(self._operation_timeout_s)
        service = self.service
        if function == "iReadCardBas":
            itype = _itype(request)

            def read_basic() -> tuple[int, str]:
                code, text, status = service.read_basic_checked(itype, deadline)
                if status is not None:
                    extra.update(status_fields(status))
                return code, text
            return await self._in_thread(deadline, read_basic)
        if function == "readIdentity":
            presenter = self._identity_presenter
            itype = _itype(request)
            if presenter is None:
                raise RequestError(StatusCode.IDENTITY_NOT_CONFIGURED,
                                   "identity release is not configured on this local API "
                                   "(an identity profile, a state directory and a journal key)")

            def read_identity() -> tuple[int, str]:
                result = service.run_on_card(itype, deadline,
                                             lambda transport: presenter(transport, owner))
                if isinstance(result, int):
                    return result, ""
                code, data, fields = identity_answer(result)
                extra.update(fields)
                return code, data
            return await self._in_thread(deadline, read_identity)
        if function == "verifyECode":
            verifier = self._ecode_verifier
            text = _code_text(request)
            if verifier is None:
                raise RequestError(StatusCode.ECODE_NOT_CONFIGURED,
                                   "e-code verification is not configured on this local API")

            def verify() -> tuple[int, str]:
                code, data, fields = ecode_answer(verifier(text, deadline))
                extra.update(fields)
                return code, data
            return await self._in_thread(deadline, verify)
        if function == "iReadCard":
            itype = _itype(request)
            files = parse_items(_file_address(request))

            def read_items() -> tuple[int, str]:
                code, text, status = service.read_items_checked(itype, files, deadline)
                if status is not None:
                    extra.update(status_fields(status))
                return code, text
            return await self._in_thread(deadline, read_items)
        if function == "iReadCardBas_HSM_Step1":
            itype = _itype(request)
            return await self._in_thread(
                deadline, lambda: service.hsm_step1(owner, itype, deadline))
        if function == "iReadCardBas_HSM_Step2":
            key = _key(request)
            return await self._in_thread(deadline, lambda: service.hsm_step2(owner, key, deadline))
        raise RequestError(UnifiedCode.COMMAND_NOT_SUPPORTED,
                           f"function not supported; supported: {', '.join(FUNCTIONS)}")

    async def _in_thread(self, deadline: Deadline,
                         work: Callable[[], tuple[int, str]]) -> tuple[int, str]:
        future = asyncio.get_running_loop().run_in_executor(None, work)
        try:
            # shield: when the client goes away (this task is cancelled) the worker still
            # runs to its end and frees the reader itself; only the waiting stops.
            return await asyncio.wait_for(asyncio.shield(future),
                                          timeout=deadline.remaining() + 1.0)
        except TimeoutError:
            _log.warning("card operation still running after its deadline")
            return int(UnifiedCode.CARD_DOES_NOT_ANSWER), ""
