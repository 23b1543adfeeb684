"""Where the daemon's log goes: journald with structured fields under systemd, stderr
otherwise; personal data never.

Under systemd (``JOURNAL_STREAM`` names the device and inode of our stderr), records go
to journald over its native protocol: one datagram per record on
``/run/systemd/journal/socket``, ``KEY=value`` lines (a value holding a newline in the
protocol's length-prefixed form). Each record carries ``MESSAGE``, ``PRIORITY``,
``SYSLOG_IDENTIFIER``, ``CODE_FILE``/``CODE_LINE``/``CODE_FUNC``, ``LOGGER`` and, when the
caller gives them with ``extra=``, ``SSCARD_LANE``, ``SSCARD_REASON``,
``SSCARD_TRANSACTION_ID``, ``SSCARD_FUNCTION``, ``SSCARD_CODE`` (so
``journalctl SSCARD_LANE=gate-1`` finds a lane's story). The protocol is a few lines and
stable since systemd 38; a library (python-systemd) would need libsystemd's headers to
build, for no more than this.

Whatever the output, every record passes :class:`PersonalDataFilter`: a string shaped
like an ID number or a card number in the message is masked (the project masks at the
source; this is the net under it), and only the fields above leave as structure.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
import traceback
from collections.abc import Mapping

from .privacy import mask_text

__all__ = [
    "JOURNAL_SOCKET",
    "JournaldHandler",
    "PersonalDataFilter",
    "configure_logging",
    "journal_field_lines",
    "under_journald",
]

JOURNAL_SOCKET = "/run/systemd/journal/socket"
STRUCTURED = ("lane", "reason", "transaction_id", "function", "code")
"""The ``extra=`` keys sent as journal fields (``SSCARD_<KEY>``); nothing else is."""

_PERSONAL = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15}|[A-Z]\d{8})(?![0-9A-Za-z])")
_FIELD_VALUE = re.compile(r"^[A-Za-z0-9_.:+/-]{1,64}$")
_MAX_MESSAGE = 48 * 1024  # well inside a datagram the journal accepts without a memfd
_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4),
               (logging.INFO, 6), (logging.DEBUG, 7))


def _mask(text: str) -> str:
    return _PERSONAL.sub(lambda match: mask_text(match.group(0)), text)


class PersonalDataFilter(logging.Filter):
    """Masks ID- and card-number-shaped strings in a record's message and arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _priority(level: int) -> int:
    for threshold, priority in _PRIORITIES:
        if level >= threshold:
            return priority
    return 7


def journal_field_lines(fields: Mapping[str, str]) -> bytes:
    """One native-protocol datagram: ``KEY=value\\n``, or for a value with a newline
    ``KEY\\n<64-bit little-endian length><value>\\n``."""
    out = bytearray()
    for key, value in fields.items():
        raw = value.encode("utf-8", "replace")
        if b"\n" in raw:
            out += key.encode() + b"\n" + struct.pack("<Q", len(raw)) + raw + b"\n"
        else:
            out += key.encode() + b"=" + raw + b"\n"
    return bytes(out)


class JournaldHandler(logging.Handler):
    """Sends each record to journald as a datagram of structured fields. If journald
    cannot take it (not running, socket full), the record goes to stderr instead, so
    nothing is lost silently."""

    def __init__(self, identifier: str = "sscard-terminald", *,
                 path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.identifier = identifier
        self.path = path
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._fallback = logging.StreamHandler(sys.stderr)
        self.addFilter(PersonalDataFilter())

    def fields(self, record: logging.LogRecord) -> dict[str, str]:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        fields = {
            "MESSAGE": _mask(message)[:_MAX_MESSAGE],
            "PRIORITY": str(_priority(record.levelno)),
            "SYSLOG_IDENTIFIER": self.identifier,
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
        }
        for key in STRUCTURED:
            value = getattr(record, key, None)
            if value is None:
                continue
            text = str(value)
            # A field is a code, a lane name or an id: anything else is not sent as one.
            if _FIELD_VALUE.match(text) and not _PERSONAL.search(text):
                fields[f"SSCARD_{key.upper()}"] = text
        return fields

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._socket.sendto(journal_field_lines(self.fields(record)), self.path)
        except OSError:
            self._fallback.handle(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._socket.close()
        super().close()


def under_journald(environ: Mapping[str, str] | None = None) -> bool:
    """Whether our stderr is journald's stream (``JOURNAL_STREAM`` is ``dev:inode`` of
    it, as systemd sets for services whose output goes to the journal)."""
    value = (environ if environ is not None else os.environ).get("JOURNAL_STREAM", "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        info = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (info.st_dev, info.st_ino) == (int(device), int(inode))


def configure_logging(level: int | str = logging.INFO, *,
                      identifier: str = "sscard-terminald",
                      journal_socket: str = JOURNAL_SOCKET) -> logging.Handler:
    """Route the root logger to journald (under systemd) or stderr; returns the handler."""
    handler: logging.Handler
    if under_journald() and os.path.exists(journal_socket):
        handler = JournaldHandler(identifier, path=journal_socket)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(PersonalDataFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
