"""Command line of ``sscard-terminald``: ``--config FILE``, ``--check-config``, logging.

Exit codes: 0 after a clean stop (or a configuration that checks out), 17 for a
configuration the daemon cannot honour (the same number as ``sscard``'s ``CONFIG_ERROR``,
so one table serves a technician for both), 1 for any other failure before READY.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, SscardError
from ..log_setup import JOURNAL_SOCKET, configure_logging
from .config import DEFAULT_CONFIG_PATH, load_config

__all__ = ["EXIT_CONFIG", "EXIT_FAILED", "build_parser", "main"]

EXIT_CONFIG = 17
EXIT_FAILED = 1

_log = logging.getLogger("sscard_terminal.daemon")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sscard-terminald",
        description="The terminal daemon: decides card taps and e-codes on every configured "
                    "reader and scanner, journals each decision, forwards the journal to the "
                    "central, and reports to systemd (Type=notify, watchdog).",
        epilog="Example: sscard-terminald --config /etc/sscard/terminal.toml --check-config\n"
               "Examples of configurations, one per shipped profile: systemd/examples/.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, metavar="FILE",
                        help=f"the TOML configuration (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--check-config", action="store_true",
                        help="validate the configuration (keys, files, credentials, profile) "
                             f"and exit: 0 if it is usable, {EXIT_CONFIG} if not")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--journal-socket", default=JOURNAL_SOCKET, metavar="PATH",
                        help="journald's native socket, used when stderr is the journal's "
                             f"stream (JOURNAL_STREAM, set by systemd; default "
                             f"{JOURNAL_SOCKET})")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Under systemd: journald's native protocol with structured fields (lane, reason,
    # transaction id); otherwise stderr. Personal data is masked on both.
    configure_logging(args.log_level, identifier="sscard-terminald",
                      journal_socket=args.journal_socket)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        _log.error("%s", exc)
        return EXIT_CONFIG
    if args.check_config:
        lanes = ", ".join(f"{lane.name} ({lane.input.value})" for lane in config.lanes)
        _log.info("%s: configuration ok: terminal %s, profile %s, lanes %s",
                  args.config, config.terminal_id, config.profile.name, lanes)
        return 0
    from .app import run  # noqa: PLC0415 - --check-config never loads the runtime
    try:
        return run(config, config_path=args.config)
    except ConfigError as exc:
        _log.error("%s", exc)
        return EXIT_CONFIG
    except SscardError as exc:
        _log.error("%s", exc)
        return EXIT_FAILED
