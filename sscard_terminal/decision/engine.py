"""One decision pipeline for card taps and e-codes (卡码同权).

::

    credential ──► torn-transaction replay? ──► e-code gate ──► online (central, budget
                   (same card, same terminal,    (kind allowed,   minus the offline reserve)
                    ≤ torn window, unfinished)    signature ok)        │ unreachable / malformed
                                                                       ▼
                                                  rules.judge_online   rules.judge_offline
                                                         └──────┬──────┘ (denylist, chip expiry,
                                                                ▼         cached entitlements,
                                                    anti-passback per card type   limits)
                                                                ▼
                                                             Decision

The engine keeps only per-terminal state: the last decision per card (for replays and
anti-passback), what online answers taught it about each card (for offline concessions),
and how many offline accepts ran in a row. All of it lives in an injectable
:class:`~.state_store.EngineState` (in memory by default, SQLite in the daemon so that a
restart forgets nothing), used behind one lock, so the daemon may call
:meth:`DecisionEngine.decide` from several reader threads.

Anti-passback and the fare are two questions: the window comes from what the card is (all
its entitlements, e.g. a volunteer on duty), the fare from the concession that applies.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Protocol

from ..central.models import Application, CardStatus, Channel, Entitlement
from ..deadline import Deadline
from ..errors import CentralError, DeadlineExceededError
from ..profiles import ECodeKind, OfflinePolicy, Profile
from .clock import Clock, SystemClock, local_date
from .credentials import CardStanding, PresentedCredential
from .denylist import Denylist
from .policy import (
    Authentication,
    Notice,
    apply_after_expiry,
    apply_age_concession,
    apply_identity_offline,
    apply_region,
    apply_renewal_notice,
    elsewhere_unknown,
    judge_authenticity,
    judge_identity_authenticated,
    judge_region_first,
)
from .rules import OfflineFacts, Outcome, Reason, Verdict, judge_offline, judge_online
from .state_store import EngineState, LearntStanding, MemoryEngineState

__all__ = ["CardValidator", "Decision", "DecisionEngine", "EngineStatus"]

log = logging.getLogger(__name__)

# Below this much time an online call cannot finish on loopback, let alone a WAN:
# skip it and decide offline at once rather than burn the budget.
MIN_ONLINE_MS = 5.0


class CardValidator(Protocol):
    """The one call the engine makes to the central (``CentralClient`` has it)."""

    def validate_card(
        self,
        card_identification_code: str,
        card_number: str,
        region: str,
        channel: Channel,
        deadline: Deadline,
    ) -> CardStanding: ...


@dataclass(frozen=True)
class Decision:
    """The answer for one presentation. No personal data: ``card_ref`` is pseudonymous."""

    outcome: Outcome
    reason: Reason
    message: str
    online: bool
    central_status: CardStatus | None     # the central's status when it answered
    concession: Entitlement | None
    fare_percent: int                     # 100 = full fare / no concession
    card_ref: str
    channel: Channel
    transaction_id: str                   # the same on a torn-transaction replay
    replayed: bool
    elapsed_ms: float
    authentication: str = Authentication.NONE.value   # psam, hsm, none, signature, central
    notices: tuple[str, ...] = ()                     # policy.Notice values

    @property
    def concession_source(self) -> str | None:
        """Which concession the holder got: ``age`` (the chip's birth date), ``certificate``
        (merged into the card, learnt from the central), or None (full fare)."""
        if self.concession is None:
            return None
        return "age" if Notice.CONCESSION_BY_AGE.value in self.notices else "certificate"

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPT


@dataclass(frozen=True)
class EngineStatus:
    """For a status page: is the central answering, and how far offline has gone."""

    last_online_ok: datetime | None
    offline_accepts_in_row: int
    remembered_cards: int


class DecisionEngine:
    """Decides card taps and e-codes for one terminal under one profile."""

    def __init__(
        self,
        profile: Profile,
        *,
        central: CardValidator | None,
        denylist: Denylist,
        clock: Clock | None = None,
        state: EngineState | None = None,
    ) -> None:
        self.profile = profile
        self._central = central
        self._denylist = denylist
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._card_done = threading.Condition(self._lock)
        self._in_flight: set[str] = set()
        self._state: EngineState = state if state is not None else MemoryEngineState()

    # --- public ----------------------------------------------------------------------

    def decide(self, credential: PresentedCredential, *, deadline: Deadline) -> Decision:
        """Decide within the caller's deadline and the profile's budget, whichever is first.

        Never raises for a central that is down, slow or answering garbage: that is an
        offline decision. The online call gets the budget minus the profile's offline
        reserve, so the offline path always has time left.
        """
        started = time.monotonic()
        budget = deadline.capped(self.profile.budget_ms / 1000.0)
        ref = credential.card_ref
        self._claim(ref, budget)
        try:
            return self._decide_claimed(credential, budget, started)
        finally:
            self._release(ref)

    def complete(self, decision: Decision) -> None:
        """The transaction behind ``decision`` finished (journaled, holder informed): a
        re-tap is now a new presentation (and meets anti-passback), not a replay."""
        with self._lock:
            self._state.complete(decision.card_ref, decision.transaction_id)

    def withdraw(self, decision: Decision) -> None:
        """The decision could not be journaled and was refused instead: forget its accept,
        so a re-tap neither replays it (torn transaction) nor meets anti-passback, and it
        does not count as an offline accept."""
        with self._lock:
            if (self._state.withdraw(decision.card_ref, decision.transaction_id)
                    and decision.accepted and not decision.online):
                self._state.offline_accept_withdrawn()

    def status(self) -> EngineStatus:
        with self._lock:
            return EngineStatus(self._state.last_online_ok(),
                                self._state.offline_accepts_in_row(),
                                self._state.remembered_cards())

    # --- pipeline steps ----------------------------------------------------------------

    def _claim(self, ref: str, budget: Deadline) -> None:
        """One decision per card at a time: the same card on two readers of this terminal
        (or a card and its code at once) must not both pass anti-passback. A second
        presentation waits for the first, then sees its result (a replay or anti-passback)."""
        if not ref:
            return
        with self._card_done:
            while ref in self._in_flight:
                if not self._card_done.wait(timeout=budget.remaining()):
                    break     # out of time: decide anyway rather than hang the gate
            self._in_flight.add(ref)

    def _release(self, ref: str) -> None:
        if not ref:
            return
        with self._card_done:
            self._in_flight.discard(ref)
            self._card_done.notify_all()

    def _decide_claimed(self, credential: PresentedCredential, budget: Deadline,
                        started: float) -> Decision:
        now = self._state.now(self._clock)
        # A code the verifier refused (expired, scanned twice, ...) does not stand on its
        # own: it must not reopen the gate on the strength of the card's unfinished accept.
        refused_code = credential.ecode is not None and not credential.ecode.accepted
        replay = None if refused_code else self._torn_replay(credential.card_ref, now)
        if replay is not None:
            return self._finish(replace(replay, replayed=True), started, credential)
        verdict, standing = self._judge_with_policy(credential, budget)
        verdict = self._anti_passback(credential.card_ref, verdict, now)
        decision = Decision(
            outcome=verdict.outcome,
            reason=verdict.reason,
            message=verdict.message,
            online=standing is not None,
            central_status=standing.status if standing is not None else None,
            concession=verdict.concession,
            fare_percent=verdict.fare_percent,
            card_ref=credential.card_ref,
            channel=credential.channel,
            transaction_id=uuid.uuid4().hex,
            replayed=False,
            elapsed_ms=0.0,
            authentication=credential.authentication.value,
            notices=verdict.notices,
        )
        self._remember(decision, now)
        return self._finish(decision, started, credential)

    def _torn_replay(self, ref: str, now: float) -> Decision | None:
        """The earlier, unfinished accept for this card within the torn window (field notes:
        a validator that lost the card completes or replays instead of charging twice)."""
        if not ref:
            return None   # a code with no known card: nothing to match it with
        with self._lock:
            recent = self._state.recent(ref)
            if (recent is not None and recent.decision.accepted and not recent.completed
                    and now - recent.at <= self.profile.torn_window_seconds):
                return recent.decision
        return None

    # --- the profile's regulatory rules (decision/policy.py) around the judgement ---------

    def _judge_with_policy(
        self, credential: PresentedCredential, budget: Deadline
    ) -> tuple[Verdict, CardStanding | None]:
        """Authenticity and residents-only first (no online call spent on a card the
        profile refuses anyway), then the judgement, then the region's fare rule; a card
        from elsewhere the local central does not know is judged as 全国通用 asks, not
        refused as ``card_unknown``."""
        profile = self.profile
        gate = (judge_authenticity(profile, credential.channel, credential.authentication,
                                   credential.generation)
                or judge_identity_authenticated(profile, credential.channel,
                                                credential.authentication)
                or judge_region_first(profile, credential.region))
        if gate is not None:
            return gate, None
        verdict, standing = self._judge(credential, budget)
        online = standing is not None
        if standing is not None and standing.status is CardStatus.UNKNOWN:
            elsewhere = elsewhere_unknown(profile, credential.region,
                                          self._chip_facts(credential))
            if elsewhere is not None:
                verdict = elsewhere
        today = local_date(self._clock.now())
        verdict = apply_after_expiry(profile, verdict, online=online)
        verdict = apply_age_concession(profile, credential.birth_date, today, verdict)
        verdict, from_elsewhere = apply_region(profile, credential.region, verdict)
        if from_elsewhere and verdict.outcome is Outcome.ACCEPT:
            verdict = replace(verdict, notices=(*verdict.notices, Notice.FROM_ELSEWHERE.value))
        verdict = apply_renewal_notice(profile, _expiry_of(credential, standing), today,
                                       verdict)
        verdict = apply_identity_offline(profile, verdict, online=online)
        return verdict, standing

    def _chip_facts(self, credential: PresentedCredential) -> OfflineFacts:
        """What the terminal itself knows of a card: the denylist and the chip's expiry."""
        now = self._clock.now()
        entry = self._denylist.lookup(credential.card_ref, today=local_date(now), now=now)
        return OfflineFacts(
            denylisted=entry is not None,
            denylist_status=entry.status if entry is not None else None,
            denylist_age_hours=self._denylist.age_hours(), chip_expiry=credential.chip_expiry,
            today=local_date(now), cached_applications=None, cached_entitlements=frozenset(),
            offline_accepts_in_row=0)

    def _judge(
        self, credential: PresentedCredential, budget: Deadline
    ) -> tuple[Verdict, CardStanding | None]:
        ecode = credential.ecode
        if ecode is not None:
            if ecode.kind is None:
                return Verdict(Outcome.REFUSE, Reason.ECODE_REFUSED,
                               f"code refused: {ecode.reason}"), None
            if ecode.kind not in self.profile.ecode_kinds:
                return Verdict(Outcome.REFUSE, Reason.ECODE_KIND_NOT_ACCEPTED,
                               f"{ecode.kind.value} codes are not accepted here"), None
            if ecode.unreachable:
                policy = self.profile.opaque_offline
                outcome = Outcome.DEFER if policy is OfflinePolicy.DEFER else Outcome.REFUSE
                # Never "unknown code": the kind is known, only its verifier is not
                # reachable; the holder can tap the card or scan again once online.
                return Verdict(outcome, Reason.ONLINE_ONLY_CODE,
                               f"{ecode.kind.value} code needs the central, which is "
                               f"unreachable ({outcome.value}): tap the card, or scan "
                               "again when the terminal is online"), None
            standing = ecode.standing
            if standing is not None and (ecode.accepted or not standing.status.usable):
                # The code's card status decides, exactly as for the card itself.
                return self._judge_online(credential.card_ref, standing), standing
            if not ecode.accepted:
                return Verdict(Outcome.REFUSE, Reason.ECODE_REFUSED,
                               f"code refused: {ecode.reason}"), None
            if ecode.kind is not ECodeKind.OURS:
                # An opaque code is only ever accepted on the central's word.
                return Verdict(Outcome.REFUSE, Reason.ONLINE_ONLY_CODE,
                               f"{ecode.kind.value} code accepted without the card's status"), None
            return self._judge_offline(credential), None
        standing = self._ask_central(credential, budget)
        if standing is not None:
            return self._judge_online(credential.card_ref, standing), standing
        return self._judge_offline(credential), None

    def _ask_central(
        self, credential: PresentedCredential, budget: Deadline
    ) -> CardStanding | None:
        if (self._central is None or credential.card_identification_code is None
                or credential.card_number is None):
            return None
        online = Deadline(budget.expires_at - self.profile.offline_reserve_ms / 1000.0)
        if online.remaining() * 1000.0 < MIN_ONLINE_MS:
            log.info("no time for the central (%.1f ms left): deciding offline",
                     budget.remaining() * 1000.0)
            return None
        try:
            standing = self._central.validate_card(
                credential.card_identification_code, credential.card_number,
                credential.region, credential.channel, online)
        except (CentralError, DeadlineExceededError) as exc:
            # Unreachable, refused or malformed: the central gave no usable answer, and a
            # validator must still decide (issue 3). The error text carries no card data.
            log.warning("central gave no answer (%s: %s): deciding offline",
                        type(exc).__name__, exc)
            return None
        return standing

    def _judge_online(self, ref: str, standing: CardStanding) -> Verdict:
        now = self._clock.now()
        with self._lock:
            self._state.online_answered(now)
            if standing.status.usable:
                self._state.learn(ref, LearntStanding(frozenset(standing.applications),
                                                      frozenset(standing.entitlements), now))
            else:
                self._state.forget(ref)
        return judge_online(self.profile, standing.status, standing.applications,
                            standing.entitlements)

    def _judge_offline(self, credential: PresentedCredential) -> Verdict:
        now = self._clock.now()
        entry = self._denylist.lookup(credential.card_ref, today=local_date(now), now=now)
        with self._lock:
            learnt = self._state.learnt(credential.card_ref)
            if learnt is not None and now - learnt.at > timedelta(
                    hours=self.profile.entitlement_cache_hours):
                learnt = None
            in_row = self._state.offline_accepts_in_row()
        applications: Collection[Application] | None = learnt.applications if learnt else None
        facts = OfflineFacts(
            denylisted=entry is not None,
            denylist_status=entry.status if entry is not None else None,
            denylist_age_hours=self._denylist.age_hours(),
            chip_expiry=credential.chip_expiry,
            today=local_date(now),
            cached_applications=applications,
            cached_entitlements=learnt.entitlements if learnt else frozenset(),
            offline_accepts_in_row=in_row,
        )
        verdict = judge_offline(self.profile, facts)
        if verdict.outcome is Outcome.ACCEPT:
            with self._lock:
                self._state.offline_accepted()
        return verdict

    def _anti_passback(self, ref: str, verdict: Verdict, now: float) -> Verdict:
        if verdict.outcome is not Outcome.ACCEPT or not ref:
            return verdict
        # The card's types (all its entitlements), not the concession that set the fare.
        window = self.profile.anti_passback_for(verdict.card_types)
        with self._lock:
            recent = self._state.recent(ref)
        if recent is not None and recent.decision.accepted and now - recent.at < window:
            return Verdict(Outcome.REFUSE, Reason.ANTI_PASSBACK,
                           f"same card accepted {now - recent.at:.0f} s ago "
                           f"(window {window} s)")
        return verdict

    def _remember(self, decision: Decision, now: float) -> None:
        if not decision.accepted or not decision.card_ref:
            return
        horizon = max([self.profile.torn_window_seconds, self.profile.anti_passback_seconds,
                       *self.profile.anti_passback_by_type.values()])
        with self._lock:
            self._state.remember(decision.card_ref, decision, now, horizon=horizon)

    def _finish(self, decision: Decision, started: float,
                credential: PresentedCredential) -> Decision:
        decision = replace(decision, elapsed_ms=(time.monotonic() - started) * 1000.0)
        log.info("%s: %s %s (%s, %s%s) in %.1f ms", credential.describe(),
                 decision.outcome.value, decision.reason.value,
                 "online" if decision.online else "offline",
                 f"concession {decision.concession.value}" if decision.concession else "full fare",
                 ", replayed" if decision.replayed else "", decision.elapsed_ms)
        return decision


def _expiry_of(credential: PresentedCredential, standing: CardStanding | None) -> date | None:
    """The card's last valid day: the central's ``expires_on`` when it answered (codes
    have no chip), else the chip's."""
    text = getattr(standing, "expires_on", None)
    if isinstance(text, str):
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
    return credential.chip_expiry
