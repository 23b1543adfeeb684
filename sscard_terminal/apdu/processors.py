"""Processors that sit between the transport and every card application.

They handle, once and for all, the two conventions cards use to say "ask again":
``61 XX`` (T=0: XX more bytes wait, fetch them with GET RESPONSE) and ``6C XX`` (wrong
Le: re-send the same command with Le = XX). Card applications above never see either.
"""

from __future__ import annotations

import logging

from ..errors import MalformedResponseError
from .command import CommandApdu
from .response import ResponseApdu
from .transport import CardTransport

__all__ = ["MAX_RESPONSE_BYTES", "ApduProcessor"]

_trace = logging.getLogger("sscard_terminal.apdu.trace")

MAX_RESPONSE_BYTES = 65536 + 2
"""A response larger than an extended APDU can carry is garbage, not data."""

_MAX_GET_RESPONSE_ROUNDS = 64


class ApduProcessor:
    """Sends :class:`CommandApdu` over a transport and returns a complete response.

    ``61 XX`` answers are chained with GET RESPONSE (bounded, so a card that keeps
    answering 61 XX cannot hang the terminal); a ``6C XX`` answer is re-sent once with
    the corrected Le. Hex traffic goes to the ``sscard_terminal.apdu.trace`` logger at
    DEBUG; it may contain personal data, so that logger is off unless a technician
    turns it on.
    """

    def __init__(self, transport: CardTransport) -> None:
        self.transport = transport

    def _exchange(self, raw: bytes) -> ResponseApdu:
        tracing = _trace.isEnabledFor(logging.DEBUG)
        if tracing:
            _trace.debug("> %s", raw.hex(" ").upper())
        answer = self.transport.transmit(raw)
        if len(answer) > MAX_RESPONSE_BYTES:
            raise MalformedResponseError(f"response of {len(answer)} bytes is too long")
        response = ResponseApdu.from_bytes(answer)
        if tracing:
            _trace.debug("< %s", answer.hex(" ").upper())
        return response

    def send(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command``; return the final response with all chained data."""
        response = self._exchange(command.to_bytes())
        sw1 = response.sw >> 8
        if sw1 == 0x6C:
            response = self._exchange(command.with_le(response.sw2 or 256).to_bytes())
            sw1 = response.sw >> 8
        if sw1 != 0x61:
            return response   # the common case: the whole answer came at once
        data = bytearray(response.data)
        rounds = 0
        while response.sw1 == 0x61:
            rounds += 1
            if rounds > _MAX_GET_RESPONSE_ROUNDS or len(data) > MAX_RESPONSE_BYTES:
                raise MalformedResponseError("card keeps answering 61 XX (GET RESPONSE loop)")
            get_response = CommandApdu(command.cla & 0x03, 0xC0, 0x00, 0x00,
                                       le=response.sw2 or 256)
            response = self._exchange(get_response.to_bytes())
            data += response.data
        return ResponseApdu(bytes(data), response.sw)

    def send_raw(self, raw: bytes) -> ResponseApdu:
        """Send pre-encoded bytes (``sscard apdu``), with the same 61/6C handling."""
        return self.send(CommandApdu.from_bytes(raw))
