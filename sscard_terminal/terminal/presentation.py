"""One presentation, card or code, from its arrival to a journaled decision.

::

    card present / code read  ──►  read (PSAM/HSM inside)  ──►  decide  ──►  journal  ──►  complete
          (arrived_at)              or verify the code        (engine)   (every outcome)  (engine)
      └────────────────────────── one deadline: arrived_at + the profile's budget ────────────┘

Every presentation is journaled, refusals before a decision included (a forged card, a
bank card, a card pulled mid-read): each with a stable reason code and no personal data in
clear. A decision is complete only once it is journaled: if the journal refuses (full, and
the profile says refuse) or fails, the presentation is refused with ``journal_full`` /
``journal_unavailable`` and the engine forgets the accept, so it is never shown as accepted
without evidence.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..apdu.transport import CardTransport
from ..cards.authentication.context import ReadAuthenticator
from ..cards.card_info import CardInfo
from ..cards.ssse import read_card_info
from ..central.models import Channel
from ..deadline import Deadline
from ..decision import Decision, DecisionEngine
from ..decision.credentials import PresentedCredential
from ..decision.rules import Outcome
from ..ecode import ECodeVerifier
from ..errors import (
    CardAuthenticationError,
    CardCommunicationError,
    CardRefusedError,
    CardRemovedError,
    CardTimeoutError,
    DeadlineExceededError,
    ForgedCardError,
    JournalError,
    JournalFullError,
    MalformedResponseError,
    NotSocialSecurityCardError,
    ReaderError,
    SscardError,
)
from ..messages import MessageKind, bilingual
from ..offline_queue.journal import Journal
from ..privacy import mask_card_number, mask_id_number, mask_name
from ..profiles import Profile
from .identity import IdentityPresentation, released_identity

__all__ = ["Presentation", "PresentationRefusal", "Presenter", "code_fingerprint", "refusal_for"]

_log = logging.getLogger(__name__)


class PresentationRefusal(enum.StrEnum):
    """Why a presentation was refused before (or after) the decision engine: stable codes,
    beside the engine's :class:`~sscard_terminal.decision.rules.Reason` values."""

    CARD_FORGED = "card_forged"                       # internal authentication failed
    NOT_SOCIAL_SECURITY_CARD = "not_social_security_card"   # bank-only or foreign card
    CARD_REMOVED = "card_removed"                     # pulled or silent mid-read
    CARD_UNREADABLE = "card_unreadable"               # answered bytes that do not parse
    CARD_REFUSED = "card_refused"                     # refused a command (status word)
    SECURITY_MODULE_UNAVAILABLE = "security_module_unavailable"
    READER_UNAVAILABLE = "reader_unavailable"
    READ_TIMEOUT = "read_timeout"                     # the budget ran out mid-read
    READ_FAILED = "read_failed"                       # any other read failure
    JOURNAL_FULL = "journal_full"                     # no evidence, no acceptance
    JOURNAL_UNAVAILABLE = "journal_unavailable"


def refusal_for(exc: SscardError) -> PresentationRefusal:
    """The stable refusal code for an error raised while reading a card (most specific
    first: a forged card is an authentication error, a pulled one a communication one)."""
    table: tuple[tuple[type[SscardError], PresentationRefusal], ...] = (
        (ForgedCardError, PresentationRefusal.CARD_FORGED),
        (NotSocialSecurityCardError, PresentationRefusal.NOT_SOCIAL_SECURITY_CARD),
        (CardRemovedError, PresentationRefusal.CARD_REMOVED),
        (CardTimeoutError, PresentationRefusal.CARD_REMOVED),
        (MalformedResponseError, PresentationRefusal.CARD_UNREADABLE),
        (CardCommunicationError, PresentationRefusal.CARD_REMOVED),
        (CardRefusedError, PresentationRefusal.CARD_REFUSED),
        (CardAuthenticationError, PresentationRefusal.SECURITY_MODULE_UNAVAILABLE),
        (ReaderError, PresentationRefusal.READER_UNAVAILABLE),
        (DeadlineExceededError, PresentationRefusal.READ_TIMEOUT),
    )
    for kind, refusal in table:
        if isinstance(exc, kind):
            return refusal
    return PresentationRefusal.READ_FAILED


@dataclass(frozen=True)
class Presentation:
    """What came of one presentation: shown to the holder, journaled, counted.

    ``reason`` is a stable code (an engine reason or a :class:`PresentationRefusal`);
    ``message`` the human text, with no personal data; ``holder`` a masked summary for a
    technician's display. ``card`` (not in ``repr``) is the read itself, for a desk's
    identity release; it is never journaled in clear.
    """

    channel: str
    outcome: Outcome
    reason: str
    message: str
    transaction_id: str
    online: bool
    elapsed_ms: float
    lane: str = ""
    decision: Decision | None = None
    authenticated_by: str | None = None
    ecode_reason: str | None = None
    holder: str = ""
    journaled: bool = False
    card: CardInfo | None = field(default=None, repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPT

    def display(self) -> dict[str, str]:
        """What a display shows, in Chinese and English, from the shared message table:
        the reason's message, then each notice's."""
        kind = (MessageKind.REFUSAL if self.reason in {r.value for r in PresentationRefusal}
                else MessageKind.REASON)
        shown = bilingual(kind, self.reason)
        for notice in self.decision.notices if self.decision is not None else ():
            extra = bilingual(MessageKind.NOTICE, notice)
            shown = {lang: f"{shown[lang]}；{extra[lang]}" if lang == "zh"
                     else f"{shown[lang]}; {extra[lang]}" for lang in shown}
        return shown

    def event(self) -> dict[str, Any]:
        """A JSON-ready event: masked, stable codes, the human text in its own field."""
        decision = self.decision
        return {
            "display": self.display(),
            "channel": self.channel,
            "lane": self.lane,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "message": self.message,
            "online": self.online,
            "transaction_id": self.transaction_id,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "fare_percent": decision.fare_percent if decision is not None else None,
            "concession": (decision.concession.value if decision is not None
                           and decision.concession is not None else None),
            "replayed": decision.replayed if decision is not None else False,
            "authenticated_by": self.authenticated_by,
            "authentication": decision.authentication if decision is not None else None,
            "notices": list(decision.notices) if decision is not None else [],
            "ecode_reason": self.ecode_reason,
            "holder": self.holder or None,
            "journaled": self.journaled,
        }


Clock = Callable[[], float]


def code_fingerprint(text: str) -> str:
    """Six hex digits that tell two codes apart on a display or in a log without showing
    the code (a bearer credential while it is valid)."""
    return hashlib.sha256(text.strip().encode()).hexdigest()[:6]


class Presenter:
    """The pipeline every face uses: the daemon's lanes, the local API, the demo."""

    def __init__(self, *, profile: Profile, engine: DecisionEngine, journal: Journal,
                 verifier: ECodeVerifier, authenticator: ReadAuthenticator | None,
                 clock: Clock = time.monotonic) -> None:
        self.profile = profile
        self._engine = engine
        self._journal = journal
        self._verifier = verifier
        self._authenticator = authenticator
        self._clock = clock

    def deadline_from(self, arrived_at: float) -> Deadline:
        """The one deadline of a presentation: the profile's budget from its arrival."""
        return Deadline(arrived_at + self.profile.budget_ms / 1000.0)

    # --- card taps ------------------------------------------------------------------------

    def present_card(self, transport: CardTransport, *, arrived_at: float,
                     lane: str = "") -> Presentation:
        """Read the card behind ``transport`` (authenticated by the module chain), decide,
        journal and complete, all within the deadline that started at ``arrived_at``."""
        deadline = self.deadline_from(arrived_at)
        try:
            info = read_card_info(transport, authenticator=self._authenticator)
        except SscardError as exc:
            refusal = refusal_for(exc)
            _log.info("lane %s: card refused before a decision: %s (%s)", lane or "-",
                      refusal.value, type(exc).__name__)
            return self._refuse("card", refusal, str(exc), arrived_at, lane,
                                authenticated_by=getattr(self._authenticator, "name", None)
                                if refusal is PresentationRefusal.CARD_FORGED else None)
        try:
            credential = PresentedCredential.from_card_info(info)
        except ValueError:
            return self._refuse("card", PresentationRefusal.CARD_UNREADABLE,
                                "the card has no identification code or card number",
                                arrived_at, lane)
        decision = self._engine.decide(credential, deadline=deadline)
        holder = (f"{mask_name(info.name)} {mask_id_number(info.social_security_number)} "
                  f"card {mask_card_number(info.card_number)} gen{info.generation}")
        return self._journal_decision(
            decision, arrived_at, lane, kind="card_tap",
            personal={"card_number": info.card_number,
                      "id_number": info.social_security_number},
            authenticated_by=info.authenticated_by, holder=holder, card=info)

    # --- identity desks ---------------------------------------------------------------------

    def present_identity(self, transport: CardTransport, *, arrived_at: float, caller: str,
                         lane: str = "") -> IdentityPresentation:
        """A tap at an identity desk for ``caller`` (the local API client that asked): the
        decision as :meth:`present_card` makes it, then, if accepted, the identity the
        profile lets out, once its release is journaled (``identity_released``: lane,
        caller, card reference, level; no personal data)."""
        shown = self.present_card(transport, arrived_at=arrived_at, lane=lane)
        level = self.profile.identity.release
        card, decision = shown.card, shown.decision
        if not shown.accepted or card is None or decision is None:
            return IdentityPresentation(shown, None, caller)
        identity = released_identity(card, level)
        if identity is None:
            return IdentityPresentation(shown, None, caller)
        try:
            self._journal.enqueue("identity_released", {
                "transaction_id": decision.transaction_id,
                "lane": lane,
                "caller": caller,
                "card_ref": decision.card_ref,
                "level": level.value,
                "authentication": decision.authentication,
            })
        except JournalError as exc:
            _log.error("lane %s: an identity release could not be journaled (%s): withheld",
                       lane or "-", exc)
            refusal = (PresentationRefusal.JOURNAL_FULL if isinstance(exc, JournalFullError)
                       else PresentationRefusal.JOURNAL_UNAVAILABLE)
            return IdentityPresentation(replace(shown, outcome=Outcome.REFUSE,
                                                reason=refusal.value, message=str(exc)),
                                        None, caller)
        _log.info("lane %s: identity released (%s) to %s", lane or "-", level.value,
                  caller.partition(":")[0] or "-")
        return IdentityPresentation(shown, identity, caller)

    # --- e-codes --------------------------------------------------------------------------

    def present_code(self, text: str, *, arrived_at: float, lane: str = "") -> Presentation:
        """Verify a scanned code and decide it like a tap of its card (卡码同权), within
        the deadline that started when the code was read."""
        deadline = self.deadline_from(arrived_at)
        verification = self._verifier.verify(text, deadline=deadline)
        credential = PresentedCredential.from_verification(verification)
        decision = self._engine.decide(credential, deadline=deadline)
        return self._journal_decision(decision, arrived_at, lane, kind="ecode_scan",
                                      personal=None, ecode_reason=verification.reason.value,
                                      holder=f"code {verification.kind.value} "
                                             f"#{code_fingerprint(text)}")

    # --- journaling -------------------------------------------------------------------------

    def _journal_decision(self, decision: Decision, arrived_at: float, lane: str, *,
                          kind: str, personal: dict[str, Any] | None,
                          authenticated_by: str | None = None, ecode_reason: str | None = None,
                          holder: str = "", card: CardInfo | None = None) -> Presentation:
        payload = {
            "transaction_id": decision.transaction_id,
            "lane": lane,
            "channel": decision.channel.value,
            "outcome": decision.outcome.value,
            "reason": decision.reason.value,
            "online": decision.online,
            "card_ref": decision.card_ref,
            "fare_percent": decision.fare_percent,
            "concession": decision.concession.value if decision.concession else None,
            "concession_source": decision.concession_source,
            "replayed": decision.replayed,
            "authenticated_by": authenticated_by,
            "authentication": decision.authentication,
            "notices": list(decision.notices),
            "ecode_reason": ecode_reason,
        }
        channel = "ecode" if decision.channel is Channel.ECODE else "card"
        try:
            # A replay of a torn transaction whose record made it to the journal before
            # the process died: complete it, never journal it twice.
            if not (decision.replayed
                    and self._journal.holds_transaction(decision.transaction_id)):
                self._journal.enqueue(kind, payload, personal)
        except JournalError as exc:
            self._engine.withdraw(decision)
            refusal = (PresentationRefusal.JOURNAL_FULL if isinstance(exc, JournalFullError)
                       else PresentationRefusal.JOURNAL_UNAVAILABLE)
            _log.error("lane %s: the decision could not be journaled (%s): refused",
                       lane or "-", exc)
            return Presentation(channel=channel, outcome=Outcome.REFUSE, reason=refusal.value,
                                message=str(exc), transaction_id=decision.transaction_id,
                                online=decision.online,
                                elapsed_ms=self._elapsed_ms(arrived_at), lane=lane,
                                decision=None, authenticated_by=authenticated_by,
                                ecode_reason=ecode_reason, holder=holder, card=card)
        self._engine.complete(decision)
        return Presentation(channel=channel, outcome=decision.outcome,
                            reason=decision.reason.value, message=decision.message,
                            transaction_id=decision.transaction_id, online=decision.online,
                            elapsed_ms=self._elapsed_ms(arrived_at), lane=lane,
                            decision=decision, authenticated_by=authenticated_by,
                            ecode_reason=ecode_reason, holder=holder, journaled=True,
                            card=card)

    def _refuse(self, channel: str, refusal: PresentationRefusal, message: str,
                arrived_at: float, lane: str, *,
                authenticated_by: str | None = None) -> Presentation:
        transaction_id = uuid.uuid4().hex
        journaled = True
        try:
            self._journal.enqueue("presentation_refused", {
                "transaction_id": transaction_id,
                "lane": lane,
                "channel": channel,
                "outcome": Outcome.REFUSE.value,
                "reason": refusal.value,
                "authenticated_by": authenticated_by,
            })
        except JournalError as exc:
            journaled = False
            _log.error("lane %s: a refusal could not be journaled: %s", lane or "-", exc)
        return Presentation(channel=channel, outcome=Outcome.REFUSE, reason=refusal.value,
                            message=message, transaction_id=transaction_id, online=False,
                            elapsed_ms=self._elapsed_ms(arrived_at), lane=lane,
                            authenticated_by=authenticated_by, journaled=journaled)

    def _elapsed_ms(self, arrived_at: float) -> float:
        return (self._clock() - arrived_at) * 1000.0
