"""A relay board on a serial port: the gate's open and close frames, in hex, per board.

USB relay boards (CH340 "LCUS" modules and their many relatives) and RS-485 I/O modules
switch a relay when they receive a few bytes; which bytes depends on the board, so they
are configuration (``open_frame = "A0 01 01 A2"``, ``close_frame = "A0 01 00 A1"``), not
code. The port is opened on first use and kept; a write that fails closes it, the gate
turns ``fault``, and the next open tries the port again, so a relay unplugged and
plugged back heals without a restart. Writes are bounded by ``write_timeout`` and
drained (``flush``) before the gate says it is open.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .gate import GateOutputError, StateCallback, TimedGate, _only

if TYPE_CHECKING:
    import serial

__all__ = ["SerialRelayGate", "parse_frame"]

_log = logging.getLogger(__name__)

_KEYS = {"driver", "port", "open_frame", "close_frame", "baudrate", "write_timeout"}
_MAX_FRAME = 64


def parse_frame(text: object, *, where: str) -> bytes:
    """Hex bytes from config: ``"A0 01 01 A2"``, ``"a00101a2"``, ``"A0:01:01:A2"``."""
    if not isinstance(text, str):
        raise ConfigError(f"{where}: must be a hex string such as \"A0 01 01 A2\"")
    compact = "".join(text.replace(":", " ").split())
    try:
        frame = bytes.fromhex(compact)
    except ValueError:
        raise ConfigError(f"{where}: {text!r} is not hex bytes") from None
    if not 0 < len(frame) <= _MAX_FRAME:
        raise ConfigError(f"{where}: a frame is 1 to {_MAX_FRAME} bytes")
    return frame


class SerialRelayGate(TimedGate):
    """Sends ``open_frame`` to energise, ``close_frame`` to release."""

    driver = "serial"

    def __init__(self, port: str, *, open_frame: bytes, close_frame: bytes,
                 baudrate: int = 9600, write_timeout: float = 1.0,
                 on_change: StateCallback | None = None) -> None:
        super().__init__(on_change=on_change)
        self.port = port
        self.open_frame = open_frame
        self.close_frame = close_frame
        self.baudrate = baudrate
        self.write_timeout = write_timeout
        self._serial: serial.Serial | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, where: str,
                    on_change: StateCallback | None = None) -> SerialRelayGate:
        _only(config, _KEYS, where)
        port = config.get("port")
        if not isinstance(port, str) or not port.startswith("/dev/"):
            raise ConfigError(f"{where}.port: a device path such as "
                              f"/dev/serial/by-id/usb-...; got {port!r}")
        for key in ("open_frame", "close_frame"):
            if key not in config:
                raise ConfigError(f"{where}.{key}: missing (the board's frame in hex)")
        baudrate = config.get("baudrate", 9600)
        if isinstance(baudrate, bool) or not isinstance(baudrate, int) or baudrate <= 0:
            raise ConfigError(f"{where}.baudrate: a positive integer, not {baudrate!r}")
        write_timeout = config.get("write_timeout", 1.0)
        if isinstance(write_timeout, bool) or not isinstance(write_timeout, int | float) \
                or not 0 < write_timeout <= 10:
            raise ConfigError(f"{where}.write_timeout: seconds in (0, 10]")
        return cls(port, open_frame=parse_frame(config["open_frame"], where=f"{where}.open_frame"),
                   close_frame=parse_frame(config["close_frame"], where=f"{where}.close_frame"),
                   baudrate=baudrate, write_timeout=float(write_timeout), on_change=on_change)

    def _energise(self) -> None:
        self._send(self.open_frame)

    def _release(self) -> None:
        self._send(self.close_frame)

    def _free(self) -> None:
        self._drop()

    def _send(self, frame: bytes) -> None:
        import serial  # noqa: PLC0415 - pyserial only where a serial gate is configured

        try:
            if self._serial is None:
                self._serial = serial.Serial(self.port, self.baudrate, timeout=0,
                                             write_timeout=self.write_timeout)
            written = self._serial.write(frame)
            self._serial.flush()
        except (serial.SerialException, OSError, ValueError) as exc:
            self._drop()
            raise GateOutputError(f"relay on {self.port}: {exc}") from exc
        if written != len(frame):
            self._drop()
            raise GateOutputError(f"relay on {self.port}: wrote {written} of {len(frame)} bytes")

    def _drop(self) -> None:
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception as exc:  # pyserial raises several kinds on a dead port
                _log.debug("closing %s: %s", self.port, exc)
            self._serial = None
