"""``sscard central-sim ...``: run and administer the simulated central system.

A CLI plug-in: pyproject.toml declares :func:`register` in the entry-point group
``sscard_terminal.cli_commands`` (see :mod:`sscard_terminal.plugins`), so the ``sscard``
CLI offers these commands whenever the simulator is installed, without naming it.

Every command keeps its state in ``--db`` (default ``central.db`` in the current
directory, created and seeded on first use), so ``serve`` and the administration
commands run in the same directory share one central without repeating the option.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sqlite3
import sys
from pathlib import Path

from sscard_terminal.central.models import Application, CardStatus
from sscard_terminal.errors import ConfigError, SscardError

from . import central_lifecycle, central_server
from .central_ecodes import issue_code_cli
from .central_faults import FaultPlan
from .central_server import CentralServer
from .central_store import CentralStore

__all__ = ["DEFAULT_DB", "register"]

DEFAULT_DB = Path("central.db")
"""Where every ``central-sim`` command keeps the simulator's state unless ``--db`` says."""

_RAW = argparse.RawDescriptionHelpFormatter
_DB_HELP = f"SQLite file of the state (default: {DEFAULT_DB} in the current directory)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``central-sim`` and its commands to the CLI."""
    sim = sub.add_parser(
        "central-sim", help="run and administer the simulated central system",
        description="The simulated central system (tests, demos, technicians' training): "
        f"a real HTTP server over SQLite with seeded demo holders. Every command keeps "
        f"the state in --db, by default {DEFAULT_DB} in the current directory (created and "
        "seeded on first use).",
        epilog="Example: sscard central-sim serve --host 127.0.0.1 --port 8700",
        formatter_class=_RAW)
    ssub = sim.add_subparsers(dest="sim_command", metavar="COMMAND")
    serve = ssub.add_parser(
        "serve", help="run the simulator's HTTP server",
        description="Serve the terminal protocol on HOST:PORT with state in DB (created and "
        "seeded on first use). Faults can be injected from the start or later via "
        "POST /v1/admin/faults.",
        epilog="Example: sscard central-sim serve --port 8700 --db /tmp/central.db "
        "--latency-ms 80 --fail-rate 0.05",
        formatter_class=_RAW)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8700, help="port (8700; 0 picks one)")
    _db_arg(serve)
    serve.add_argument("--latency-ms", type=float, default=0.0, help="added to every answer")
    serve.add_argument("--fail-rate", type=float, default=0.0,
                       help="share of requests answered 503 (0..1)")
    serve.add_argument("--fault", default="none",
                       help="none|error|timeout|reset|malformed|oversized|trickle|trickle_head")
    serve.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM)")
    serve.add_argument("--tls-key", type=Path, help="private key of --tls-cert (PEM)")
    serve.add_argument("--client-ca", type=Path,
                       help="require client certificates signed by this CA (mutual TLS)")
    serve.set_defaults(func=_serve)

    status = ssub.add_parser(
        "set-status", help="move a card through its lifecycle",
        description="Apply a lifecycle transition: normal (unlock; refused after a "
        "replacement application), temporary_loss (15 days unless --until or --open-ended), "
        "formal_loss, suspended, replaced, renewed, cancelled, expired.",
        epilog="Example: sscard central-sim set-status D00000013 temporary_loss "
        f"--until {(dt.date.today() + dt.timedelta(days=15)).isoformat()}\n"
        "         (a loss report that lapses by itself 15 days from today)",
        formatter_class=_RAW)
    status.add_argument("card_number", metavar="CARD_NO")
    status.add_argument("status", choices=[s.value for s in CardStatus if s is not
                                           CardStatus.UNKNOWN], metavar="STATUS")
    status.add_argument("--until", type=dt.date.fromisoformat,
                        help="last day of the status, inclusive (YYYY-MM-DD)")
    status.add_argument("--open-ended", action="store_true",
                        help="temporary loss without an end date")
    _db_arg(status)
    status.set_defaults(func=_set_status)

    app = ssub.add_parser(
        "set-app", help="switch one application of a card on or off",
        description="Switch an application (transit, library, scenic, medical, identity, "
        "sports) on or off for one card.",
        epilog="Example: sscard central-sim set-app D00000013 library off",
        formatter_class=_RAW)
    app.add_argument("card_number", metavar="CARD_NO")
    app.add_argument("application", choices=[a.value for a in Application], metavar="APP")
    app.add_argument("state", choices=("on", "off"))
    _db_arg(app)
    app.set_defaults(func=_set_app)

    config = ssub.add_parser(
        "terminal-config", help="print the config JSON a terminal needs",
        description="Print the JSON a terminal needs to talk to this simulator: base_url "
        "(a placeholder unless --base-url), terminal id, secret, central public key. "
        "The output holds a secret: store it with mode 0600.",
        epilog="Example: sscard central-sim terminal-config --terminal-id T-BUS-0001 "
        "> central.json",
        formatter_class=_RAW)
    _db_arg(config)
    config.add_argument("--terminal-id", required=True, help="e.g. T-BUS-0001 or T-HIS-0001")
    config.add_argument("--base-url", default="http://127.0.0.1:8700", help="central URL")
    config.set_defaults(func=_terminal_config)

    issue = ssub.add_parser(
        "issue-code", help="issue an e-code for a card (prints the code text)",
        description="Issue a signed e-code for CARD_NO with the simulator's signer keys.",
        epilog="Example: sscard central-sim issue-code D00000013 --png code.png",
        formatter_class=_RAW)
    issue.add_argument("card_number", metavar="CARD_NO")
    _db_arg(issue)
    issue.add_argument("--png", type=Path, help="also write the QR code as PNG")
    issue.add_argument("--kind", default="ours", help="ours|national|evoucher")
    issue.add_argument("--alg", default="ES256", help="ES256|EdDSA")
    issue.set_defaults(func=_issue_code)


def _db_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help=_DB_HELP)


def _serve(args: argparse.Namespace) -> int:
    try:
        faults = FaultPlan(latency_ms=args.latency_ms, fail_rate=args.fail_rate,
                           mode=args.fault)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc

    tls = None
    if args.tls_cert is not None:
        try:
            tls = central_server.tls_context(
                str(args.tls_cert), str(args.tls_key or args.tls_cert),
                None if args.client_ca is None else str(args.client_ca))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"TLS setup failed: {exc}") from exc
    scheme = "https" if tls is not None else "http"

    def ready(server: CentralServer) -> None:
        print(f"central-sim listening on {scheme}://{args.host}:{server.port}", flush=True)

    _open_store(args.db).close()  # a bad --db is a clear error before the socket opens
    try:
        central_server.serve(str(args.db), args.host, args.port, faults, ready, tls)
    except OSError as exc:
        raise ConfigError(f"cannot serve on {args.host}:{args.port}: {exc}") from exc
    return 0


def _open_store(db: Path) -> CentralStore:
    """The simulator's database; a missing directory or a file that is not one of ours
    is a ConfigError, not a traceback."""
    try:
        return CentralStore.open(db)
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot open the simulator database {db}: {exc}") from exc


def _set_status(args: argparse.Namespace) -> int:
    if args.until is not None and args.until < dt.date.today():
        # The status would lapse at once: the card would verify as normal while this
        # command reported the new status. Say so instead of doing it.
        raise ConfigError(f"--until {args.until.isoformat()} is already past (today is "
                          f"{dt.date.today().isoformat()}): give a date from today on, or "
                          "--open-ended")
    store = _open_store(args.db)
    try:
        new = central_lifecycle.set_status(
            store, args.card_number, CardStatus(args.status), dt.date.today(),
            until=args.until, open_ended=args.open_ended)
    except central_lifecycle.LifecycleError as exc:
        raise SscardError(f"refused: {exc}") from exc
    print(f"{args.card_number}: {args.status}" + (f" (new card {new})" if new else ""))
    return 0


def _set_app(args: argparse.Namespace) -> int:
    store = _open_store(args.db)
    try:
        central_lifecycle.set_application(store, args.card_number,
                                          Application(args.application), args.state == "on")
    except central_lifecycle.LifecycleError as exc:
        raise SscardError(f"refused: {exc}") from exc
    print(f"{args.card_number}: {args.application} {args.state}")
    return 0


def _terminal_config(args: argparse.Namespace) -> int:
    store = _open_store(args.db)
    terminal = store.terminal(args.terminal_id)
    if terminal is None:
        raise ConfigError(f"no terminal {args.terminal_id!r} in {args.db}")
    json.dump({"base_url": args.base_url, "terminal_id": terminal["terminal_id"],
               "secret": terminal["secret"],
               "central_public_key": store.central_public_key_text()}, sys.stdout, indent=2)
    print()
    return 0


def _issue_code(args: argparse.Namespace) -> int:
    return issue_code_cli(args)
