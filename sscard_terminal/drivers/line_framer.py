"""Cutting a serial scanner's byte stream into lines, in bounded memory.

Scanners end each code with CR, LF or CRLF depending on how they were configured at the
factory (or by scanning a setup barcode). A scanner that was set to send no terminator
at all, or a line with noise on it, must not make the buffer grow without limit: once a
line exceeds the cap the framer drops what it has and skips to the next terminator,
reporting the dropped line once. A scanner that sends CRLF while the setting says CR or
LF (re-flashed, or swapped for another model) loses no code: the stray LF before a line
(CR mode) or CR at its end (LF mode) is dropped, as no code holds either. The framer
knows nothing of time: the serial driver calls :meth:`LineFramer.reset` when the line has
been silent too long.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Frame", "LineFramer", "Terminator"]


class Terminator(enum.StrEnum):
    """How the scanner ends a code. ``AUTO`` takes any of CR, LF or CRLF."""

    CR = "CR"
    LF = "LF"
    CRLF = "CRLF"
    AUTO = "auto"


@dataclass(frozen=True)
class Frame:
    """One line (without terminator), or the marker of an oversized line that was dropped."""

    data: bytes = b""
    oversized: bool = False


@dataclass
class LineFramer:
    """Feed bytes in, get complete lines out; holds at most ``max_length`` bytes."""

    terminator: Terminator
    max_length: int
    _buffer: bytearray = field(default_factory=bytearray)
    _skipping: bool = False
    # The last byte fed was a CR: in CRLF mode an LF opening the next read ends the line,
    # also while an oversized line is being skipped (its CR is not in the buffer then).
    _after_cr: bool = False

    def feed(self, data: bytes) -> list[Frame]:
        """Every line completed by ``data``; empty lines (e.g. CRLF in auto mode) are dropped."""
        frames: list[Frame] = []
        pieces = self._split(data)
        if data:
            self._after_cr = data.endswith(b"\r")
        for raw, ended in pieces:
            piece = raw
            if self._skipping:
                if ended:
                    self._skipping = False
                continue
            if self.terminator is Terminator.CR and not self._buffer:
                piece = piece.lstrip(b"\n")   # the LF of a CRLF scanner read in CR mode
            if len(self._buffer) + len(piece) > self.max_length:
                self._buffer.clear()
                frames.append(Frame(oversized=True))
                self._skipping = not ended
                continue
            self._buffer += piece
            if ended:
                if self.terminator is Terminator.LF and self._buffer.endswith(b"\r"):
                    del self._buffer[-1]   # the CR of a CRLF scanner read in LF mode
                if self._buffer:
                    frames.append(Frame(data=bytes(self._buffer)))
                self._buffer.clear()
        return frames

    def reset(self) -> bool:
        """Forget a partial line (the device went away, or fell silent, mid-line).

        True when that dropped a line not reported yet (an oversized line being skipped
        was reported when it overflowed), so the caller can count it.
        """
        dropped = bool(self._buffer) and not self._skipping
        self._buffer.clear()
        self._skipping = False
        self._after_cr = False
        return dropped

    @property
    def pending(self) -> int:
        """Bytes of an unfinished line held right now."""
        return len(self._buffer)

    @property
    def in_line(self) -> bool:
        """Inside a line that has not ended yet (held, or being skipped as oversized)."""
        return bool(self._buffer) or self._skipping

    def _split(self, data: bytes) -> list[tuple[bytes, bool]]:
        """``data`` as (piece, ended-by-terminator) pairs; the last piece may be open."""
        if self.terminator is Terminator.CRLF:
            # A CRLF split across two reads: join the CR held back from the last read
            # (or, while skipping an oversized line, merely seen in it).
            if self._after_cr and data.startswith(b"\n"):
                if self._buffer.endswith(b"\r"):
                    del self._buffer[-1]
                pieces = [(b"", True)]
                data = data[1:]
            else:
                pieces = []
            parts = data.split(b"\r\n")
            pieces += [(p, True) for p in parts[:-1]]
            pieces.append((parts[-1], False))
            return pieces
        if self.terminator is Terminator.AUTO:
            # CR, LF and CRLF all end a line; the empty line between CR and LF is dropped.
            parts = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
        else:
            sep = b"\r" if self.terminator is Terminator.CR else b"\n"
            parts = data.split(sep)
        return [(p, True) for p in parts[:-1]] + [(parts[-1], False)]
