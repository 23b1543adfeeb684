"""``sscard denylist``: the terminal's local denylist, for a technician.

``status`` shows what is installed (version, entries, age); ``refresh`` fetches what
changed from the central (chunked and signature-checked, as the daemon does); ``check``
says whether a card reference is on it. Each works on the daemon's state directory, so a
technician sees the list the daemon decides with. The daemon holds the list open while it
runs: stop it (or use a copy) before ``refresh``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..central.client import TerminalConfig
from ..deadline import Deadline
from ..terminal.root import TerminalRoot
from ..terminal.settings import TerminalSettings
from .exit_codes import ExitCode

__all__ = ["DEFAULT_STATE_DIR", "register"]

DEFAULT_STATE_DIR = Path("/var/lib/sscard-terminald")
_RAW = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the CLI."""
    group = sub.add_parser(
        "denylist", help="the local denylist: status, refresh, check",
        description=__doc__, formatter_class=_RAW,
        epilog="Example: sscard denylist status --state-dir /var/lib/sscard-terminald")
    dsub = group.add_subparsers(dest="denylist_command", metavar="COMMAND", required=True)

    status = dsub.add_parser(
        "status", help="version, entries and age of the installed list",
        description="Show the installed denylist's version, number of entries and age.",
        epilog="Example: sscard denylist status --json", formatter_class=_RAW)
    _state_arg(status)
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(func=_status)

    refresh = dsub.add_parser(
        "refresh", help="fetch what changed from the central",
        description="Fetch the changes since the installed version (a chunked snapshot "
        "when too far behind), each checked against the central's Ed25519 signature "
        "before anything is installed.",
        epilog="Example: sscard denylist refresh --central central.json --state-dir state",
        formatter_class=_RAW)
    _state_arg(refresh)
    refresh.add_argument("--central", type=Path, required=True, metavar="CONFIG",
                         help="terminal config JSON (base_url, terminal_id, secret, "
                         "central_public_key)")
    refresh.add_argument("--timeout", type=float, default=60.0, metavar="S",
                         help="budget in seconds (default 60)")
    refresh.set_defaults(func=_refresh)

    check = dsub.add_parser(
        "check", help="is a card reference on the list",
        description="Look up one pseudonymous card reference (as decisions and the journal "
        "show it), with the status the list gives it offline.",
        epilog="Example: sscard denylist check s53af34ctllh3wigs4gg5opb", formatter_class=_RAW)
    check.add_argument("--json", action="store_true", help="print JSON")
    _state_arg(check)
    check.add_argument("card_ref", metavar="CARD_REF")
    check.set_defaults(func=_check)


def _state_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, metavar="DIR",
                        help=f"the daemon's state directory (default {DEFAULT_STATE_DIR})")


def _root(state_dir: Path, central: TerminalConfig | None = None) -> TerminalRoot:
    state_dir.mkdir(parents=True, exist_ok=True)
    return TerminalRoot(TerminalSettings(terminal_id=central.terminal_id if central else "",
                                         central=central, state_dir=state_dir))


def _status(args: argparse.Namespace) -> int:
    with _root(args.state_dir) as root:
        denylist = root.denylist()
        state = denylist.state()
        age = denylist.age_hours()
    if args.json:
        print(json.dumps({"version": state.version, "entries": state.entries,
                          "installed_at": state.installed_at.isoformat()
                          if state.installed_at else None,
                          "age_hours": round(age, 2) if age is not None else None}))
        return ExitCode.OK
    print(f"version      {state.version}")
    print(f"entries      {state.entries}")
    print(f"installed at {state.installed_at.isoformat() if state.installed_at else 'never'}")
    print(f"age          {f'{age:.1f} h' if age is not None else '-'}")
    return ExitCode.OK


def _refresh(args: argparse.Namespace) -> int:
    config = TerminalConfig.from_mapping(TerminalConfig.load_json(args.central))
    with _root(args.state_dir, config) as root:
        central = root.central()
        assert central is not None
        denylist = root.denylist()
        before = denylist.version
        after = denylist.refresh(central, deadline=Deadline.after(args.timeout))
        entries = denylist.state().entries
    print(f"denylist version {before} -> {after}, {entries} entries")
    return ExitCode.OK


def _check(args: argparse.Namespace) -> int:
    with _root(args.state_dir) as root:
        entry = root.denylist().lookup(args.card_ref)
    if args.json:
        print(json.dumps({"card_ref": args.card_ref, "listed": entry is not None,
                          "status": entry.status.value if entry else None,
                          "until": entry.until if entry else None}))
    elif entry is None:
        print(f"{args.card_ref}: not on the denylist")
    else:
        print(f"{args.card_ref}: {entry.status.value}"
              + (f" until {entry.until}" if entry.until else ""))
    return ExitCode.OK
