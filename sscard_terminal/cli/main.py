"""Entry point of the ``sscard`` technician CLI.

Each command group lives in its own module with a ``register(subparsers)`` function;
this module only composes them and turns errors into documented exit codes.
Every command must have help text and an example (a test enforces it).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence

from ..errors import SscardError
from . import (
    card_commands,
    central_commands,
    daemon_commands,
    ecode_commands,
    pin_commands,
    queue_commands,
    scan_commands,
)
from .exit_codes import ExitCode, exit_code_for

__all__ = ["build_parser", "main"]

_TRACE_LOGGER = "sscard_terminal.apdu.trace"

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

_GROUPS: tuple[Register, ...] = (
    card_commands.register,
    central_commands.register,
    queue_commands.register,
    ecode_commands.register,
    scan_commands.register,
    pin_commands.register,
    daemon_commands.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sscard",
        description="Diagnostic CLI for social security card terminals. Personal data is "
        "masked unless a command is given --unmask.",
        epilog="Example: sscard readers",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for APDU traces, which may hold personal data)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _GROUPS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return ExitCode.USAGE
    with _apdu_trace(args.verbose >= 2):
        try:
            return int(func(args))
        except SscardError as exc:
            print(f"sscard: {exc}", file=sys.stderr)
            return exit_code_for(exc)
        except KeyboardInterrupt:
            return 130


@contextlib.contextmanager
def _apdu_trace(enabled: bool) -> Iterator[None]:
    """APDU hex traces (which may hold personal data) only with -vv, for this call only:
    main() may run many times in one process (tests, an embedding tool), and one call's
    choice must not leak into the next."""
    trace = logging.getLogger(_TRACE_LOGGER)
    previous = trace.level
    trace.setLevel(logging.DEBUG if enabled else logging.INFO)
    try:
        yield
    finally:
        trace.setLevel(previous)


if __name__ == "__main__":
    sys.exit(main())
