"""``sscard central ...``: the technicians' diagnostics of the link to the central.

``sscard central-sim ...`` (the simulated central) is not here: the simulator adds it as a
CLI plug-in (see :mod:`sscard_terminal.plugins`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..central.client import CentralClient, TerminalConfig
from ..deadline import Deadline
from ..errors import ConfigError
from .exit_codes import ExitCode

__all__ = ["register"]

_RAW = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the CLI."""
    central = sub.add_parser(
        "central", help="talk to the central system (diagnostics)",
        description="Diagnostics of the link to the central system.",
        epilog="Example: sscard central ping --config /etc/sscard/central.json",
        formatter_class=_RAW)
    csub = central.add_subparsers(dest="central_command", metavar="COMMAND")
    ping = csub.add_parser(
        "ping", help="latency, clock offset and whether this terminal's credentials work",
        description="Send one signed request to the central and report the round-trip "
        "latency, the terminal's clock offset and whether authentication succeeded.",
        epilog="Example: sscard central ping --config central.json --timeout 2\n"
        "Config file: JSON with base_url, terminal_id, secret, central_public_key and "
        "optionally ca_file, client_cert, client_key (as `central-sim terminal-config` prints).",
        formatter_class=_RAW)
    ping.add_argument("--config", type=Path, help="terminal config JSON file")
    ping.add_argument("--url", help="base URL (overrides the config file)")
    ping.add_argument("--terminal-id", help="terminal id (overrides the config file)")
    ping.add_argument("--secret-file", type=Path, help="file holding the terminal secret")
    ping.add_argument("--ca-file", type=Path, help="CA bundle to verify the central's TLS")
    ping.add_argument("--timeout", type=float, default=3.0, help="budget in seconds (3)")
    ping.set_defaults(func=_ping)


def _ping(args: argparse.Namespace) -> int:
    data: dict[str, Any] = {}
    if args.config is not None:
        data = TerminalConfig.load_json(args.config)
    if args.url:
        data["base_url"] = args.url
    if args.terminal_id:
        data["terminal_id"] = args.terminal_id
    if args.secret_file:
        try:
            data["secret"] = args.secret_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the secret file {args.secret_file}: {exc}") from exc
    if args.ca_file:
        data["ca_file"] = str(args.ca_file)
    config = TerminalConfig.from_mapping(data)
    with CentralClient.from_config(config) as client:
        result = client.ping(Deadline.after(args.timeout))
    print(f"central:      {config.base_url}")
    print(f"terminal:     {result.terminal_id}")
    print(f"auth:         {'ok' if result.auth_ok else f'REFUSED ({result.refusal_reason})'}")
    print(f"latency:      {result.latency_s * 1000:.1f} ms")
    print(f"clock offset: {result.clock_offset_s:+.3f} s (server minus terminal)")
    return 0 if result.auth_ok else int(ExitCode.CENTRAL_REFUSED)
