"""Connect a :class:`VirtualDevice` to vpcd, so pcscd sees it as a card in a reader.

vpcd (vsmartcard) listens on localhost:35963 for "Virtual PCD 00 00" (slot 0) and
:35964 for "Virtual PCD 00 01" (slot 1). The card side connects; from then on each
message is a 2-byte big-endian length and that many bytes. A 1-byte message is a
control (0 power off, 1 power on, 2 reset, 4 get ATR, answered with the ATR); anything
longer is an APDU, answered with the response APDU.

``insert()`` connects (pcscd notices the card in about 100 ms), ``remove()`` closes
the socket (about 400 ms). TCP_NODELAY is set and TCP_QUICKACK re-armed before every
receive: without them Nagle and delayed ACKs add ~40 ms to every APDU.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from types import TracebackType

from .device import VirtualDevice
from .virtual_card import CardPulledError

__all__ = ["VPCD_HOST", "VPCD_PORT_SLOT0", "VPCD_PORT_SLOT1", "VpcdLink"]

VPCD_HOST = "127.0.0.1"
VPCD_PORT_SLOT0 = 35963
VPCD_PORT_SLOT1 = 35964

_CTRL_OFF = 0
_CTRL_ON = 1
_CTRL_RESET = 2
_CTRL_ATR = 4

_log = logging.getLogger("sscard_hardware_sim.vpcd_link")


class VpcdLink:
    """One virtual card slot. The device is served by a thread while inserted."""

    def __init__(self, device: VirtualDevice, *, slot: int = 0, host: str = VPCD_HOST) -> None:
        if slot not in (0, 1):
            raise ValueError("vpcd offers slots 0 and 1")
        self.device = device
        self.slot = slot
        self._address = (host, VPCD_PORT_SLOT0 + slot)
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self.apdu_count = 0

    @property
    def inserted(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def insert(self, timeout: float = 5.0) -> None:
        """Connect to vpcd (retrying while pcscd is still loading it) and serve."""
        if self.inserted:
            return
        self._stop.clear()
        end = time.monotonic() + timeout
        while True:
            try:
                sock = socket.create_connection(self._address, timeout=1.0)
                break
            except OSError:
                if time.monotonic() >= end:
                    raise
                time.sleep(0.05)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(None)
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,),
                                        name=f"vpcd-link-{self._address[1]}", daemon=True)
        self._thread.start()

    def remove(self, timeout: float = 3.0) -> None:
        """Pull the card: close the socket and join the serving thread."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
        with contextlib.suppress(OSError):
            while self._wake_r.recv(64, socket.MSG_DONTWAIT):
                pass

    def close(self) -> None:
        self.remove()
        self._wake_r.close()
        self._wake_w.close()

    def _recv_exact(self, sock: socket.socket, count: int) -> bytes | None:
        data = bytearray()
        while len(data) < count:
            if hasattr(socket, "TCP_QUICKACK"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            ready, _, _ = select.select([sock, self._wake_r], [], [])
            if self._wake_r in ready or self._stop.is_set():
                return None
            chunk = sock.recv(count - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def _serve(self, sock: socket.socket) -> None:
        try:
            while not self._stop.is_set():
                header = self._recv_exact(sock, 2)
                if header is None:
                    return
                message = self._recv_exact(sock, int.from_bytes(header, "big"))
                if message is None:
                    return
                answer = self._answer(message)
                if answer is not None:
                    sock.sendall(len(answer).to_bytes(2, "big") + answer)
        except CardPulledError:
            _log.debug("virtual card pulled mid-transaction")
        except OSError as exc:
            _log.debug("vpcd link closed: %s", exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            self._sock = None

    def _answer(self, message: bytes) -> bytes | None:
        if len(message) == 1:
            control = message[0]
            if control == _CTRL_OFF:
                self.device.power_off()
            elif control in (_CTRL_ON, _CTRL_RESET):
                self.device.power_on()
            elif control == _CTRL_ATR:
                return self.device.atr
            return None
        self.apdu_count += 1
        try:
            return self.device.transmit(message)
        except CardPulledError:
            raise
        except Exception:  # a broken simulator must answer, not kill the link
            _log.exception("virtual device failed on %s", message.hex())
            return b"\x6f\x00"

    def __enter__(self) -> VpcdLink:
        self.insert()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
