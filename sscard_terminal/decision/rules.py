"""The decision rules, as pure functions of what is known about a card.

Online the central's standing is the truth (status, applications, entitlements). Offline
the terminal knows only its denylist, the chip's expiry date and what earlier online
answers taught it; the same reasons come out either way so that a holder, a technician
and the settlement records read one vocabulary (docs/decision.md has the table).
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date

from ..central.models import Application, CardStatus, Entitlement
from ..profiles import OfflinePolicy, Profile

__all__ = [
    "OfflineFacts",
    "Outcome",
    "Reason",
    "Verdict",
    "best_concession",
    "judge_offline",
    "judge_online",
    "reason_for_status",
]


class Outcome(enum.Enum):
    ACCEPT = "accept"
    REFUSE = "refuse"
    DEFER = "defer"     # the desk waits for the central (hospital profile)


class Reason(enum.StrEnum):
    """Why a decision came out as it did. Stable strings: they go to the journal."""

    ACCEPTED = "accepted"
    CARD_LOST = "card_lost"                       # temporary or formal loss report
    CARD_VOID = "card_void"                       # replaced, renewed or cancelled
    CARD_SUSPENDED = "card_suspended"             # misuse, fraud, lending
    CARD_EXPIRED = "card_expired"                 # central status, or chip expiry offline
    CARD_UNKNOWN = "card_unknown"                 # the central does not know the card
    DENYLISTED = "denylisted"                     # on the denylist without a status
    APPLICATION_OFF = "application_off"           # holder switched this application off
    ANTI_PASSBACK = "anti_passback"               # same card again within the window
    OFFLINE_LIMIT = "offline_limit"               # too many offline accepts in a row
    DENYLIST_STALE = "denylist_stale"             # offline, and the denylist is too old
    OFFLINE_NOT_ALLOWED = "offline_not_allowed"   # profile refuses or defers offline
    ECODE_REFUSED = "ecode_refused"               # signature, expiry, replay, format...
    ECODE_KIND_NOT_ACCEPTED = "ecode_kind_not_accepted"
    ONLINE_ONLY_CODE = "online_only_code"         # national / e-voucher code while offline
    CARD_NOT_AUTHENTICATED = "card_not_authenticated"   # no PSAM/HSM vouched, profile says no
    CARD_FROM_ELSEWHERE = "card_from_elsewhere"   # another region's card, residents only here
    IDENTITY_OFFLINE_NOT_ALLOWED = "identity_offline_not_allowed"   # identity desk, offline
    IDENTITY_NOT_AUTHENTICATED = "identity_not_authenticated"   # identity needs PSAM/HSM read


_STATUS_REASONS: Mapping[CardStatus, Reason] = {
    CardStatus.NORMAL: Reason.ACCEPTED,
    CardStatus.TEMPORARY_LOSS: Reason.CARD_LOST,
    CardStatus.FORMAL_LOSS: Reason.CARD_LOST,
    CardStatus.REPLACED: Reason.CARD_VOID,
    CardStatus.RENEWED: Reason.CARD_VOID,
    CardStatus.CANCELLED: Reason.CARD_VOID,
    CardStatus.EXPIRED: Reason.CARD_EXPIRED,
    CardStatus.SUSPENDED: Reason.CARD_SUSPENDED,
    CardStatus.UNKNOWN: Reason.CARD_UNKNOWN,
}


def reason_for_status(status: CardStatus) -> Reason:
    """The refusal reason for a status (``ACCEPTED`` for a usable one)."""
    return _STATUS_REASONS[status]


@dataclass(frozen=True)
class Verdict:
    """The rules' answer before the engine adds timing, anti-passback and bookkeeping."""

    outcome: Outcome
    reason: Reason
    message: str
    concession: Entitlement | None = None
    fare_percent: int = 100
    # What the card is (its entitlements, as the central said or taught the engine):
    # anti-passback asks this, not which concession set the fare.
    card_types: frozenset[Entitlement] = frozenset()
    notices: tuple[str, ...] = ()       # policy.Notice values, for holder and operator


def best_concession(
    profile: Profile, entitlements: Collection[Entitlement]
) -> tuple[Entitlement | None, int]:
    """The entitlement giving the lowest fare under this profile's table, and that fare.

    Ties go to the entitlement listed first in :class:`Entitlement`, so the choice does
    not depend on the order the central happened to send them in.
    """
    best: Entitlement | None = None
    fare = 100
    for entitlement in Entitlement:
        percent = profile.concessions.get(entitlement)
        if entitlement in entitlements and percent is not None and percent < fare:
            best, fare = entitlement, percent
    return best, fare


_CLOCK_SLACK_HOURS = 10 / 60   # wall-clock corrections smaller than this are noise


def _refuse(reason: Reason, message: str) -> Verdict:
    return Verdict(Outcome.REFUSE, reason, message)


def judge_online(
    profile: Profile,
    status: CardStatus,
    applications: Collection[Application],
    entitlements: Collection[Entitlement],
) -> Verdict:
    """Decide from the central's answer: status usable, application switched on."""
    if not status.usable:
        return _refuse(reason_for_status(status), f"central reports the card {status.value}")
    if profile.application not in applications:
        return _refuse(Reason.APPLICATION_OFF,
                       f"the {profile.application.value} application is switched off for this card")
    concession, fare = best_concession(profile, entitlements)
    return Verdict(Outcome.ACCEPT, Reason.ACCEPTED, "accepted online", concession, fare,
                   frozenset(entitlements))


@dataclass(frozen=True)
class OfflineFacts:
    """What the terminal knows about a card without the central."""

    denylisted: bool
    denylist_status: CardStatus | None          # the status the denylist entry gives
    denylist_age_hours: float | None            # None: never installed
    chip_expiry: date | None
    today: date
    cached_applications: Collection[Application] | None   # None: nothing cached
    cached_entitlements: Collection[Entitlement]
    offline_accepts_in_row: int


def judge_offline(profile: Profile, facts: OfflineFacts) -> Verdict:
    """Decide without the central: refusals first (they never need the central), then
    whether this profile may accept at all while offline, then its limits."""
    if facts.denylisted:
        status = facts.denylist_status
        if status is None or status.usable:
            return _refuse(Reason.DENYLISTED, "card is on the local denylist")
        return _refuse(reason_for_status(status), f"denylist reports the card {status.value}")
    if facts.chip_expiry is not None and facts.chip_expiry < facts.today:
        return _refuse(Reason.CARD_EXPIRED, "the chip's expiry date has passed")
    known_apps = facts.cached_applications
    if known_apps is not None and profile.application not in known_apps:
        return _refuse(Reason.APPLICATION_OFF,
                       f"the {profile.application.value} application is switched off for this card")
    if profile.offline_policy is not OfflinePolicy.ACCEPT:
        deferring = profile.offline_policy is OfflinePolicy.DEFER
        outcome = Outcome.DEFER if deferring else Outcome.REFUSE
        return Verdict(outcome, Reason.OFFLINE_NOT_ALLOWED, "central unreachable; this "
                       f"profile does not accept offline ({outcome.value})")
    age = facts.denylist_age_hours
    # An install time well ahead of now (the clock was wrong then, or is now) gives no
    # age at all: it would otherwise pass for fresh until the clock caught up.
    if age is None or age > profile.max_denylist_age_hours or age < -_CLOCK_SLACK_HOURS:
        return _refuse(Reason.DENYLIST_STALE, "central unreachable and the denylist is out of date")
    if facts.offline_accepts_in_row >= profile.max_offline_decisions:
        return _refuse(Reason.OFFLINE_LIMIT,
                       f"central unreachable for {facts.offline_accepts_in_row} accepts in a row")
    concession, fare = best_concession(profile, facts.cached_entitlements)
    return Verdict(Outcome.ACCEPT, Reason.ACCEPTED, "accepted offline", concession, fare,
                   frozenset(facts.cached_entitlements))
