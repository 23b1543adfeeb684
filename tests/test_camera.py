"""CameraScanner and the decode path on generated frames and real video files (MJPG/AVI)."""

from __future__ import annotations

import functools
import http.server
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from sscard_hardware_sim.qr_images import DISTORTIONS, frames, make_frame, render_code

from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.camera import CameraScanner, decode_gray, to_gray
from sscard_terminal.drivers.code_filter import ScannerEvent, ScannerState
from sscard_terminal.errors import CameraUnavailableError

pytestmark = pytest.mark.timeout(120)

SIZE = (640, 480)  # small frames keep the video tests quick; decoding is the same code


def _frame_with(text: str | bytes | None, module_px: int = 4) -> np.ndarray:
    """A grey frame, with the QR of ``text`` in the middle when given."""
    frame = np.full((SIZE[1], SIZE[0], 3), 120, dtype=np.uint8)
    if text is not None:
        code = cv2.cvtColor(render_code(text, module_px), cv2.COLOR_GRAY2BGR)
        h, w = code.shape[:2]
        y, x = (SIZE[1] - h) // 2, (SIZE[0] - w) // 2
        frame[y : y + h, x : x + w] = code
    return frame


def _write_video(path: Path, texts: list[str | bytes | None], fps: int = 10) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, SIZE)
    assert writer.isOpened()
    for text in texts:
        writer.write(_frame_with(text))
    writer.release()
    return path


CODE_A = "SC1:" + "6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDEPWK G2EP4J0B" * 3
CODE_B = "SC1:" + "NCFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N IOP-IA%NFQ" * 3


def test_the_image_set_is_deterministic_and_covers_every_distortion() -> None:
    first = [make_frame(i, seed=11) for i in range(len(DISTORTIONS))]
    again = [make_frame(i, seed=11) for i in range(len(DISTORTIONS))]
    assert [f.distortion for f in first] == list(DISTORTIONS)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(first, again, strict=True))
    assert all(a.image.shape == (720, 1280, 3) for a in first)
    assert all(150 <= len(a.text) - 4 <= 300 and a.text.startswith("SC1:") for a in first)
    other = make_frame(0, seed=12)
    assert other.text != first[0].text


def test_our_decode_path_reads_distorted_1280x720_frames() -> None:
    results = Counter()
    for frame in frames(28, seed=3):
        found = decode_gray(to_gray(frame.image))
        assert found in ([], [frame.text.encode()]), "never a wrong or partial payload"
        results[frame.distortion, bool(found)] += 1
    assert results["clean", True] == 4  # an undistorted code is always read
    decoded = sum(n for (_, ok), n in results.items() if ok)
    assert decoded >= 24, results


def test_a_frame_without_a_code_decodes_to_nothing() -> None:
    assert decode_gray(to_gray(_frame_with(None))) == []


def test_codes_from_a_video_file_are_read_once_each(tmp_path: Path) -> None:
    texts = [None] * 3 + [CODE_A] * 5 + [None] * 3 + [CODE_B] * 3
    video = _write_video(tmp_path / "gate.avi", texts)
    with CameraScanner(str(video)) as camera:
        codes = list(camera)
        assert [c.text for c in codes] == [CODE_A, CODE_B]
        assert all(c.source == f"camera:{video}" for c in codes)
        assert camera.exhausted
        assert camera.frames_read == 14
        counters = camera.counters()
        assert counters.accepted == 2
        assert counters.duplicates == 6
        assert camera.read(Deadline.after(0.1)) is None  # the end of a file is final


def test_without_a_dedup_window_every_frame_counts(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "gate.avi", [CODE_A] * 4)
    with CameraScanner(str(video), dedup_window=0.0) as camera:
        assert [c.text for c in camera] == [CODE_A] * 4


def test_non_printable_and_oversized_codes_are_discarded_and_counted(tmp_path: Path) -> None:
    video = _write_video(
        tmp_path / "gate.avi",
        ["ESC\x1b[2J\x00", None, "X" * 300, None, b"\xff\xfe\xc3(", None, CODE_B[:90]],
    )
    with CameraScanner(str(video), max_length=100) as camera:
        assert [c.text for c in camera] == [CODE_B[:90]]
        counters = camera.counters()
        assert counters.non_printable == 1
        assert counters.oversized == 1
        assert counters.invalid_utf8 == 1


def test_a_missing_video_or_device_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CameraUnavailableError, match="cannot open camera source"):
        CameraScanner(str(tmp_path / "no-such.avi"))


def test_a_live_source_that_stops_is_lost_and_reopened(tmp_path: Path) -> None:
    # A URL is a live source: when it stops delivering frames it is reopened, as a
    # dropped RTSP stream is. FFmpeg reads file:// URLs, so this runs without a camera.
    video = _write_video(tmp_path / "stream.avi", [CODE_A] * 2)
    events: list[ScannerEvent] = []
    camera = CameraScanner(
        f"file://{video}", reconnect_interval=0.05, dedup_window=0.0, on_event=events.append
    )
    with camera:
        texts = []
        deadline = Deadline.after(10)
        while len(texts) < 4 and not deadline.expired:
            code = camera.read(deadline)
            if code is not None:
                texts.append(code.text)
        assert texts == [CODE_A] * 4  # two frames, then the reopened stream's two again
        assert camera.live and not camera.exhausted
    kinds = [e.kind for e in events]
    assert kinds[:3] == ["scanner-connected", "scanner-lost", "scanner-back"]
    assert kinds[-1] == "scanner-closed"
    assert camera.counters().lost >= 1 and camera.counters().back >= 1


def test_close_from_another_thread_unblocks_a_reader(tmp_path: Path) -> None:
    video = _write_video(tmp_path / "empty.avi", [None] * 100)

    def slow_decoder(gray: object) -> list[str]:
        time.sleep(0.05)  # 100 frames: 5 s if close() were ignored
        return []

    camera = CameraScanner(str(video), decoder=slow_decoder)
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(camera.read(Deadline.never())))
    thread.start()
    time.sleep(0.3)
    began = time.monotonic()
    camera.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert time.monotonic() - began < 1.0
    assert result == [None]
    assert camera.state is ScannerState.CLOSED
    assert camera.frames_read < 100


def test_a_terminal_without_a_camera_never_loads_cv2() -> None:
    probe = """
import sys
import sscard_terminal
import sscard_terminal.drivers
from sscard_terminal.drivers import camera, code_filter, serial_qr
code_filter.CodeFilter().accept(b"SC1:ABC", "serial:/dev/x")
heavy = sorted(m for m in ("cv2", "numpy", "zxingcpp", "pyzbar", "serial") if m in sys.modules)
print(",".join(heavy))
"""
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""


# --- review: credentials in stream URLs, a source that stalls -------------------------


def test_the_password_of_a_stream_url_is_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # IP cameras are opened as rtsp://user:password@host/...; the source names every
    # code, every log line and every error, and none of them may carry the password.
    caplog.set_level(logging.DEBUG, logger="sscard_terminal.drivers.camera")
    with pytest.raises(CameraUnavailableError) as refused:
        CameraScanner("rtsp://admin:s3cret@127.0.0.1:9/stream1?channel=1&password=s3cret")
    assert "s3cret" not in str(refused.value)
    assert "127.0.0.1:9/stream1" in str(refused.value)

    _write_video(tmp_path / "gate.avi", [CODE_A] * 2)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://admin:s3cret@127.0.0.1:{server.server_address[1]}/gate.avi"
        events: list[ScannerEvent] = []
        with CameraScanner(url, on_event=events.append) as camera:
            code = camera.read(Deadline.after(10))
            assert code is not None and code.text == CODE_A
            shown = [code.source, repr(code), repr(camera), camera.source]
            assert code.source.startswith("camera:http://admin:***@127.0.0.1:")
    finally:
        server.shutdown()
        server.server_close()
    shown += [e.source + e.detail for e in events] + [caplog.text]
    assert not [text for text in shown if "s3cret" in text]


class _StallingVideoServer:
    """HTTP on 127.0.0.1 that serves a video until told to stall: then it accepts and
    answers nothing, as a camera that hangs does, until it is told to resume."""

    def __init__(self, directory: Path) -> None:
        self.stalled = threading.Event()
        self.resumed = threading.Event()
        self.requests = 0
        owner = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: object, **kwargs: object) -> None:
                super().__init__(*args, directory=str(directory), **kwargs)  # type: ignore[arg-type]

            def do_GET(self) -> None:
                owner.requests += 1
                if owner.stalled.is_set():
                    owner.resumed.wait(20)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{name}"

    def close(self) -> None:
        self.resumed.set()
        self.server.shutdown()
        self.server.server_close()


def test_close_while_a_live_source_is_being_reopened_ends_closed(tmp_path: Path) -> None:
    _write_video(tmp_path / "gate.avi", [CODE_A] * 2)
    server = _StallingVideoServer(tmp_path)
    events: list[str] = []
    try:
        camera = CameraScanner(server.url("gate.avi"), reconnect_interval=0.05,
                               on_event=lambda e: events.append(e.kind))
        assert camera.read(Deadline.after(10)) is not None
        server.stalled.set()  # the stream ends; reopening it now hangs
        result: list[object] = []
        reader = threading.Thread(target=lambda: result.append(camera.read(Deadline.never())))
        reader.start()
        deadline = Deadline.after(10)
        while server.requests < 2 and not deadline.expired:  # the reopen is under way
            time.sleep(0.01)
        assert server.requests >= 2
        began = time.monotonic()
        camera.close()
        assert time.monotonic() - began < 1.0  # close() itself does not wait for cv2
        server.resumed.set()  # the camera answers the reopen that close() interrupted
        reader.join(timeout=10)
        assert not reader.is_alive()
        assert result == [None]
    finally:
        server.close()
    # close() is final: a reopen that completes afterwards is not "back" (and its
    # capture is released by the reader on its way out)
    assert camera.state is ScannerState.CLOSED
    assert events[-1] == "scanner-closed"
    assert events.count("scanner-closed") == 1
    assert camera.counters().back == 0
