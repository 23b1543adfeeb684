"""``python -m sscard_terminal.local_api``: run the local API until Ctrl-C / SIGTERM.

For technicians and the demo until the daemon mounts the same parts. Logs only (no
print): function, return code and duration per request, never card data (the APDU
hex trace only with ``--apdu-trace``, whatever ``--log-level`` says).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import stat
import time
from collections.abc import Sequence
from pathlib import Path

from ..apdu.transport import CardTransport
from ..cards.card_info import CardInfo
from ..central.client import TerminalConfig
from ..deadline import Deadline
from ..ecode import ECodeVerification
from ..errors import ConfigError, SscardError
from ..profiles import load_profile
from ..terminal.identity import IdentityPresentation
from ..terminal.read_status import check_read_status
from ..terminal.root import TerminalRoot
from ..terminal.settings import KeySource, TerminalSettings
from .card_service import CardReaderService, CardSettings
from .desk import ECodeCheck, IdentityPresenter
from .handler import LocalApi
from .http_server import HttpSecurity, LoopbackHttpServer
from .unix_server import UnixSocketServer

__all__ = ["build_parser", "main", "read_token"]

_log = logging.getLogger("sscard_terminal.local_api")

_EXIT_CONFIG = 2
_TRACE_LOGGER = "sscard_terminal.apdu.trace"
_EXIT_FAILED = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sscard_terminal.local_api",
        description="Serve the unified reader interface (iReadCardBas, the HSM two-step) "
                    "as JSON on a Unix socket and, opt-in, on a loopback HTTP/WebSocket "
                    "bridge for HIS front-ends. Protocol and security: docs/local-api.md.",
        epilog="Example: python -m sscard_terminal.local_api "
               "--socket /run/sscard-terminald/api.sock --reader 'Virtual PCD 00 00' "
               "--psam 'Virtual PCD 00 01'\n"
               "         python -m sscard_terminal.local_api --socket /tmp/api.sock "
               "--reader sim:gen2-adult --http-port 8765 --token-file token "
               "--allow-origin http://his.example",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--socket", type=Path, required=True, metavar="PATH",
                        help="Unix socket to create (mode 0660)")
    parser.add_argument("--http-port", type=int, metavar="N",
                        help="also serve HTTP POST and WebSocket on 127.0.0.1:N")
    parser.add_argument("--token-file", type=Path, metavar="F",
                        help="file holding the bridge's token (required with --http-port)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="O",
                        help="web origin allowed to call the bridge (repeatable), "
                             "e.g. http://his.hospital.local")
    parser.add_argument("--reader", metavar="R",
                        help="the user card's reader (default: the first with a card); "
                             "sim:<holder> for a virtual card")
    modules = parser.add_mutually_exclusive_group()
    modules.add_argument("--psam", metavar="READER", help="reader holding the PSAM")
    modules.add_argument("--no-security-module", action="store_true",
                         help="do not look for a PSAM: generation 3 reads answer -2201 and "
                              "HIS software uses the HSM two-step")
    parser.add_argument("--central", type=Path, metavar="CONFIG",
                        help="central terminal config (JSON): its HSM authenticates "
                             "generation 3 cards when no PSAM can")
    parser.add_argument("--profile", metavar="NAME|FILE",
                        help="deployment profile (default hospital-desk): its code shapes "
                             "for verifyECode and whether a lost or void card's holder data "
                             "is withheld ([identity] withhold_unusable)")
    parser.add_argument("--code-shape", action="append", default=[], metavar="KIND=REGEX",
                        help="an opaque code's shape (national or evoucher) over the "
                             "profile's, e.g. national='ESSC[0-9A-F]{32,128}' (repeatable)")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="the terminal's state directory (journal, denylist): needed, "
                             "with --journal-key, for readIdentity at an identity desk")
    parser.add_argument("--journal-key", type=Path, metavar="FILE",
                        help="the journal's key file (mode 0600)")
    parser.add_argument("--terminal-number", default="", metavar="X", help="终端机编号")
    parser.add_argument("--device-number", default="", metavar="Y", help="终端设备号")
    parser.add_argument("--session-timeout", type=float, default=30.0, metavar="S",
                        help="seconds the card stays connected between HSM Step1 and Step2")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--apdu-trace", action="store_true",
                        help="log every APDU in hex at DEBUG (holds personal data: for a "
                             "technician chasing a card problem, logged at WARNING)")
    return parser


def read_token(path: Path) -> str:
    """The bridge's token from ``path``; a world-readable token file is refused."""
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc}") from exc
    if mode & stat.S_IROTH:
        raise ConfigError(f"{path} is readable by every user: chmod o-r it")
    return token


async def _serve(args: argparse.Namespace, service: CardReaderService,
                 security: HttpSecurity | None, ecode_verifier: ECodeCheck | None,
                 identity: IdentityPresenter | None) -> None:
    api = LocalApi(service, ecode_verifier=ecode_verifier, identity_presenter=identity)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(api.aclose)
        await stack.enter_async_context(UnixSocketServer(api, args.socket))
        if security is not None:
            await stack.enter_async_context(
                LoopbackHttpServer(api, port=args.http_port, security=security))
        await stop.wait()
        _log.info("stopping: releasing the card and removing %s", args.socket)


def _run(args: argparse.Namespace) -> None:
    if args.no_security_module and args.central is not None:
        raise ConfigError("--no-security-module cannot be combined with --central")
    security = None
    if args.http_port is not None:
        if args.token_file is None:
            raise ConfigError("--http-port needs --token-file")
        security = HttpSecurity(read_token(args.token_file), frozenset(args.allow_origin))
    central = (TerminalConfig.from_mapping(TerminalConfig.load_json(args.central))
               if args.central is not None else None)
    profile = load_profile(args.profile or "hospital-desk")
    if (args.state_dir is None) != (args.journal_key is None):
        raise ConfigError("--state-dir and --journal-key go together")
    settings = TerminalSettings(terminal_id=central.terminal_id if central else "",
                                profile=profile, central=central, card_reader=args.reader,
                                psam_reader=args.psam,
                                security_modules=not args.no_security_module,
                                code_shapes=_code_shapes(args.code_shape),
                                state_dir=args.state_dir,
                                journal_key=KeySource(file=args.journal_key)
                                if args.journal_key is not None else None)
    with TerminalRoot(settings) as root:
        authenticator = root.module_chain()
        reader = args.reader
        client = root.central()
        withhold = profile.identity.withhold_unusable

        def opener(deadline: Deadline) -> CardTransport:
            return root.open_card(deadline, reader)

        def status_checker(info: CardInfo, deadline: Deadline) -> CardInfo:
            assert client is not None
            return check_read_status(info, client, deadline, withhold=withhold)

        def ecode_verifier(text: str, deadline: Deadline) -> ECodeVerification:
            return root.verifier().verify(text, deadline=deadline)

        identity: IdentityPresenter | None = None
        if profile.identity.identity_desk and args.state_dir is not None:
            presenter = root.presenter()

            def identity(transport: CardTransport, caller: str) -> IdentityPresentation:
                return presenter.present_identity(transport, arrived_at=time.monotonic(),
                                                  caller=caller, lane="desk")

        service = CardReaderService(
            opener, authenticator=authenticator,
            status_checker=status_checker if client is not None else None,
            settings=CardSettings(terminal_number=args.terminal_number,
                                  device_number=args.device_number,
                                  hsm_session_timeout_s=args.session_timeout))
        asyncio.run(_serve(args, service, security, ecode_verifier, identity))


def _code_shapes(values: Sequence[str]) -> dict[str, str]:
    shapes: dict[str, str] = {}
    for value in values:
        kind, sep, pattern = value.partition("=")
        if not sep or not pattern:
            raise ConfigError(f"--code-shape {value!r}: give KIND=REGEX")
        shapes[kind.strip()] = pattern
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The APDU trace carries card data (names, ID numbers in hex): --log-level DEBUG
    # alone must not turn it on, as `sscard -v` does not (-vv does).
    logging.getLogger(_TRACE_LOGGER).setLevel(logging.DEBUG if args.apdu_trace
                                              else logging.INFO)
    if args.apdu_trace:
        _log.warning("APDU trace on: the log will hold personal data in hex")
    try:
        _run(args)
    except ConfigError as exc:
        _log.error("%s", exc)
        return _EXIT_CONFIG
    except SscardError as exc:
        _log.error("%s", exc)
        return _EXIT_FAILED
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
