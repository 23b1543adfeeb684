"""Camera e-code input: the only module that imports cv2 and the QR decoding libraries.

Validators with a camera read the e-code off the holder's phone. Frames come from
``cv2.VideoCapture`` (a device index, a video file, or an RTSP URL); each frame goes
through our decode path and every decoded text through the same :class:`CodeFilter` as a
serial scanner's lines, so a camera delivers the same :class:`ScannedCode` values under
the same duplicate and garbage rules.

The decode path was chosen by measurement (docs/ecode-input.md, ``bench/_camera_decode``):
zxing-cpp restricted to QR codes is both the fastest and the most successful library on
our generated frames; we call it with fewer built-in retries, retry on a half-size frame
when it finds nothing, and when it *finds* a symbol but cannot decode it (typically
motion blur) retry once on an unsharp-masked frame (see :func:`decode_gray`).

cv2, numpy, zxing-cpp and pyzbar are imported lazily, on first use: a terminal without a
camera never loads them (a test checks ``sys.modules``).
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from ..deadline import Deadline
from ..errors import CameraUnavailableError, ConfigError
from .code_filter import CodeFilter
from .scanner_base import EventCallback, ScannerBase

__all__ = ["CameraScanner", "decode_gray", "single_library_decoders", "to_gray"]

log = logging.getLogger(__name__)

GrayDecoder = Callable[[Any], list[bytes]]

# How long an RTSP/FFmpeg open or read may hang before cv2 gives up (milliseconds).
_STREAM_TIMEOUT_MS = 3000


def _import(name: str) -> Any:
    """Import an optional camera library, turning its absence into our error."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise CameraUnavailableError(
            f"{name} is not installed: install sscard-terminal[camera] for camera input"
        ) from exc


def to_gray(frame: Any) -> Any:
    """A BGR frame (what VideoCapture yields) as an 8-bit grayscale image."""
    cv2 = _import("cv2")
    if getattr(frame, "ndim", 2) == 2:
        return frame
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


def decode_gray(gray: Any) -> list[bytes]:
    """The payload of every QR code in a grayscale frame, by our measured cascade.

    Raw bytes, not the library's text: zxing renders control characters as ``<ESC>``
    and guesses character sets, which would hide garbage from :class:`CodeFilter`.

    1. zxing-cpp, QR only, full resolution, no rotation or downscale retries (a QR finder
       pattern is rotation-invariant), reporting symbols it found but could not decode;
    2. if it found a symbol it could not decode (blur, noise): once more on an
       unsharp-masked frame;
    3. if it found nothing: once on a half-size frame (what zxing's own downscale retry
       would do, at a quarter of the pixels), then step 2 for a symbol found there.

    An empty frame costs a full and a quarter-size pass: no more than zxing's default.
    """
    zxingcpp = _import("zxingcpp")
    cv2 = _import("cv2")

    def qr(image: Any, **options: Any) -> Any:
        return zxingcpp.read_barcodes(
            image, formats=zxingcpp.BarcodeFormat.QRCode, try_rotate=False, **options
        )

    found = qr(gray, try_downscale=False, return_errors=True)
    if not found:
        half = cv2.resize(gray, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
        found = qr(half, try_downscale=False, return_errors=True)
    payloads = [r.bytes for r in found if r.valid]
    if payloads or not found:
        return payloads
    sharpened = cv2.addWeighted(gray, 1.8, cv2.GaussianBlur(gray, (0, 0), 3), -0.8, 0)
    return [r.bytes for r in qr(sharpened) if r.valid]


def single_library_decoders() -> dict[str, GrayDecoder]:
    """Each candidate library on its own, as its documentation shows it used.

    For the benchmark that justifies :func:`decode_gray`; a library that is not installed
    is left out (its absence is reported by the benchmark, not hidden).
    """
    decoders: dict[str, GrayDecoder] = {}
    try:
        zxingcpp = importlib.import_module("zxingcpp")
    except ImportError:
        pass
    else:

        def zxing_all_formats(gray: Any) -> list[bytes]:
            return [r.bytes for r in zxingcpp.read_barcodes(gray)]

        def zxing_qr(gray: Any) -> list[bytes]:
            return [
                r.bytes
                for r in zxingcpp.read_barcodes(gray, formats=zxingcpp.BarcodeFormat.QRCode)
            ]

        decoders["zxing-cpp"] = zxing_all_formats
        decoders["zxing-cpp (QR only)"] = zxing_qr
    try:
        pyzbar = importlib.import_module("pyzbar.pyzbar")
    except ImportError:  # pyzbar also fails to import when libzbar0 is missing
        pass
    else:

        def zbar_qr(gray: Any) -> list[bytes]:
            symbols = pyzbar.decode(gray, symbols=[pyzbar.ZBarSymbol.QRCODE])
            return [bytes(s.data) for s in symbols]

        decoders["pyzbar (QR only)"] = zbar_qr
    try:
        cv2 = importlib.import_module("cv2")
    except ImportError:
        return decoders
    detector = cv2.QRCodeDetector()

    def opencv(gray: Any) -> list[bytes]:
        text, _points, _straight = detector.detectAndDecode(gray)
        return [text.encode("utf-8", "surrogateescape")] if text else []

    decoders["opencv QRCodeDetector"] = opencv
    if hasattr(cv2, "QRCodeDetectorAruco"):
        aruco = cv2.QRCodeDetectorAruco()

        def opencv_aruco(gray: Any) -> list[bytes]:
            text, _points, _straight = aruco.detectAndDecode(gray)
            return [text.encode("utf-8", "surrogateescape")] if text else []

        decoders["opencv QRCodeDetectorAruco"] = opencv_aruco
    return decoders


# Query parameters that IP cameras use for credentials (…?user=admin&password=…).
_SECRET_QUERY = re.compile(r"(?i)\b((?:pass|passwd|password|pwd|token|key|secret|auth)\w*=)[^&]*")


def _redact(target: int | str) -> str:
    """``target`` for display: a stream URL without its password.

    IP cameras are opened as ``rtsp://user:password@host/...``; the source names every
    code, log line, event and error, so the password is replaced by ``***`` there (the
    capture itself still gets the real URL).
    """
    if not isinstance(target, str) or "://" not in target:
        return str(target)
    try:
        parts = urlsplit(target)
    except ValueError:  # an unparsable URL: show its scheme only
        return target.split("://", 1)[0] + "://***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = _SECRET_QUERY.sub(r"\1***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _parse_source(source: int | str) -> tuple[int | str, bool]:
    """(what to hand VideoCapture, whether it is a live source that can come back)."""
    if isinstance(source, int):
        return source, True
    if source.isdigit():
        return int(source), True
    if "://" in source:  # rtsp://, http:// MJPEG cameras
        return source, True
    return source, False


class CameraScanner(ScannerBase):
    """Decoded codes from a camera, a video file or an RTSP stream.

    Same contract as :class:`~sscard_terminal.drivers.serial_qr.SerialQrScanner` (both
    are a :class:`~sscard_terminal.drivers.scanner_base.ScannerBase`):
    ``read(deadline)`` returns the next accepted code or ``None``; iteration yields codes
    until :meth:`close` (or the end of a video file); live sources that fail are reported
    ``scanner-lost`` and reopened every ``reconnect_interval`` seconds (``scanner-back``).
    ``close()`` from another thread takes effect after the frame being read (cv2 cannot
    abandon a read half way), so it returns within one frame time plus the stream timeout.
    """

    _NOUN = "camera"
    _UNAVAILABLE = CameraUnavailableError
    # A reader inside cap.read() holds the lock; close() does not wait for cv2 (it cannot
    # cut a read short): the reader releases the capture on its way out.
    _CLOSE_WAIT_S = 0.05
    _log: ClassVar[logging.Logger] = log

    def __init__(
        self,
        source: int | str,
        *,
        dedup_window: float = 2.0,
        max_length: int = 4096,
        reconnect_interval: float = 1.0,
        decoder: GrayDecoder | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        """Open ``source`` now; raises :class:`CameraUnavailableError` if it cannot be."""
        if reconnect_interval <= 0:
            raise ConfigError("reconnect_interval must be positive")
        self._target, self.live = _parse_source(source)
        self._shown = _redact(self._target)  # never the password of a stream URL
        self._decode = decoder or decode_gray
        super().__init__(
            code_filter=CodeFilter(dedup_window=dedup_window, max_length=max_length),
            reconnect_interval=reconnect_interval,
            on_event=on_event,
        )
        self._capture: Any = None
        self.exhausted = False  # a video file reached its end
        self.frames_read = 0
        self._connect()

    @property
    def source(self) -> str:
        return f"camera:{self._shown}"

    @property
    def _display(self) -> str:
        return self._shown

    # -- internals ----------------------------------------------------------------------

    def _open(self) -> None:
        cv2 = _import("cv2")
        params: list[int] = []
        if isinstance(self._target, str) and "://" in self._target:
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, _STREAM_TIMEOUT_MS,
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, _STREAM_TIMEOUT_MS,
            ]  # fmt: skip
        try:
            capture = cv2.VideoCapture(self._target, cv2.CAP_ANY, params)
            opened = bool(capture.isOpened())
        except cv2.error as exc:
            raise CameraUnavailableError(f"cannot open camera source {self._shown!r}") from exc
        if not opened:
            capture.release()
            raise CameraUnavailableError(
                f"cannot open camera source {self._shown!r} (no such device or file, "
                "unsupported format, or no permission: is the user in the video group?)"
            )
        self._capture = capture  # after close(), read() releases it on its way out

    def _is_open(self) -> bool:
        return self._capture is not None

    def _ended(self) -> bool:
        return self.exhausted

    def _read_some(self, deadline: Deadline) -> None:
        """One frame (cv2 reads cannot be bounded by the deadline: the stream timeout is)."""
        cv2 = _import("cv2")
        try:
            ok, frame = self._capture.read()
        except cv2.error as exc:
            ok, frame = False, None
            log.debug("camera %s read failed: %s", self._shown, exc)
        if not ok or frame is None:
            self._release()
            if self._closed.is_set():
                return  # close() came during the read: that is no loss of the source
            if self.live:
                self._lost("no frame from source")
            else:
                self.exhausted = True
            return
        self.frames_read += 1
        for payload in self._decode(to_gray(frame)):
            self._accept(bytes(payload))

    def _release(self) -> None:
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()
