"""``sscard status`` and ``sscard events``: the running daemon, seen by a technician.

Both talk to the daemon's local API socket (``--socket``, default /run/sscard-terminald/api.sock or
``$SSCARD_SOCKET``); when the daemon is not running they say so in one line and exit 22
(DAEMON_NOT_RUNNING).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from ..local_api.client import DEFAULT_SOCKET, LocalApiClient
from ..local_api.status_view import event_line, status_screen

__all__ = ["register"]

_FMT = argparse.RawDescriptionHelpFormatter
_CLEAR = "\x1b[H\x1b[2J"


def _socket_option(parser: argparse.ArgumentParser) -> None:
    default = Path(os.environ.get("SSCARD_SOCKET", str(DEFAULT_SOCKET)))
    parser.add_argument("--socket", type=Path, default=default, metavar="PATH",
                        help=f"the daemon's local API socket (default {default}; "
                             "$SSCARD_SOCKET)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    status = sub.add_parser(
        "status", help="the running daemon: lanes, central, journal, lists, last decision",
        description="One screen of the running daemon's state: health, each lane's state "
                    "and gate, the central link and circuit breaker, the journal's backlog, "
                    "the denylist and trust list, the last decision. Exit status 0, or 1 "
                    "when the daemon is not running or no lane can decide (failing).",
        epilog="Example: sscard status --watch\n         sscard status --json | jq .health",
        formatter_class=_FMT)
    _socket_option(status)
    status.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    status.add_argument("--interval", type=float, default=1.0, metavar="S",
                        help="seconds between refreshes with --watch (default 1)")
    status.add_argument("--json", action="store_true",
                        help="print {status, health, last_decision} as JSON")
    status.set_defaults(func=_status)

    events = sub.add_parser(
        "events", help="follow the running daemon's events (presentations, lanes, gates)",
        description="Print each event as it happens: presentations and their decisions "
                    "(masked, stable reason codes), lane and gate state changes, the "
                    "central link. Until Ctrl-C or the daemon stops.",
        epilog="Example: sscard events\n         sscard events --json > taps.jsonl",
        formatter_class=_FMT)
    _socket_option(events)
    events.add_argument("--json", action="store_true", help="one JSON object per line")
    events.set_defaults(func=_events)


def _snapshot(client: LocalApiClient) -> dict[str, object]:
    return {"status": client.data("status"), "health": client.data("health"),
            "last_decision": client.data("last_decision")}


def _status(args: argparse.Namespace) -> int:
    client = LocalApiClient(args.socket)
    while True:
        snapshot = _snapshot(client)
        if args.json:
            print(json.dumps(snapshot, ensure_ascii=False), flush=True)
        else:
            screen = status_screen(snapshot["status"], snapshot["health"],  # type: ignore[arg-type]
                                   snapshot["last_decision"])  # type: ignore[arg-type]
            if args.watch and sys.stdout.isatty():
                sys.stdout.write(_CLEAR)
            print(screen, flush=True)
        if not args.watch:
            health = snapshot["health"]
            return 0 if not isinstance(health, dict) or health.get("state") != "failing" else 1
        time.sleep(max(0.2, args.interval))


def _events(args: argparse.Namespace) -> int:
    for event in LocalApiClient(args.socket).events():
        if args.json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
        else:
            print(event_line(event), flush=True)
    return 0
