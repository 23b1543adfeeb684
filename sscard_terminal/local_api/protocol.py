"""The local API's message shapes: one JSON object in, one JSON object out.

Independent of any transport (Unix socket, HTTP, WebSocket): a transport hands the
decoded request to :class:`~sscard_terminal.local_api.handler.LocalApi` and writes the
answer back. HIS front-ends send ``{"function": "iReadCardBas", "iType": 3}``; the
answer is ``{"code": 0, "data": "<the iReadCardBas string>", "function": ...}``, with
``"error"`` added when ``code`` is negative and the request came from outside the card
(an unknown function, bad parameters, bad JSON).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..cards.unified import UnifiedCode
from ..errors import InputError

__all__ = [
    "MAX_REQUEST_BYTES",
    "ApiRequest",
    "RequestError",
    "decode_request",
    "encode_response",
    "error_response",
    "gbk_hex",
]

MAX_REQUEST_BYTES = 64 * 1024
"""The largest request accepted on any transport (a unified-interface request is a few
dozen bytes; anything near this size is a mistake or an attack)."""


class RequestError(InputError):
    """A request the API refuses before touching a card; ``code`` is the unified code.

    Internal to the package (transports turn it into an answer), never raised to callers.
    An :class:`InputError`: the request is the caller's mistake.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ApiRequest:
    """A decoded request: the DLL function name (case-sensitive) and its parameters."""

    function: str
    params: dict[str, Any]

    @property
    def request_id(self) -> Any:
        """The caller's ``id``, echoed so that a client can match answers to requests."""
        return self.params.get("id")


def decode_request(raw: bytes | str) -> ApiRequest:
    """Parse one request; raises :class:`RequestError` (-23 for input that is not a JSON
    object, -14 when ``function`` is missing or not a string)."""
    if len(raw) > MAX_REQUEST_BYTES:
        raise RequestError(UnifiedCode.WRONG_DATA_LENGTH,
                           f"request larger than {MAX_REQUEST_BYTES} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        # The position only: the text may hold a key string or other caller data.
        where = f" at position {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise RequestError(UnifiedCode.ILLEGAL_INPUT,
                           f"request is not UTF-8 JSON{where}") from exc
    except RecursionError as exc:
        # "[[[[..." within the size cap exhausts the parser's recursion limit.
        raise RequestError(UnifiedCode.ILLEGAL_INPUT, "request JSON is nested too deeply"
                           ) from exc
    if not isinstance(value, dict):
        raise RequestError(UnifiedCode.ILLEGAL_INPUT,
                           f"request must be a JSON object, not {type(value).__name__}")
    if _has_lone_surrogate(value):
        # "\\ud800" is valid JSON but not Unicode: echoed in an answer (function, id)
        # it could not be encoded as UTF-8, and the client would get no answer at all.
        raise RequestError(UnifiedCode.ILLEGAL_INPUT,
                           "request holds a lone UTF-16 surrogate escape (not Unicode)")
    function = value.get("function")
    if not isinstance(function, str) or not function:
        raise RequestError(UnifiedCode.BAD_COMMAND_PARAMETERS,
                           'request has no "function" name (e.g. "iReadCardBas")')
    return ApiRequest(function, value)


def _has_lone_surrogate(value: object) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def gbk_hex(text: str) -> str:
    """``text`` as GBK bytes in hex (GB 18030, GBK's superset, when a rare character
    is beyond GBK), for callers that hand the string on to DLL-world code."""
    try:
        raw = text.encode("gbk")
    except UnicodeEncodeError:
        raw = text.encode("gb18030")
    return raw.hex().upper()


def error_response(code: int, message: str, request: ApiRequest | None = None) -> dict[str, Any]:
    """An answer for a request refused before any card work."""
    answer: dict[str, Any] = {"code": code, "data": "", "error": message}
    if request is not None:
        answer["function"] = request.function
        if request.request_id is not None:
            answer["id"] = request.request_id
    return answer


def encode_response(answer: dict[str, Any]) -> bytes:
    """UTF-8 JSON (Chinese text as is, not ``\\u`` escapes: HIS code reads it)."""
    return json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
