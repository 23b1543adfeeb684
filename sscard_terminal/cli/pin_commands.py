"""``sscard pin verify|change``: the holder's PIN, typed without echo.

PINs are read with getpass (or, for scripts and tests, one per line from stdin with
``--pin-stdin``), kept in bytearrays, wiped after the call, and never printed.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from ..cards.pin import change_pin, verify_pin
from ..deadline import Deadline
from ..errors import ConfigError
from ..sdk import open_card

__all__ = ["register"]


def _wipe(buffer: bytearray) -> None:
    for index in range(len(buffer)):
        buffer[index] = 0


def _read_pin(args: argparse.Namespace, prompt: str) -> bytearray:
    if args.pin_stdin:
        line = sys.stdin.buffer.readline()
        if not line:
            raise ConfigError(f"--pin-stdin: no line for {prompt.rstrip(': ').lower()}")
        return bytearray(line.rstrip(b"\r\n"))
    if not sys.stdin.isatty():
        # getpass would fall back to echoing on a pipe (with a GetPassWarning): never.
        raise ConfigError("no terminal to prompt for the PIN: type it at a terminal, or "
                          "give it on standard input with --pin-stdin")
    try:
        return bytearray(getpass.getpass(prompt), "ascii", "replace")
    except EOFError as exc:
        raise ConfigError("PIN entry cancelled") from exc


def _verify(args: argparse.Namespace) -> int:
    pin = _read_pin(args, "PIN: ")
    try:
        with open_card(args.reader, Deadline.after(args.timeout)) as transport:
            verify_pin(transport, pin)
    finally:
        _wipe(pin)
    print("PIN verified")
    return 0


def _change(args: argparse.Namespace) -> int:
    secrets = [_read_pin(args, "Current PIN: ")]
    try:
        secrets.append(_read_pin(args, "New PIN: "))
        secrets.append(_read_pin(args, "New PIN again: "))
        if secrets[1] != secrets[2]:
            raise ConfigError("the two new PINs differ; nothing was changed")
        with open_card(args.reader, Deadline.after(args.timeout)) as transport:
            change_pin(transport, secrets[0], secrets[1])
    finally:
        for secret in secrets:
            _wipe(secret)
    print("PIN changed")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reader", help="reader name (or unique prefix, or sim:<holder>); "
                        "default: the first reader with a card")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for a card (default 5)")
    parser.add_argument("--pin-stdin", action="store_true",
                        help="read the PIN(s) from stdin, one per line, instead of a prompt")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the CLI."""
    pin = sub.add_parser(
        "pin", help="verify or change the card holder's PIN",
        description="Verify or change the card holder's 6-digit PIN. The PIN is typed "
        "without echo and never logged. Exit codes: 11 wrong PIN (tries left in the "
        "message), 12 PIN locked.",
        epilog="Example: sscard pin verify --reader 'Virtual PCD 00 00'",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pin_sub = pin.add_subparsers(dest="pin_command", metavar="ACTION", required=True)
    verify = pin_sub.add_parser(
        "verify", help="check the PIN against the card",
        description="Ask for the PIN and verify it with the card (VERIFY, 00 20).",
        epilog="Example: sscard pin verify --reader sim:gen3-adult",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(verify)
    verify.set_defaults(func=_verify)
    change = pin_sub.add_parser(
        "change", help="change the PIN (current, new, new again)",
        description="Ask for the current PIN and the new one twice, then change it "
        "(CHANGE PIN, 00 24). Nothing is sent if the two new PINs differ.",
        epilog="Example: printf '123456\\n654321\\n654321\\n' | "
        "sscard pin change --pin-stdin --reader sim:gen3-adult",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(change)
    change.set_defaults(func=_change)
