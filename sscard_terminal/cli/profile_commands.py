"""``sscard profile list | show NAME | check FILE``: the shipped profiles, one resolved with
its defaults, and a deployment's own file checked with errors that name the key."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..ecode.recognise import CodeKind
from ..profile_rules import IdentityRelease
from ..profiles import (
    BUILTIN_PROFILES,
    PROFILE_ALIASES,
    ECodeKind,
    Profile,
    load_profile,
    load_profile_file,
)

_FMT = argparse.RawDescriptionHelpFormatter


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``profile list|show|check`` to the CLI."""
    group = sub.add_parser(
        "profile", help="list, show and check deployment profiles",
        description="Deployment profiles say what a terminal decides, how fast, and what it "
                    "does offline (docs/decision.md). List the shipped ones, show one with "
                    "every default filled in, or check a file of your own (exit code 17 "
                    "with the file, the key and why when it is broken).",
        epilog="Example: sscard profile check /etc/sscard/my-bus.toml", formatter_class=_FMT)
    psub = group.add_subparsers(dest="profile_command", metavar="ACTION", required=True)
    p = psub.add_parser("list", help="the shipped profiles, one line each",
                        description="The shipped profiles, one line each, with the scenario "
                                    "names merged into them.",
                        epilog="Example: sscard profile list", formatter_class=_FMT)
    p.set_defaults(func=_list)
    p = psub.add_parser("show", help="one profile, resolved with its defaults",
                        description="One profile (a shipped name, a merged scenario's name or "
                                    "a file) with every key, defaults included.",
                        epilog="Example: sscard profile show hotel-registration --json",
                        formatter_class=_FMT)
    p.add_argument("name", metavar="NAME|FILE")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_show)
    p = psub.add_parser("check", help="check a profile file",
                        description="Load and validate a profile file: OK and a summary, or "
                                    "the error naming the file and the key (exit code 17). "
                                    "Warns when an online-only code kind is accepted without "
                                    "a shape to recognise it.",
                        epilog="Example: sscard profile check profiles/bus-validator.toml",
                        formatter_class=_FMT)
    p.add_argument("file", type=Path, metavar="FILE")
    p.set_defaults(func=_check)


def _list(args: argparse.Namespace) -> int:
    for name in BUILTIN_PROFILES:
        profile = load_profile(name)
        merged = sorted(alias for alias, target in PROFILE_ALIASES.items() if target == name)
        also = f" (also: {', '.join(merged)})" if merged else ""
        print(f"{name:<16} {profile.application.value:<9} {profile.description}{also}")
    return 0


def resolved(profile: Profile) -> dict[str, Any]:
    """Every setting of ``profile``, defaults included, as JSON-ready values."""
    return {
        "name": profile.name, "description": profile.description, "source": profile.source,
        "application": profile.application.value,
        "timing": {"budget_ms": profile.budget_ms,
                   "offline_reserve_ms": profile.offline_reserve_ms},
        "offline": {"policy": profile.offline_policy.value,
                    "max_decisions": profile.max_offline_decisions,
                    "max_denylist_age_hours": profile.max_denylist_age_hours,
                    "entitlement_cache_hours": profile.entitlement_cache_hours},
        "anti_passback": {"default_seconds": profile.anti_passback_seconds,
                          "by_card_type": dict(profile.anti_passback_by_type),
                          "torn_window_seconds": profile.torn_window_seconds},
        "concessions": {e.value: fare for e, fare in profile.concessions.items()},
        "age_concessions": {
            "from_age": {e.value: a for e, a in profile.age_concessions.from_age.items()},
            "below_age": {e.value: a for e, a in profile.age_concessions.below_age.items()}},
        "ecode": {"kinds": sorted(k.value for k in profile.ecode_kinds),
                  "opaque_offline": profile.opaque_offline.value,
                  "shapes": [{"kind": s.kind.value, "pattern": s.pattern.pattern,
                              "max_length": s.max_length, "verifier": s.verifier}
                             for s in profile.code_shapes]},
        "regions": {"local": list(profile.regions.local) or "all",
                    "elsewhere": profile.regions.elsewhere.value},
        "authentication": {"unauthenticated": profile.authentication.unauthenticated.value},
        "identity": {"release": profile.identity.release.value,
                     "require_authenticated": profile.identity.require_authenticated,
                     "offline": profile.identity.offline,
                     "withhold_unusable": profile.identity.withhold_unusable},
        "renewal": {"notice_months": profile.renewal.notice_months,
                    "after_expiry": profile.renewal.after_expiry.value},
        "journal": {"max_records": profile.journal.max_records,
                    "max_age_hours": profile.journal.max_age_hours,
                    "max_disk_mb": profile.journal.max_disk_mb,
                    "when_full": profile.journal.when_full.value,
                    "synchronous": profile.journal.synchronous},
    }


def _print_tree(data: dict[str, Any], indent: str = "") -> None:
    for key, value in data.items():
        if isinstance(value, dict) and value:
            print(f"{indent}{key}:")
            _print_tree(value, indent + "  ")
        else:
            print(f"{indent}{key + ':':<26} {value if value not in ({}, []) else '-'}")


def _show(args: argparse.Namespace) -> int:
    data = resolved(load_profile(args.name))
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        _print_tree(data)
    return 0


def warnings(profile: Profile) -> list[str]:
    """What is valid but probably not meant: an online-only kind with no shape to
    recognise it, complete identity without an authenticated read."""
    found = []
    shaped = {shape.kind for shape in profile.code_shapes}
    for kind in sorted(profile.ecode_kinds, key=lambda k: k.value):
        if kind is not ECodeKind.OURS and CodeKind(kind.value) not in shaped:
            found.append(f"ecode.kinds accepts {kind.value} codes but no [[ecode.shapes]] "
                         "recognises them: set the province's shape here or in the "
                         "terminal's code_shapes")
    if (profile.identity.release is IdentityRelease.COMPLETE
            and not profile.identity.require_authenticated):
        found.append("identity.release is complete but identity.require_authenticated is "
                     "false: a clone's copied free items could be released as an identity")
    return found


def _check(args: argparse.Namespace) -> int:
    profile = load_profile_file(args.file)
    print(f"OK {args.file}: {profile.name} ({profile.application.value}), budget "
          f"{profile.budget_ms} ms, offline {profile.offline_policy.value}")
    for warning in warnings(profile):
        print(f"warning: {warning}")
    return 0
