"""Entry point of the ``sscard`` technician CLI.

Each command group lives in its own module with a ``register(subparsers)`` function;
this module only composes them, then the groups plug-ins add (the entry-point group
``sscard_terminal.cli_commands``, see :mod:`sscard_terminal.plugins`: the simulator's
``central-sim``), and turns errors into documented exit codes. Every command must have
help text and an example (a test enforces it).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence

from ..errors import SscardError
from ..plugins import CLI_COMMANDS_GROUP, load_entry_points
from . import (
    card_commands,
    central_commands,
    daemon_commands,
    denylist_commands,
    ecode_commands,
    pin_commands,
    profile_commands,
    queue_commands,
    scan_commands,
)
from .exit_codes import ExitCode, exit_code_for

__all__ = ["build_parser", "main"]

_TRACE_LOGGER = "sscard_terminal.apdu.trace"
_log = logging.getLogger(__name__)

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]

_GROUPS: tuple[Register, ...] = (
    card_commands.register,
    central_commands.register,
    queue_commands.register,
    denylist_commands.register,
    ecode_commands.register,
    scan_commands.register,
    pin_commands.register,
    profile_commands.register,
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
    for name, plugin in load_entry_points(CLI_COMMANDS_GROUP):
        if callable(plugin):
            plugin(sub)
        else:
            _log.warning("CLI plug-in %s is not a register(subparsers) function: %r",
                         name, plugin)
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
        except BrokenPipeError:
            # `sscard readers | head`: the reader of our output left. Say nothing more
            # (Python would print a traceback while flushing stdout at exit).
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return ExitCode.OK


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
