"""The parts of a profile that carry the regulations' rules beside timing and fares:
which cards count as local, whether an unauthenticated card may pass, what identity a desk
may release, what happens near and after a card's expiry, age-based concessions.

Each is a small frozen value with the default a profile gets when it leaves the table out;
:mod:`sscard_terminal.profiles` reads the TOML and checks every key (naming it in errors).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from .central.models import Entitlement

__all__ = [
    "PROVINCE_CODES",
    "AgeConcessions",
    "AuthenticationPolicy",
    "ElsewherePolicy",
    "IdentityPolicy",
    "IdentityRelease",
    "RegionRules",
    "RenewalPolicy",
    "UnauthenticatedPolicy",
    "region_prefix_problem",
]

PROVINCE_CODES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82",
})
"""The first two digits of every region code GB/T 2260 gives (provinces, autonomous
regions, municipalities, Taiwan, Hong Kong, Macao)."""


def region_prefix_problem(prefix: object) -> str | None:
    """Why ``prefix`` cannot name a region (None when it can): 2 digits (province), 4
    (prefecture) or 6 (county, or a pooling area such as 639900), under a real province."""
    if not isinstance(prefix, str):
        return "must be a string of digits"
    if len(prefix) not in (2, 4, 6) or not prefix.isascii() or not prefix.isdigit():
        return f"{prefix!r} is not a 2-, 4- or 6-digit region code"
    if prefix[:2] not in PROVINCE_CODES:
        return f"{prefix!r}: no province has the code {prefix[:2]}"
    if len(prefix) >= 4 and prefix[2:4] == "00":
        return f"{prefix!r}: a prefecture code is never 00 (give the province, {prefix[:2]})"
    return None


class ElsewherePolicy(enum.Enum):
    """What a card from outside the profile's local regions gets (全国通用 / residents only)."""

    FULL_FARE = "full_fare"    # accepted on its status, without local concessions
    REFUSE = "refuse"          # the service is for residents only


@dataclass(frozen=True)
class RegionRules:
    """Which regions are local (同城待遇: concessions apply) and what the rest get.

    ``local`` empty means every region is local (the rule is off).
    """

    local: tuple[str, ...] = ()
    elsewhere: ElsewherePolicy = ElsewherePolicy.FULL_FARE

    def is_local(self, region: str) -> bool:
        """Whether a card or code of ``region`` (6 digits; empty: not known) is local. A
        credential whose region is not known (an opaque code the central vouched for)
        is treated as local: the central that knew it is the local one."""
        if not self.local or not region:
            return True
        return any(region.startswith(prefix) for prefix in self.local)


class UnauthenticatedPolicy(enum.Enum):
    """Whether a card no security module authenticated may be accepted."""

    NEVER = "never"                          # every card must be authenticated
    OLDER_GENERATIONS = "older_generations"  # gen 1/2 (no read authentication) may pass
    ALWAYS = "always"                        # decide from free items (no module at all)


@dataclass(frozen=True)
class AuthenticationPolicy:
    """The profile's answer to a card that no PSAM or HSM authenticated (a generation 3
    card read without a module gives only its free items, which a clone copies)."""

    unauthenticated: UnauthenticatedPolicy = UnauthenticatedPolicy.OLDER_GENERATIONS


class IdentityRelease(enum.Enum):
    """What identity a terminal may release to its local API caller."""

    NONE = "none"
    MASKED = "masked"
    COMPLETE = "complete"     # to the local API caller on this machine that asked


@dataclass(frozen=True)
class IdentityPolicy:
    """An identity desk (hotel registration, exam check-in, government service hall)."""

    release: IdentityRelease = IdentityRelease.NONE
    require_authenticated: bool = False    # a complete read through PSAM or HSM
    offline: bool = True                   # may identity be released without the central
    withhold_unusable: bool = True         # a desk read of a lost/void card: no holder data

    @property
    def identity_desk(self) -> bool:
        return self.release is not IdentityRelease.NONE


class AfterExpiry(enum.Enum):
    REFUSE = "refuse"
    ACCEPT_WITH_NOTICE = "accept_with_notice"   # a service that must not be denied


@dataclass(frozen=True)
class RenewalPolicy:
    """The renewal notice before the 10-year validity ends (Wenzhou 2024 五(四)) and the
    answer after it."""

    notice_months: int = 3
    after_expiry: AfterExpiry = AfterExpiry.REFUSE


@dataclass(frozen=True)
class AgeConcessions:
    """Concessions a profile grants from the chip's birth date: ``from_age`` (at least
    this old, e.g. seniors from 60) and ``below_age`` (younger than, e.g. children)."""

    from_age: Mapping[Entitlement, int] = field(default_factory=dict)
    below_age: Mapping[Entitlement, int] = field(default_factory=dict)


__all__ += ["AfterExpiry"]
