"""Deployment profiles: what a bus validator, a library gate, a scenic-spot gate or a
hospital desk decides, how fast, and what it does when the central cannot be reached.

A profile is a TOML file. The four shipped ones live in the repo root ``profiles/``
(installed as the data package ``sscard_profiles``)
and load by name (``load_profile("bus-validator")``); a deployment may point at its own
file instead. Validation is strict because a wrong profile is a wrong fare or an open
gate: an unknown key, a missing key, a wrong type or an out-of-range value raises
:class:`~sscard_terminal.errors.ConfigError` naming the file, the key and why.
"""

from __future__ import annotations

import enum
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from .central.models import Application, Entitlement
from .ecode.recognise import CodeKind, CodeShape, RecognitionProfile
from .errors import ConfigError
from .offline_queue.records import FullBehaviour, JournalLimits
from .profile_rules import (
    AfterExpiry,
    AgeConcessions,
    AuthenticationPolicy,
    ElsewherePolicy,
    IdentityPolicy,
    IdentityRelease,
    RegionRules,
    RenewalPolicy,
    UnauthenticatedPolicy,
    region_prefix_problem,
)

__all__ = [
    "BUILTIN_PROFILES",
    "PROFILE_ALIASES",
    "ECodeKind",
    "JournalFullBehaviour",
    "JournalSettings",
    "OfflinePolicy",
    "Profile",
    "load_profile",
    "load_profile_file",
    "parse_profile",
]

BUILTIN_PROFILES = ("bus-validator", "culture-venue", "hospital-desk", "identity-desk",
                    "library-gate", "metro-gate", "scenic-gate", "sports-venue")

PROFILE_ALIASES: Mapping[str, str] = {
    "pharmacy-counter": "hospital-desk",
    "hotel-registration": "identity-desk",
    "exam-check-in": "identity-desk",
    "government-service-hall": "identity-desk",
    "museum-gate": "culture-venue",
    "library-borrowing": "library-gate",
    "scenic-booking": "scenic-gate",
    "scenic-identity-check": "scenic-gate",
    "scenic-ticket-pickup": "scenic-gate",
}
"""Scenarios the regulations name that are the same decision as a shipped profile (each
file says why): loading one by its own name gives the merged profile."""


class OfflinePolicy(enum.Enum):
    """What a terminal does with a credential that passes the local rules while offline."""

    ACCEPT = "accept"   # decide from the denylist and rules (validators, gates)
    DEFER = "defer"     # hold the holder at the desk until the central answers (hospital)
    REFUSE = "refuse"   # never accept without the central


class ECodeKind(enum.Enum):
    """The kinds of QR credential a terminal may meet (see codes.md)."""

    OURS = "ours"           # our signed, offline-verifiable format
    NATIONAL = "national"   # the national electronic social security card (online only)
    EVOUCHER = "evoucher"   # the medical insurance electronic voucher (online only)


class JournalFullBehaviour(enum.Enum):
    """What happens when the offline journal reaches its limits (issue 4)."""

    REFUSE = "refuse"   # refuse new offline transactions: no evidence, no acceptance
    ALARM = "alarm"     # keep accepting and raise an alarm


@dataclass(frozen=True)
class JournalSettings:
    """Limits of the offline journal and how durable each enqueue is."""

    max_records: int
    max_age_hours: int
    max_disk_mb: int
    when_full: JournalFullBehaviour
    synchronous: str   # "FULL" (default, survives power loss) or "NORMAL" (may lose the tail)

    def limits(self) -> JournalLimits:
        """The offline journal's limits as :meth:`Journal.open` takes them."""
        return JournalLimits(
            max_records=self.max_records,
            max_age_s=self.max_age_hours * 3600.0,
            max_disk_bytes=self.max_disk_mb * 1024 * 1024,
            when_full=FullBehaviour(self.when_full.value),
        )


@dataclass(frozen=True)
class Profile:
    """One deployment's decision settings, validated."""

    name: str
    description: str
    source: str                                   # file the profile came from
    application: Application
    budget_ms: int                                # whole decision, tap to answer
    offline_reserve_ms: int                       # kept back from the online call
    offline_policy: OfflinePolicy
    max_offline_decisions: int                    # accepted in a row without the central
    max_denylist_age_hours: int                   # older denylist: offline cannot accept
    entitlement_cache_hours: int                  # how long online entitlements serve offline
    anti_passback_seconds: int                    # default window, 0 = off
    anti_passback_by_type: Mapping[str, int]      # per card type (entitlement held)
    torn_window_seconds: int                      # re-tap replays the earlier result
    concessions: Mapping[Entitlement, int]        # entitlement -> fare percent (0 = free)
    ecode_kinds: frozenset[ECodeKind]             # kinds this terminal accepts
    opaque_offline: OfflinePolicy                 # online-only codes while offline
    journal: JournalSettings
    code_shapes: tuple[CodeShape, ...] = ()       # opaque codes' shapes ([[ecode.shapes]])
    regions: RegionRules = field(default_factory=RegionRules)
    authentication: AuthenticationPolicy = field(default_factory=AuthenticationPolicy)
    identity: IdentityPolicy = field(default_factory=IdentityPolicy)
    renewal: RenewalPolicy = field(default_factory=RenewalPolicy)
    age_concessions: AgeConcessions = field(default_factory=AgeConcessions)
    gate_open_ms: int = 3000                      # how long a gate stays open on an accept

    def recognition(self) -> RecognitionProfile:
        """The code shapes this profile recognises (our prefix is always known)."""
        return RecognitionProfile(self.code_shapes)

    def anti_passback_for(self, card_types: Collection[Entitlement]) -> int:
        """The anti-passback window for a card of these types (its entitlements), or the
        profile's default when none of them has a window of its own.

        Which types a card has is a different question from which concession sets its
        fare: a volunteer at a gate that gives volunteers no discount still goes in and out
        on duty. A card with several types that have windows gets the shortest, the one
        its holder was explicitly allowed (the order the central lists them in must not
        change the answer).
        """
        windows = [self.anti_passback_by_type[t.value] for t in card_types
                   if t.value in self.anti_passback_by_type]
        return min(windows) if windows else self.anti_passback_seconds


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a shipped profile by name (or by the name of a scenario merged into one, see
    :data:`PROFILE_ALIASES`), or a profile file by path."""
    if isinstance(name_or_path, str) and name_or_path in PROFILE_ALIASES:
        name_or_path = PROFILE_ALIASES[name_or_path]
    if isinstance(name_or_path, str) and name_or_path in BUILTIN_PROFILES:
        resource = resources.files("sscard_profiles").joinpath(f"{name_or_path}.toml")
        return parse_profile(resource.read_text(encoding="utf-8"), source=f"{name_or_path}.toml")
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        known = ", ".join((*BUILTIN_PROFILES, *PROFILE_ALIASES))
        raise ConfigError(f"unknown profile {str(name_or_path)!r}: use one of {known} or a path")
    return load_profile_file(path)


def load_profile_file(path: Path) -> Profile:
    """Load and validate one profile file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read profile: {exc}") from exc
    return parse_profile(text, source=str(path))


def parse_profile(text: str, *, source: str) -> Profile:
    """Parse and validate profile TOML; ``source`` names the file in every error."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    return _Reader(source, data).profile()


_E = TypeVar("_E", bound=enum.Enum)
_T = TypeVar("_T")


class _Reader:
    """Walks the TOML tables, checking each key once and naming it in errors."""

    _LAYOUT: Mapping[str, frozenset[str]] = {
        "profile": frozenset({"name", "description", "application"}),
        "timing": frozenset({"budget_ms", "offline_reserve_ms"}),
        "offline": frozenset({"policy", "max_decisions", "max_denylist_age_hours",
                              "entitlement_cache_hours"}),
        "anti_passback": frozenset({"default_seconds", "by_card_type", "torn_window_seconds"}),
        "concessions": frozenset(e.value for e in Entitlement),
        "ecode": frozenset({"kinds", "opaque_offline", "shapes"}),
        "journal": frozenset({"max_records", "max_age_hours", "max_disk_mb", "when_full",
                              "synchronous"}),
        "regions": frozenset({"local", "elsewhere"}),
        "authentication": frozenset({"unauthenticated"}),
        "identity": frozenset({"release", "require_authenticated", "offline",
                               "withhold_unusable"}),
        "renewal": frozenset({"notice_months", "after_expiry"}),
        "gate": frozenset({"open_ms"}),
        "age_concessions": frozenset({"from_age", "below_age"}),
    }
    _OPTIONAL = frozenset({"gate", "regions", "authentication", "identity", "renewal",
                           "age_concessions"})

    def __init__(self, source: str, data: Mapping[str, Any]) -> None:
        self.source = source
        self.data = data
        self.profile_concessions: Mapping[Entitlement, int] = {}

    def fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.source}: key {key!r}: {why}")

    def table(self, name: str) -> Mapping[str, Any]:
        value = self.data.get(name)
        if value is None and name in self._OPTIONAL:
            return {}
        if not isinstance(value, dict):
            raise self.fail(name, "missing table" if value is None else "must be a table")
        allowed = self._LAYOUT[name]
        for key in value:
            if key not in allowed:
                raise self.fail(f"{name}.{key}",
                                f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def get(self, table: str, key: str, kind: type[_T], default: _T | None = None) -> _T:
        value = self.table(table).get(key)
        if value is None and default is not None:
            return default
        if value is None:
            raise self.fail(f"{table}.{key}", "missing")
        # bool is an int in Python; a profile saying `budget_ms = true` is a mistake.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(f"{table}.{key}",
                            f"must be {kind.__name__}, got {type(value).__name__}")
        return value

    def number(self, table: str, key: str, low: int, high: int) -> int:
        value = self.get(table, key, int)
        if not low <= value <= high:
            raise self.fail(f"{table}.{key}", f"{value} is outside {low}..{high}")
        return value

    def choice(self, table: str, key: str, enum_type: type[_E], value: object = None,
               default: _E | None = None) -> _E:
        if value is None and default is not None and key not in self.table(table):
            return default
        raw = self.get(table, key, str) if value is None else value
        try:
            return enum_type(raw)
        except ValueError:
            allowed = ", ".join(str(e.value) for e in enum_type)
            raise self.fail(f"{table}.{key}", f"{raw!r} is not one of {allowed}") from None

    def kinds(self, key: str) -> frozenset[ECodeKind]:
        raw = self.get("ecode", key, list)
        return frozenset(self.choice("ecode", key, ECodeKind, item) for item in raw)

    def shapes(self) -> tuple[CodeShape, ...]:
        raw = self.table("ecode").get("shapes", [])
        if not isinstance(raw, list):
            raise self.fail("ecode.shapes", "must be an array of tables ([[ecode.shapes]])")
        shapes = []
        allowed = {"kind", "pattern", "max_length", "verifier"}
        for index, item in enumerate(raw):
            key = f"ecode.shapes[{index}]"
            if not isinstance(item, dict):
                raise self.fail(key, "must be a table with kind, pattern, max_length, verifier")
            for name in item:
                if name not in allowed:
                    raise self.fail(f"{key}.{name}",
                                    f"unknown key (allowed: {', '.join(sorted(allowed))})")
            kind_raw = item.get("kind")
            try:
                kind = CodeKind(kind_raw)
            except ValueError:
                raise self.fail(f"{key}.kind", f"{kind_raw!r} is not national or evoucher") \
                    from None
            try:
                shape = CodeShape.parse(kind, item.get("pattern", ""),
                                        item.get("max_length", 512),
                                        item.get("verifier", "central"), key=key)
            except ConfigError as exc:
                raise ConfigError(f"{self.source}: key {exc}") from None
            shapes.append(shape)
        return tuple(shapes)

    def regions(self) -> RegionRules:
        table = self.table("regions")
        local = table.get("local", [])
        if not isinstance(local, list):
            raise self.fail("regions.local", "must be a list of region codes")
        for prefix in local:
            problem = region_prefix_problem(prefix)
            if problem is not None:
                raise self.fail("regions.local", problem)
        return RegionRules(tuple(local), self.choice("regions", "elsewhere", ElsewherePolicy,
                                                     default=ElsewherePolicy.FULL_FARE))

    def flag(self, table: str, key: str, default: bool) -> bool:
        value = self.table(table).get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{table}.{key}", f"must be true or false, got {value!r}")
        return value

    def ages(self, key: str) -> dict[Entitlement, int]:
        raw = self.table("age_concessions").get(key, {})
        if not isinstance(raw, dict):
            raise self.fail(f"age_concessions.{key}", "must be a table of ages")
        ages: dict[Entitlement, int] = {}
        for name, age in raw.items():
            try:
                entitlement = Entitlement(name)
            except ValueError:
                allowed = ", ".join(e.value for e in Entitlement)
                raise self.fail(f"age_concessions.{key}.{name}",
                                f"unknown concession (allowed: {allowed})") from None
            whole = isinstance(age, int) and not isinstance(age, bool)
            if not whole or not 1 <= age <= 120:
                raise self.fail(f"age_concessions.{key}.{name}", "must be whole years in 1..120")
            if entitlement not in self.profile_concessions:
                raise self.fail(f"age_concessions.{key}.{name}",
                                f"{name} has no fare in [concessions]")
            ages[entitlement] = age
        return ages

    def identity(self) -> IdentityPolicy:
        return IdentityPolicy(
            release=self.choice("identity", "release", IdentityRelease,
                                default=IdentityRelease.NONE),
            require_authenticated=self.flag("identity", "require_authenticated", False),
            offline=self.flag("identity", "offline", True),
            withhold_unusable=self.flag("identity", "withhold_unusable", True))

    def renewal(self) -> RenewalPolicy:
        months = self.table("renewal").get("notice_months", 3)
        if isinstance(months, bool) or not isinstance(months, int) or not 0 <= months <= 12:
            raise self.fail("renewal.notice_months", "must be whole months in 0..12")
        return RenewalPolicy(months, self.choice("renewal", "after_expiry", AfterExpiry,
                                                 default=AfterExpiry.REFUSE))

    def profile(self) -> Profile:
        for name in self.data:
            if name not in self._LAYOUT:
                raise self.fail(name, f"unknown table (allowed: {', '.join(sorted(self._LAYOUT))})")
        budget = self.number("timing", "budget_ms", 20, 60_000)
        reserve = self.number("timing", "offline_reserve_ms", 0, 60_000)
        if reserve >= budget:
            raise self.fail("timing.offline_reserve_ms",
                            f"{reserve} leaves no time for the online call (budget_ms {budget})")
        by_type_raw = self.table("anti_passback").get("by_card_type", {})
        if not isinstance(by_type_raw, dict):
            raise self.fail("anti_passback.by_card_type", "must be a table of seconds")
        by_type: dict[str, int] = {}
        card_types = {e.value for e in Entitlement}
        for card_type, seconds in by_type_raw.items():
            if card_type not in card_types:
                # A card type is an entitlement the card holds: a misspelt one would
                # silently never match, and its window never apply.
                raise self.fail(f"anti_passback.by_card_type.{card_type}",
                                f"unknown card type (allowed: {', '.join(sorted(card_types))})")
            whole = isinstance(seconds, int) and not isinstance(seconds, bool)
            if not whole or not 0 <= seconds <= 86_400:
                raise self.fail(f"anti_passback.by_card_type.{card_type}",
                                "must be whole seconds in 0..86400")
            by_type[card_type] = seconds
        concessions: dict[Entitlement, int] = {}
        for entitlement in Entitlement:
            if entitlement.value in self.table("concessions"):
                concessions[entitlement] = self.number("concessions", entitlement.value, 0, 100)
        kinds = self.kinds("kinds")
        self.profile_concessions = concessions
        journal = JournalSettings(
            max_records=self.number("journal", "max_records", 1, 100_000_000),
            max_age_hours=self.number("journal", "max_age_hours", 1, 24 * 366),
            max_disk_mb=self.number("journal", "max_disk_mb", 1, 1_000_000),
            when_full=self.choice("journal", "when_full", JournalFullBehaviour),
            synchronous=self.get("journal", "synchronous", str),
        )
        if journal.synchronous not in ("FULL", "NORMAL"):
            raise self.fail("journal.synchronous", f"{journal.synchronous!r} is not FULL or NORMAL")
        opaque_offline = self.choice("ecode", "opaque_offline", OfflinePolicy)
        if opaque_offline is OfflinePolicy.ACCEPT:
            raise self.fail("ecode.opaque_offline",
                            "online-only codes cannot be accepted offline: use refuse or defer")
        return Profile(
            name=self.get("profile", "name", str),
            description=self.get("profile", "description", str),
            source=self.source,
            application=self.choice("profile", "application", Application),
            budget_ms=budget,
            offline_reserve_ms=reserve,
            offline_policy=self.choice("offline", "policy", OfflinePolicy),
            max_offline_decisions=self.number("offline", "max_decisions", 0, 10_000_000),
            max_denylist_age_hours=self.number("offline", "max_denylist_age_hours", 1, 24 * 366),
            entitlement_cache_hours=self.number("offline", "entitlement_cache_hours", 0, 24 * 366),
            anti_passback_seconds=self.number("anti_passback", "default_seconds", 0, 86_400),
            anti_passback_by_type=by_type,
            torn_window_seconds=self.number("anti_passback", "torn_window_seconds", 0, 3_600),
            concessions=concessions,
            ecode_kinds=kinds,
            opaque_offline=opaque_offline,
            journal=journal,
            code_shapes=self.shapes(),
            regions=self.regions(),
            authentication=AuthenticationPolicy(self.choice(
                "authentication", "unauthenticated", UnauthenticatedPolicy,
                default=UnauthenticatedPolicy.OLDER_GENERATIONS)),
            identity=self.identity(),
            renewal=self.renewal(),
            age_concessions=AgeConcessions(self.ages("from_age"), self.ages("below_age")),
            gate_open_ms=self.gate_open_ms(),
        )

    def gate_open_ms(self) -> int:
        value = self.table("gate").get("open_ms", 3000)
        if isinstance(value, bool) or not isinstance(value, int) or not 200 <= value <= 60_000:
            raise self.fail("gate.open_ms", "must be whole milliseconds in 200..60000")
        return value
