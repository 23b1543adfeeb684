"""The profile's regulatory rules applied to a decision: authenticity (issue 22.3) and
cards from elsewhere (issue 22.4, Hainan §3 全国通用, Wenzhou 2024 跨省通用 / 同城待遇).

Pure functions of the profile and the credential, kept apart from the engine's pipeline
so that they read as the rules they are and the engine calls each at one point:

- :func:`judge_authenticity` before anything else (a card no module vouched for must not
  even cost an online call when the profile refuses it);
- :func:`judge_region_first` before the online call (a residents-only service refuses a
  card from elsewhere whatever its status);
- :func:`elsewhere_unknown` when the local central does not know a card from elsewhere
  (not ``card_unknown``: the card is simply not this central's);
- :func:`apply_region` to an accept (no local concession for a card from elsewhere).
"""

from __future__ import annotations

import enum
from dataclasses import replace
from datetime import date

from ..central.models import Channel
from ..profile_rules import AfterExpiry, ElsewherePolicy, UnauthenticatedPolicy
from ..profiles import OfflinePolicy, Profile
from .rules import OfflineFacts, Outcome, Reason, Verdict, reason_for_status

__all__ = [
    "Authentication",
    "Notice",
    "age_on",
    "apply_after_expiry",
    "apply_age_concession",
    "apply_identity_offline",
    "apply_region",
    "apply_renewal_notice",
    "authentication_of",
    "elsewhere_unknown",
    "judge_authenticity",
    "judge_identity_authenticated",
    "judge_region_first",
]


class Authentication(enum.StrEnum):
    """How the credential was shown to be genuine. Stable strings: they are journaled."""

    PSAM = "psam"            # the card's internal authentication through a PSAM
    HSM = "hsm"              # ... through the central's HSM
    NONE = "none"            # no module authenticated the card (free items only)
    SIGNATURE = "signature"  # an e-code of ours: its signature, offline
    CENTRAL = "central"      # an opaque e-code: the central's verifier vouched for it


class Notice(enum.StrEnum):
    """Something the holder or the operator should be told beside the outcome."""

    FROM_ELSEWHERE = "from_elsewhere"        # accepted at the full fare: not local
    RENEWAL_DUE = "renewal_due"              # inside the last months of the validity
    EXPIRED_ACCEPTED = "expired_accepted"    # past its validity, accepted by the profile
    STATUS_UNKNOWN = "status_unknown"        # decided without the central
    CONCESSION_BY_AGE = "concession_by_age"  # the chip's birth date gave the better fare
    IDENTITY_RELEASED = "identity_released"  # identity handed to the local API caller


def authentication_of(authenticated_by: str | None) -> Authentication:
    """From the card reader's ``authenticated_by`` (``psam:<reader>``, ``hsm:central``)."""
    if not authenticated_by:
        return Authentication.NONE
    head = authenticated_by.split(":", 1)[0].lower()
    if head == "psam":
        return Authentication.PSAM
    if head == "hsm":
        return Authentication.HSM
    return Authentication.NONE


def judge_authenticity(profile: Profile, channel: Channel, authentication: Authentication,
                       generation: int | None) -> Verdict | None:
    """A refusal when the profile does not accept this card unauthenticated, else None.

    A clone copies a generation 3 card's free items but cannot pass internal
    authentication: with a module reachable it is refused as forged before it gets here;
    with none (or one that could not serve it) it arrives ``NONE`` and only a profile
    saying ``always`` lets it through. ``older_generations`` accepts generation 1 and 2
    cards (they have no read authentication to run), never a card of unknown generation.
    """
    if channel is Channel.ECODE or authentication is not Authentication.NONE:
        return None
    policy = profile.authentication.unauthenticated
    if policy is UnauthenticatedPolicy.ALWAYS:
        return None
    if (policy is UnauthenticatedPolicy.OLDER_GENERATIONS and generation is not None
            and generation < 3):
        return None
    return Verdict(Outcome.REFUSE, Reason.CARD_NOT_AUTHENTICATED,
                   "no security module authenticated this card (PSAM or HSM needed)")


def judge_region_first(profile: Profile, region: str) -> Verdict | None:
    """A residents-only profile refuses a card or code from elsewhere before anything."""
    rules = profile.regions
    if rules.is_local(region) or rules.elsewhere is not ElsewherePolicy.REFUSE:
        return None
    return Verdict(Outcome.REFUSE, Reason.CARD_FROM_ELSEWHERE,
                   f"cards of region {region} are not served here (residents only)")


def elsewhere_unknown(profile: Profile, region: str, facts: OfflineFacts) -> Verdict | None:
    """The local central does not know a card from elsewhere: judge it as 全国通用 asks
    (its own region's system is the one that knows it), from what the terminal knows:
    the denylist and the chip's expiry. None for a local card (that is ``card_unknown``)."""
    if profile.regions.is_local(region) or not profile.regions.local:
        return None
    if facts.denylisted:
        status = facts.denylist_status
        reason = (Reason.DENYLISTED if status is None or status.usable
                  else reason_for_status(status))
        return Verdict(Outcome.REFUSE, reason, "card from elsewhere is on the local denylist")
    if facts.chip_expiry is not None and facts.chip_expiry < facts.today:
        return Verdict(Outcome.REFUSE, Reason.CARD_EXPIRED, "the chip's expiry date has passed")
    return Verdict(Outcome.ACCEPT, Reason.ACCEPTED,
                   f"card of region {region}, not known to the local central: "
                   "accepted at the full fare")


def apply_region(profile: Profile, region: str, verdict: Verdict) -> tuple[Verdict, bool]:
    """An accept of a card from elsewhere loses the local concessions (同城待遇 is for the
    listed regions); returns the verdict and whether the card was from elsewhere."""
    if profile.regions.is_local(region):
        return verdict, False
    if verdict.outcome is not Outcome.ACCEPT:
        return verdict, True
    notices = tuple(n for n in verdict.notices if n != Notice.CONCESSION_BY_AGE.value)
    return replace(verdict, concession=None, fare_percent=100, notices=notices), True


# --- concessions by age (issue 19.4) ------------------------------------------------------


def age_on(birth_date: date, today: date) -> int:
    """Whole years of age on ``today`` (a 29 February birthday counts on 1 March)."""
    years = today.year - birth_date.year
    if (today.month, today.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def apply_age_concession(profile: Profile, birth_date: date | None, today: date,
                         verdict: Verdict) -> Verdict:
    """The better of the certificate concession the verdict carries and the profile's
    age-based one (from the chip's birth date: authenticated reads only); the notice
    ``concession_by_age`` says the age gave it. A tie keeps the certificate's."""
    rules = profile.age_concessions
    if verdict.outcome is not Outcome.ACCEPT or birth_date is None or not (
            rules.from_age or rules.below_age):
        return verdict
    age = age_on(birth_date, today)
    candidates = [e for e, years in rules.from_age.items() if age >= years]
    candidates += [e for e, years in rules.below_age.items() if age < years]
    best = None
    fare = verdict.fare_percent
    for entitlement in candidates:
        percent = profile.concessions.get(entitlement)
        if percent is not None and percent < fare:
            best, fare = entitlement, percent
    if best is None:
        return verdict
    return replace(verdict, concession=best, fare_percent=fare,
                   notices=(*verdict.notices, Notice.CONCESSION_BY_AGE.value))


# --- renewal and expiry (issue 19.5) ------------------------------------------------------


def _months_before(day: date, months: int) -> date:
    month_index = day.year * 12 + day.month - 1 - months
    year, month = divmod(month_index, 12)
    for last in (day.day, 30, 29, 28):
        try:
            return date(year, month + 1, min(day.day, last))
        except ValueError:
            continue
    return date(year, month + 1, 28)


def apply_renewal_notice(profile: Profile, expiry: date | None, today: date,
                         verdict: Verdict) -> Verdict:
    """An accept inside the last ``notice_months`` of the validity carries the renewal
    notice (Wenzhou 2024 五(四): renew in the 3 months before expiry)."""
    months = profile.renewal.notice_months
    if (verdict.outcome is not Outcome.ACCEPT or expiry is None or months == 0
            or Notice.EXPIRED_ACCEPTED.value in verdict.notices):
        return verdict
    if _months_before(expiry, months) <= today <= expiry:
        return replace(verdict, notices=(*verdict.notices, Notice.RENEWAL_DUE.value))
    return verdict


def apply_after_expiry(profile: Profile, verdict: Verdict, *, online: bool) -> Verdict:
    """An expired card where the service must not be denied (a hospital desk): accepted
    with a notice, online, or offline where the profile accepts offline at all."""
    if (verdict.reason is not Reason.CARD_EXPIRED
            or profile.renewal.after_expiry is not AfterExpiry.ACCEPT_WITH_NOTICE):
        return verdict
    if not online and profile.offline_policy is not OfflinePolicy.ACCEPT:
        deferring = profile.offline_policy is OfflinePolicy.DEFER
        outcome = Outcome.DEFER if deferring else Outcome.REFUSE
        return Verdict(outcome, Reason.OFFLINE_NOT_ALLOWED, "expired card and the central "
                       f"unreachable; this profile does not accept offline ({outcome.value})")
    return Verdict(Outcome.ACCEPT, Reason.ACCEPTED,
                   "the card has expired: accepted with a notice to renew it",
                   notices=(Notice.EXPIRED_ACCEPTED.value,))


# --- identity desks (issue 19.2) ----------------------------------------------------------


def judge_identity_authenticated(profile: Profile, channel: Channel,
                                 authentication: Authentication) -> Verdict | None:
    """An identity desk that requires a complete, authenticated read refuses a card that
    no PSAM or HSM authenticated (a code is vouched for by its signature or the central)."""
    policy = profile.identity
    if (not policy.identity_desk or not policy.require_authenticated
            or channel is Channel.ECODE
            or authentication in (Authentication.PSAM, Authentication.HSM)):
        return None
    return Verdict(Outcome.REFUSE, Reason.IDENTITY_NOT_AUTHENTICATED,
                   "identity needs a complete read authenticated by a PSAM or the HSM")


_OFFLINE_REASONS = frozenset({Reason.OFFLINE_NOT_ALLOWED, Reason.DENYLIST_STALE,
                              Reason.OFFLINE_LIMIT, Reason.ACCEPTED})


def apply_identity_offline(profile: Profile, verdict: Verdict, *, online: bool) -> Verdict:
    """Offline, an identity desk whose profile forbids it releases no identity: a
    temporary-loss, void or suspended card cannot be told from a good one when the
    central is down and the denylist says nothing. A refusal the denylist or the chip
    gave keeps its own, more precise reason."""
    policy = profile.identity
    if online or not policy.identity_desk or policy.offline:
        return verdict
    if verdict.outcome is Outcome.REFUSE and verdict.reason not in _OFFLINE_REASONS:
        return verdict
    return Verdict(Outcome.REFUSE, Reason.IDENTITY_OFFLINE_NOT_ALLOWED,
                   "central unreachable: this identity desk releases no identity offline")
