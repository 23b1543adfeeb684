"""``sscard scan``: read e-codes from a serial scanner or a camera and verify each one."""

from __future__ import annotations

import argparse
import math
import time
from typing import Protocol

from ..deadline import Deadline
from ..drivers.camera import CameraScanner  # imports cv2 itself only when a camera opens
from ..drivers.code_filter import ScannedCode
from ..drivers.serial_qr import SerialQrScanner  # imports pyserial only when a port opens
from ..ecode import ECodeVerifier
from ..errors import ConfigError
from .ecode_commands import add_verification_options, build_verifier, describe, shorten

__all__ = ["register"]


class _Scanner(Protocol):
    def read(self, deadline: Deadline) -> ScannedCode | None: ...

    def close(self) -> None: ...


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the CLI."""
    scan = sub.add_parser(
        "scan", help="read e-codes from a serial scanner or camera and verify them",
        description="Read codes from a serial QR scanner (--port) or a camera, video file "
        "or RTSP URL (--camera) and print each one, shortened, with its verification "
        "result (masked). Stops after --count codes or --seconds, whichever comes first.",
        epilog="Example: sscard scan --port /dev/serial/by-id/usb-Scanner-if00 --count 5 "
        "--central terminal.json --trust-list trust.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    source = scan.add_mutually_exclusive_group(required=True)
    source.add_argument("--port", metavar="PATH", help="serial scanner port (CDC/COM)")
    source.add_argument("--camera", metavar="SRC",
                        help="camera index, video file or rtsp:// URL")
    scan.add_argument("--baud", type=int, default=9600, help="serial speed (default 9600)")
    scan.add_argument("--count", type=int, default=0, metavar="N",
                      help="stop after N codes (default: no limit)")
    scan.add_argument("--seconds", type=float, default=0.0, metavar="S",
                      help="stop after S seconds (default: no limit)")
    add_verification_options(scan)
    scan.set_defaults(func=_scan)


def _open(args: argparse.Namespace) -> _Scanner:
    if args.port:
        return SerialQrScanner(args.port, baudrate=args.baud)
    source: int | str = int(args.camera) if args.camera.isdigit() else args.camera
    return CameraScanner(source)


def _scan(args: argparse.Namespace) -> int:
    # "not >= 0" also refuses nan, which compares false with everything: the loop would
    # never end and would read with a zero timeout, spinning a core.
    if not args.count >= 0 or not (args.seconds >= 0 and math.isfinite(args.seconds)):
        raise ConfigError("--count and --seconds must be finite and not negative")
    verifier, root = build_verifier(args)
    seen = 0
    try:
        scanner = _open(args)
        try:
            seen = _print_codes(args, scanner, verifier)
        finally:
            scanner.close()
    finally:
        root.close()
    print(f"{seen} code(s) read")
    return 0


def _print_codes(args: argparse.Namespace, scanner: _Scanner, verifier: ECodeVerifier) -> int:
    """Read, verify and print codes until --count or --seconds; how many were read."""
    end = time.monotonic() + args.seconds if args.seconds else float("inf")
    seen = 0
    while not args.count or seen < args.count:
        left = end - time.monotonic()
        if left <= 0:
            break
        code = scanner.read(Deadline.after(min(left, 1.0)))
        if code is None:
            if getattr(scanner, "exhausted", False):
                break  # a video file has ended
            continue
        seen += 1
        result = verifier.verify(code.text, deadline=Deadline.after(args.timeout))
        print(f"[{seen}] {code.source}: {shorten(code.text)}", flush=True)
        for line in describe(result):
            print(line, flush=True)
    return seen
