"""``sscard verify``: judge one e-code offline and, if a central answers, online.

The verification options are shared with ``sscard scan`` (scan_commands.py), which
verifies every code it reads the same way.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..central.client import TerminalConfig
from ..deadline import Deadline
from ..ecode import SIMULATOR_SHAPES, ECodeVerification, ECodeVerifier, Reason
from ..errors import ConfigError
from ..messages import MessageKind, bilingual
from ..profiles import load_profile
from ..terminal.root import TerminalRoot
from ..terminal.settings import TerminalSettings
from .exit_codes import ExitCode

__all__ = ["add_verification_options", "build_verifier", "describe", "register",
           "shorten"]

_RAW = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the CLI."""
    verify = sub.add_parser(
        "verify", help="verify one e-code (offline, and online if a central answers)",
        description="Verify one e-code. Our signed codes (SC1:...) are checked offline "
        "against the trust list (signature, validity window, key revocation) and, when "
        "--central is given and answers, online for the card's status (the same status "
        "as a tap of the card). National e-card and e-voucher codes are online only. "
        "Output is masked; exit 0 when accepted, 16 when refused or deferred.",
        epilog="Example: sscard verify 'SC1:6BFOXN*TS0...' --central terminal.json "
        "--trust-list /var/lib/sscard-terminald/trust-list.json\n"
        "Offline: sscard verify 'SC1:6BFOXN*TS0...' --trust-list trust.json "
        "--central-key KEY",
        formatter_class=_RAW)
    verify.add_argument("code", metavar="CODE", help="the code text as scanned")
    add_verification_options(verify)
    verify.set_defaults(func=_verify)


def add_verification_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how codes are verified (also used by ``sscard scan``)."""
    parser.add_argument("--central", type=Path, metavar="CONFIG",
                        help="terminal config JSON (base_url, terminal_id, secret, "
                        "central_public_key) for the trust list and online checks")
    parser.add_argument("--trust-list", type=Path, metavar="FILE",
                        help="cached trust list file (the central's signed document): read "
                        "when offline, refreshed from --central when it answers")
    parser.add_argument("--central-key", metavar="KEY",
                        help="the central's public key (base64url, as central_public_key in "
                        "the terminal config) to check --trust-list without --central")
    parser.add_argument("--shape", action="append", default=[], metavar="KIND=REGEX",
                        help="shape of an opaque code kind (national, evoucher); repeatable")
    parser.add_argument("--sim-shapes", action="store_true",
                        help="recognise the central simulator's test national/e-voucher codes")
    parser.add_argument("--opaque", choices=("refuse", "defer"), default=None,
                        help="online-only codes when the central is down (default: the "
                        "profile's ecode.opaque_offline, else refuse)")
    parser.add_argument("--profile", metavar="NAME|FILE",
                        help="a deployment profile: its [[ecode.shapes]] are recognised "
                        "(--shape over them) and its opaque_offline applies")
    parser.add_argument("--skew", type=_seconds, default=30.0, metavar="S",
                        help="clock-skew tolerance in seconds (default 30)")
    parser.add_argument("--timeout", type=_seconds, default=3.0, metavar="S",
                        help="budget per code in seconds (default 3)")
    parser.add_argument("--state-dir", type=Path, metavar="DIR",
                        help="keep the replay cache here, as the terminal does, so a code "
                        "accepted once is refused as replayed on the next run too (without "
                        "it, replay is checked only within this one run)")


def _seconds(text: str) -> float:
    """Seconds for --skew and --timeout: finite and not negative (a ``nan`` skew would
    switch the validity window off, an ``inf`` one accept every expired code)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"must be finite and not negative: {text!r}")
    return value


def build_verifier(args: argparse.Namespace) -> tuple[ECodeVerifier, TerminalRoot]:
    """The verifier the options describe, from the composition root (close the root
    afterwards: it owns the central client and the replay cache)."""
    shapes = dict(SIMULATOR_SHAPES) if args.sim_shapes else {}
    for item in args.shape:
        kind, sep, pattern = item.partition("=")
        if not sep:
            raise ConfigError(f"--shape wants KIND=REGEX, not {item!r}")
        shapes[kind] = pattern
    config = (TerminalConfig.from_mapping(TerminalConfig.load_json(args.central))
              if args.central is not None else None)
    state_dir = getattr(args, "state_dir", None)
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
    profile_name = getattr(args, "profile", None)
    root = TerminalRoot(TerminalSettings(
        terminal_id=config.terminal_id if config else "", central=config,
        profile=load_profile(profile_name) if profile_name else None,
        state_dir=state_dir, trust_list_file=args.trust_list,
        central_public_key=args.central_key, code_shapes=shapes, clock_skew_s=args.skew,
        opaque_policy=args.opaque))
    try:
        return root.verifier(), root
    except BaseException:
        root.close()
        raise


def shorten(text: str, keep: int = 12) -> str:
    """A code for display: its head and length (a code is a bearer credential)."""
    return text if len(text) <= keep else f"{text[:keep]}…[{len(text)} chars]"


# Reasons given only after the signature was checked against the trust list.
_CHECKED_OFFLINE = frozenset({Reason.BAD_SIGNATURE, Reason.EXPIRED, Reason.NOT_YET_VALID,
                              Reason.REPLAYED, Reason.REVOKED_KID, Reason.KEY_OUT_OF_VALIDITY,
                              Reason.BAD_PAYLOAD, Reason.REPLAY_CHECK_FAILED})


def describe(result: ECodeVerification) -> list[str]:
    """Masked, human-readable lines for one verification."""
    verdict = "ACCEPTED" if result.accepted else ("DEFERRED" if result.deferred
                                                  else "REFUSED")
    shown = bilingual(MessageKind.ECODE, result.reason.value)
    if result.online:
        how = "verified online"
    elif result.accepted or result.reason in _CHECKED_OFFLINE:
        how = "verified offline"
    else:
        how = "not verified (refused before its signature was checked)"
    lines = [f"{verdict} ({result.reason.value}): {result.message}",
             f"  {shown['zh']} / {shown['en']}",
             f"  kind: {result.kind.value}; {how}"]
    if result.card_ref:
        lines.append(f"  card_ref: {result.card_ref}  region: {result.region or '-'}")
    card = result.validation
    if card is not None:
        lines.append(f"  card status: {card.status.value} ({card.reason})")
        if card.applications:
            lines.append("  applications: " + ", ".join(sorted(a.value
                                                                for a in card.applications)))
        if card.entitlements:
            lines.append("  entitlements: " + ", ".join(sorted(e.value
                                                                for e in card.entitlements)))
        if card.holder is not None:
            lines.append(f"  holder: {card.holder}")  # HolderIdentity masks itself
    return lines


def _verify(args: argparse.Namespace) -> int:
    verifier, root = build_verifier(args)
    try:
        result = verifier.verify(args.code, deadline=Deadline.after(args.timeout))
    finally:
        root.close()
    print(f"code: {shorten(args.code.strip())}")
    for line in describe(result):
        print(line)
    if result.accepted and args.state_dir is None:
        print("  replay: checked within this run only (give --state-dir DIR to remember "
              "accepted codes between runs, as a terminal does)")
    # The REFUSED line above is the one message for a refusal: no second one on stderr.
    return 0 if result.accepted else ExitCode.ECODE_REFUSED
