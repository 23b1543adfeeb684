"""``sscard`` commands of the card path: readers, atr, apdu, read, watch."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from ..apdu import ApduProcessor, describe_sw
from ..apdu.transport import CardTransport
from ..cards.atr import decode_atr, identify_atr
from ..cards.card_info import CardInfo
from ..cards.ssse import read_card_info
from ..cards.unified import format_basic_info
from ..deadline import Deadline
from ..drivers.pcsc import ReaderEventKind, ReaderMonitor, list_readers
from ..drivers.sim import is_sim_reader, open_sim_reader, sim_readers
from ..errors import ConfigError, ReaderUnavailableError
from ..privacy import mask_card_number, mask_id_number, mask_name
from ..terminal.card_access import open_user_card
from ..terminal.read_status import check_read_status
from ..terminal.root import TerminalRoot
from ..terminal.settings import TerminalSettings
from .exit_codes import ExitCode

_log = logging.getLogger("sscard_terminal.cli.card")

_FMT = argparse.RawDescriptionHelpFormatter


def _add(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str,
         description: str, example: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=help_, description=description,
                          epilog=f"Example: {example}", formatter_class=_FMT)


def _reader_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reader", metavar="NAME",
                        help="reader name, unique prefix, or sim:<holder> (default: first "
                        "reader with a card)")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds to wait for a card (default 5)")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the CLI."""
    p = _add(sub, "readers", "list card readers and their state",
             "List the PC/SC readers pcscd knows, with card state and ATR, and the "
             "simulated sim: readers (cards and PSAMs). Exit code 18 when pcscd cannot be "
             "reached.", "sscard readers")
    p.set_defaults(func=_readers)

    p = _add(sub, "atr", "show and decode the card's ATR",
             "Connect to the card and decode its answer to reset (TS, T0, interface bytes, "
             "protocols, historical bytes, TCK), with what our ATR table knows of it.",
             "sscard atr --reader 'Virtual PCD 00 00'")
    _reader_arg(p)
    p.set_defaults(func=_atr)

    p = _add(sub, "apdu", "send one raw APDU and show the answer",
             "Send a hex APDU to the card (61XX/6CXX handled) and print the response data "
             "and the status word with its meaning. The answer may hold personal data.",
             "sscard apdu 00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
    p.add_argument("hex", help="the command APDU in hex (spaces allowed)")
    _reader_arg(p)
    p.set_defaults(func=_apdu)

    p = _add(sub, "read", "read the social security card (masked by default)",
             "Read EF05/EF06 of the social security application. Personal data is masked "
             "unless --unmask is given (logged at WARNING). Generation 3 cards need a "
             "security module: a PSAM (--psam READER, or found among the other readers) "
             "or, when there is none or it cannot serve the card, the central HSM "
             "two-step (--central CONFIG). The output says which module authenticated "
             "(psam:<reader> or hsm:central). Without one the free items are shown and the "
             "read is marked incomplete (exit code 10). With --central the read also "
             "carries the card's status from the central (Hainan §32), or says it is "
             "unknown (offline); a lost, void, suspended, expired or unknown card exits 21 "
             "with its holder data withheld.",
             "sscard read --reader sim:gen2-adult --json\n"
             "         sscard read --reader sim:gen3-adult --psam sim:psam\n"
             "         sscard read --reader 'Virtual PCD 00 00' --central terminal.json\n"
             "Config file: JSON with base_url, terminal_id, secret, central_public_key and "
             "optionally ca_file, client_cert, client_key (as `central-sim terminal-config` "
             "prints).")
    _reader_arg(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--unmask", action="store_true",
                   help="show personal data in clear (logged as a technician's opt-in)")
    p.add_argument("--psam", metavar="READER",
                   help="reader holding the PSAM (sim:psam: the simulated one, no pcscd)")
    p.add_argument("--central", type=Path, metavar="CONFIG",
                   help="terminal config JSON (base_url, terminal_id, secret, ...) of the "
                   "central whose HSM authenticates generation 3 cards when no PSAM can")
    p.add_argument("--no-security-module", action="store_true",
                   help="do not look for a PSAM or HSM (generation 3: free items only)")
    p.add_argument("--show-unusable", action="store_true",
                   help="with --central: show the holder data of a card the central reports "
                   "lost, void, suspended or expired (withheld by default)")
    p.add_argument("--unified", action="store_true",
                   help="print the unified interface's iReadCardBas string, masked like "
                   "every other output unless --unmask is given (HIS software gets it in "
                   "clear through the SDK or the local API, not from a terminal screen)")
    p.add_argument("--pan", action="store_true", help="also read the bank PAN")
    p.add_argument("--terminal-number", default="", help="终端机编号 for --unified")
    p.add_argument("--device-number", default="", help="终端设备号 for --unified")
    p.set_defaults(func=_read)

    p = _add(sub, "watch", "show reader and card events live",
             "Print reader added/removed, card inserted/removed and pcscd lost/back events "
             "as they happen, until Ctrl-C, --count events or --seconds.",
             "sscard watch --seconds 10")
    p.add_argument("--reader", metavar="NAME",
                   help="only this reader's events (name or prefix; sim:<name> watches a "
                   "simulated reader, which holds its card from the start)")
    p.add_argument("--count", type=int, default=0, help="stop after N events")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after S seconds")
    p.set_defaults(func=_watch)


def _readers(args: argparse.Namespace) -> int:
    """PC/SC readers, then simulated ones. Exit 18 only when no reader at all can be
    used: with pcscd down but ``sim:`` readers listed, the listed readers work."""
    pcscd_down = False
    try:
        readers = list_readers()
    except ReaderUnavailableError as exc:
        print(f"PC/SC readers unavailable: {exc}")
        readers = []
        pcscd_down = True
    for reader in readers:
        atr = f"  ATR {reader.atr.hex(' ').upper()}" if reader.atr else ""
        print(f"{reader.name}\t{reader.state}{atr}")
    if not readers and not pcscd_down:
        print("no PC/SC readers")
    simulated = sim_readers()
    for sim in simulated:
        print(f"{sim.name}\tsimulated {sim.kind} present")
    return ExitCode.READER_UNAVAILABLE if not readers and not simulated else ExitCode.OK


def _atr(args: argparse.Namespace) -> int:
    with _open_reader(args) as transport:
        atr = transport.atr
        print(f"reader     {transport.reader_name}")
        print(f"interface  {transport.interface.value}")
    try:
        for line in decode_atr(atr).describe():
            print(line)
    except ValueError as exc:
        print(f"ATR        {atr.hex(' ').upper()} (cannot decode: {exc})")
    known = identify_atr(atr)
    if known is None:
        print("known as   not in our ATR table")
    else:
        print(f"known as   {known.description}; vendor {known.vendor or 'unknown'}; "
              f"generation {known.generation or 'unknown'}")
    return 0


def _apdu(args: argparse.Namespace) -> int:
    try:
        raw = bytes.fromhex(args.hex.replace(" ", ""))
    except ValueError:
        # Wrong arguments, like any other argparse refusal: exit 2, not a config error.
        print(f"sscard apdu: not a hex APDU: {args.hex!r} (example: 00A4040000)",
              file=sys.stderr)
        return ExitCode.USAGE
    with _open_reader(args) as transport:
        response = ApduProcessor(transport).send_raw(raw)
    print(f"data {response.data.hex(' ').upper() or '-'}")
    print(f"SW   {response.sw:04X} {describe_sw(response.sw)}")
    return 0


def _read(args: argparse.Namespace) -> int:
    if args.no_security_module and (args.psam or args.central):
        raise ConfigError("--no-security-module cannot be combined with --psam or --central")
    unmask = bool(args.unmask)
    if unmask:
        _log.warning("personal data shown unmasked at the operator's request (--unmask)")
    deadline = Deadline.after(args.timeout)
    settings = TerminalSettings.for_reading(central_config=args.central,
                                            card_reader=args.reader, psam_reader=args.psam,
                                            security_modules=not args.no_security_module)
    # The root closes the module chain (its PSAM connection), then the central client,
    # whatever happens; the card is released first.
    with TerminalRoot(settings) as root:
        # With no card reader named, the PSAM is found first, so that its slot is never
        # taken for the user's card (open_card excludes it).
        with root.open_card(deadline) as transport:
            chain = root.module_chain()
            info = read_card_info(transport, authenticator=chain, read_pan=args.pan)
        fallback = chain.last_fallback_code if chain is not None else None
        client = root.central()
        if client is not None:
            info = check_read_status(info, client, deadline, withhold=not args.show_unusable)
    if args.unified:
        shown = info if unmask else masked_copy(info)
        print(format_basic_info(shown, terminal_number=args.terminal_number,
                                device_number=args.device_number))
    elif args.json:
        data = info.to_dict(unmask=unmask)
        data["security_module_fallback_code"] = fallback
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        _print_info(info.to_dict(unmask=unmask), fallback)
    status = info.card_status
    if status is not None and status.online and not status.usable:
        print(f"CARD NOT USABLE: {status.message}", file=sys.stderr)
        return ExitCode.CARD_NOT_USABLE
    # The free items were printed, but a script must be able to tell a partial read.
    return ExitCode.OK if info.complete else ExitCode.INCOMPLETE_READ


def _open_reader(args: argparse.Namespace) -> CardTransport:
    """The card for the diagnostics commands (atr, apdu): no security module needed."""
    return open_user_card(args.reader, Deadline.after(args.timeout))


def masked_copy(info: CardInfo) -> CardInfo:
    """The read with name, ID number and card number masked (for the unified string on a
    screen: its field order stays, so a technician can still check the layout)."""
    return dataclasses.replace(info, name=mask_name(info.name),
                               social_security_number=mask_id_number(
                                   info.social_security_number),
                               card_number=mask_card_number(info.card_number))


def _print_info(data: dict[str, Any], fallback: int | None = None) -> None:
    for key, value in data.items():
        # The module is printed once, below, with its fallback; warnings as sentences.
        if value in (None, "", []) or key in ("authenticated_by", "warnings",
                                              "incomplete_reason"):
            continue
        shown = value
        if key == "card_status":
            shown = f"{value['status']} ({'online' if value['online'] else 'OFFLINE'}): " \
                    f"{value['message']}"
        elif isinstance(value, dict):
            verdict = {True: "ok", False: "WRONG", None: "n/a"}[value["valid"]]
            shown = f"{value['rule']} {verdict}"
        print(f"{key:<28} {shown}")
    for warning in data["warnings"]:
        print(f"{'warning':<28} {warning}")
    if not data["complete"]:
        print(f"INCOMPLETE: {data['incomplete_reason']}")
        return
    module = data["authenticated_by"] or "none needed"
    if data["authenticated_by"] and fallback is not None:
        module += f" (the PSAM could not serve the card: {fallback})"
    print(f"{'security module':<28} {module}")


def _watch(args: argparse.Namespace) -> int:
    """Reader events until --count or --seconds. pcscd unreachable at the start is an
    error (exit 18), not an event; once watching, pcscd lost/back are events."""
    if args.reader is not None and is_sim_reader(args.reader):
        return _watch_sim(args)
    end = time.monotonic() + args.seconds if args.seconds > 0 else None
    seen = 0
    with ReaderMonitor() as monitor:
        while end is None or time.monotonic() < end:
            wait = 0.5 if end is None else max(0.0, min(0.5, end - time.monotonic()))
            event = monitor.get(wait)
            if event is None:
                continue
            if seen == 0 and event.kind is ReaderEventKind.READER_LOST:
                raise ReaderUnavailableError(
                    "cannot reach pcscd (is it running? 'systemctl start pcscd.socket'); "
                    "sim: readers are watched with --reader sim:<name>")
            if args.reader is not None and event.reader not in (args.reader, "pcscd") \
                    and not event.reader.startswith(args.reader):
                continue
            atr = f" ATR {event.atr.hex().upper()}" if event.atr else ""
            print(f"{event.kind.value}\t{event.reader}{atr}", flush=True)
            seen += 1
            if args.count and seen >= args.count:
                break
    return 0


def _watch_sim(args: argparse.Namespace) -> int:
    """A simulated reader always holds its card: one card-inserted event, then quiet."""
    with open_sim_reader(args.reader) as transport:
        print(f"{ReaderEventKind.CARD_INSERTED.value}\t{transport.reader_name} "
              f"ATR {transport.atr.hex().upper()}", flush=True)
    if args.count == 1:
        return 0
    end = time.monotonic() + args.seconds if args.seconds > 0 else None
    while end is None or time.monotonic() < end:
        time.sleep(0.5 if end is None else max(0.0, min(0.5, end - time.monotonic())))
    return 0
