"""A serial QR scanner on a real pseudo-terminal pair, with a by-id style symlink.

The scanner side holds the pty master; the code under test opens the slave through a
symlink that stands in for ``/dev/serial/by-id/usb-...-if00``. ``unplug()`` closes the
master and removes the symlink, which is what the kernel does to a USB CDC device
(reads fail, the path vanishes); ``replug()`` makes a new pty and re-points the link,
as a re-enumerated device gets a new ``ttyACM`` node behind the same by-id name.

Writes go through a writer thread: a pty holds only a few kilobytes, so a 100 KB
"line" would otherwise block the test until the reader drained it.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import tty
from pathlib import Path

__all__ = ["TERMINATORS", "VirtualScanner"]

TERMINATORS = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n"}


class VirtualScanner:
    """A scanner you can make read codes, spew garbage, vanish and come back."""

    def __init__(
        self,
        link_path: Path,
        *,
        terminator: str = "CR",
        prefix: bytes = b"",
        suffix: bytes = b"",
    ) -> None:
        self.link_path = Path(link_path)
        self.terminator = TERMINATORS[terminator]
        self.prefix = prefix
        self.suffix = suffix
        self._master: int | None = None
        self._slave: int | None = None
        self._pending: queue.Queue[bytes | None] = queue.Queue()
        self._writer: threading.Thread | None = None
        self._stop = threading.Event()
        self._plug()

    @property
    def plugged(self) -> bool:
        return self._master is not None

    @property
    def tty_name(self) -> str:
        """The current /dev/pts/N behind the link."""
        assert self._slave is not None, "unplugged"
        return os.ttyname(self._slave)

    def scan(self, text: str) -> None:
        """Send one code as the scanner would: prefix, text, suffix, terminator."""
        self.send_raw(self.prefix + text.encode("utf-8") + self.suffix + self.terminator)

    def send_raw(self, data: bytes) -> None:
        """Queue bytes exactly as given (garbage, partial lines, huge lines)."""
        assert self.plugged, "unplugged scanners send nothing"
        self._pending.put(data)

    def drain(self, timeout: float = 10.0) -> None:
        """Wait until every queued byte was written into the pty (the reader may lag)."""
        end = time.monotonic() + timeout
        while self._pending.unfinished_tasks and time.monotonic() < end:
            self._stop.wait(0.005)

    def unplug(self) -> None:
        """Pull the cable: the path disappears and the open port starts failing."""
        self._stop_writer()
        self.link_path.unlink(missing_ok=True)
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def replug(self) -> None:
        """Plug back in: a new tty node behind the same stable path."""
        assert not self.plugged, "replug() after unplug()"
        self._plug()

    def close(self) -> None:
        if self.plugged:
            self.unplug()

    def __enter__(self) -> VirtualScanner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _plug(self) -> None:
        master, slave = os.openpty()
        # Raw from the start, so a CR written before the reader configures the port is
        # not turned into LF by the line discipline (a real CDC device has none).
        tty.setraw(slave)
        os.set_blocking(master, False)  # so unplug() can stop a writer stuck on a full pty
        self._master, self._slave = master, slave
        self.link_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link_path.with_name(self.link_path.name + ".new")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(os.ttyname(slave))
        tmp.replace(self.link_path)  # atomic, like udev updating the link
        self._pending = queue.Queue()
        self._stop = threading.Event()
        self._writer = threading.Thread(
            target=self._write_loop, args=(master, self._pending, self._stop), daemon=True
        )
        self._writer.start()

    def _write_loop(
        self, master: int, pending: queue.Queue[bytes | None], stop: threading.Event
    ) -> None:
        while True:
            data = pending.get()
            try:
                if data is None:
                    return
                view = memoryview(data)
                while view and not stop.is_set():
                    try:
                        written = os.write(master, view)
                    except BlockingIOError:
                        stop.wait(0.002)  # the reader has not drained the pty yet
                        continue
                    except OSError:
                        return  # unplugged while writing
                    view = view[written:]
            finally:
                pending.task_done()

    def _stop_writer(self) -> None:
        if self._writer is not None:
            self._stop.set()
            self._pending.put(None)
            self._writer.join(timeout=5)
            self._writer = None
