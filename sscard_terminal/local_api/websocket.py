"""A minimal RFC 6455 server side on asyncio streams: text messages only.

Enough for HIS front-ends that talk JSON over ``ws://localhost:<port>``: the opening
handshake's accept key, masked client frames, fragmented messages, ping/pong and the
closing handshake. Binary messages, unmasked client frames, bad UTF-8 and messages
above the size cap close the connection with the RFC's codes (1003, 1002, 1007, 1009).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct

__all__ = ["WebSocket", "WebSocketClosed", "accept_key"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_DATA = 1007
CLOSE_POLICY_VIOLATION = 1008
CLOSE_TOO_BIG = 1009


def accept_key(client_key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455 4.2.2)."""
    digest = hashlib.sha1(client_key.encode("ascii") + _GUID, usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")


class WebSocketClosed(Exception):
    """The connection is closed (or must be, with ``code``); internal to the package."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(f"WebSocket closed ({code}) {reason}".rstrip())
        self.code = code
        self.reason = reason


def _frame(opcode: int, payload: bytes) -> bytes:
    """One unfragmented, unmasked server frame."""
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return header + payload


class WebSocket:
    """One server-side connection after the handshake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *,
                 max_message: int) -> None:
        self._reader = reader
        self._writer = writer
        self._max_message = max_message
        self._closing = False

    async def receive(self) -> str:
        """The next text message; raises :class:`WebSocketClosed` when the peer closed
        or broke the protocol (after answering the closing handshake)."""
        parts: list[bytes] = []
        size = 0
        while True:
            fin, opcode, payload = await self._read_frame(size)
            if opcode >= OP_CLOSE:
                await self._control(opcode, payload)
                continue
            if opcode == OP_BINARY:
                await self.close(CLOSE_UNSUPPORTED_DATA, "text messages only")
                raise WebSocketClosed(CLOSE_UNSUPPORTED_DATA, "binary message")
            if opcode not in (OP_TEXT, OP_CONTINUATION) or (opcode == OP_TEXT) == bool(parts):
                # An unknown opcode, a continuation with nothing to continue, or a new
                # message inside a fragmented one.
                await self.close(CLOSE_PROTOCOL_ERROR, "bad frame sequence")
                raise WebSocketClosed(CLOSE_PROTOCOL_ERROR, "bad frame sequence")
            parts.append(payload)
            size += len(payload)
            if fin:
                try:
                    return b"".join(parts).decode("utf-8")
                except UnicodeDecodeError:
                    await self.close(CLOSE_INVALID_DATA, "text is not UTF-8")
                    raise WebSocketClosed(CLOSE_INVALID_DATA, "bad UTF-8") from None

    async def send_text(self, text: str) -> None:
        await self._send(OP_TEXT, text.encode("utf-8"))

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send the closing frame (once) and close the TCP connection."""
        if self._closing:
            return
        self._closing = True
        try:
            await self._send(OP_CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:120])
        except (ConnectionError, OSError):
            pass
        self._writer.close()

    async def _send(self, opcode: int, payload: bytes) -> None:
        self._writer.write(_frame(opcode, payload))
        await self._writer.drain()

    async def _control(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            await self._send(OP_PONG, payload)
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else CLOSE_NORMAL
            await self.close(CLOSE_NORMAL)
            raise WebSocketClosed(code, "closed by the client")
        elif opcode != OP_PONG:
            await self.close(CLOSE_PROTOCOL_ERROR, "unknown opcode")
            raise WebSocketClosed(CLOSE_PROTOCOL_ERROR, "unknown opcode")

    async def _read_frame(self, size_so_far: int) -> tuple[bool, int, bytes]:
        try:
            first, second = await self._reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", await self._reader.readexactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", await self._reader.readexactly(8))
            fin, opcode = bool(first & 0x80), first & 0x0F
            if first & 0x70:
                await self.close(CLOSE_PROTOCOL_ERROR, "no extensions negotiated")
                raise WebSocketClosed(CLOSE_PROTOCOL_ERROR, "reserved bits set")
            if not second & 0x80:
                await self.close(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
                raise WebSocketClosed(CLOSE_PROTOCOL_ERROR, "unmasked frame")
            if opcode >= OP_CLOSE and (length > 125 or not fin):
                await self.close(CLOSE_PROTOCOL_ERROR, "bad control frame")
                raise WebSocketClosed(CLOSE_PROTOCOL_ERROR, "bad control frame")
            if size_so_far + length > self._max_message:
                await self.close(CLOSE_TOO_BIG, f"message above {self._max_message} bytes")
                raise WebSocketClosed(CLOSE_TOO_BIG, "message too big")
            mask = await self._reader.readexactly(4)
            masked = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self._closing = True
            self._writer.close()
            raise WebSocketClosed(CLOSE_GOING_AWAY, "connection lost") from exc
        # XOR with the 4-byte mask, repeated: one big-integer operation, not a byte loop.
        key = (mask * (length // 4 + 1))[:length]
        payload = (int.from_bytes(masked, "big") ^ int.from_bytes(key, "big")).to_bytes(
            length, "big")
        return fin, opcode, payload
