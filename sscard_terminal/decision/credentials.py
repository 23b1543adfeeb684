"""What a holder presented, reduced to what the decision needs.

A card tap and an e-code become the same :class:`PresentedCredential`, keyed by the
pseudonymous ``card_ref`` (:func:`sscard_terminal.central.models.card_ref`), so the rules
cannot tell them apart except where the law says they differ: a chip expiry date exists
only for a tapped card, a signature check only for a code (卡码同权).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from ..apdu.transport import CardInterface
from ..cards.card_info import CardInfo
from ..central.models import (
    Application,
    CardStatus,
    CardValidation,
    Channel,
    ECodeCheck,
    Entitlement,
    card_ref,
)
from ..ecode.reasons import Reason as ECodeReason
from ..ecode.recognise import CodeKind
from ..ecode.verifier import ECodeVerification
from ..privacy import mask_card_number
from ..profiles import ECodeKind
from .policy import Authentication, authentication_of

__all__ = ["CardStanding", "ECodeOutcome", "PresentedCredential"]


class CardStanding(Protocol):
    """What the central says about a card: the part of its validation a decision uses.

    The central client's ``CardValidation`` has these attributes; so does the
    validation an online e-code verification carries, for the same card.
    """

    @property
    def status(self) -> CardStatus: ...

    @property
    def applications(self) -> Collection[Application]: ...

    @property
    def entitlements(self) -> Collection[Entitlement]: ...


@dataclass(frozen=True)
class ECodeOutcome:
    """The e-code verifier's answer, as the decision needs it.

    ``unreachable`` marks an online-only code (national e-card, e-voucher) that could
    not be verified because the central did not answer: the profile then refuses or
    defers it. ``standing`` is the central's view of the card behind the code when the
    verification went online.
    """

    accepted: bool
    kind: ECodeKind | None            # None: a shape no profile recognises
    reason: str
    message: str
    unreachable: bool = False
    standing: CardStanding | None = None

    @classmethod
    def from_verification(cls, verification: ECodeVerification) -> ECodeOutcome:
        """Adapt the e-code verifier's answer."""
        kind = (None if verification.kind is CodeKind.UNKNOWN
                else ECodeKind(verification.kind.value))
        return cls(
            accepted=verification.accepted,
            kind=kind,
            reason=verification.reason.value,
            message=verification.message,
            unreachable=verification.reason in (ECodeReason.CENTRAL_UNREACHABLE,
                                                ECodeReason.DEFERRED),
            standing=_standing_of(verification.validation),
        )


def _standing_of(validation: object) -> CardStanding | None:
    """The card's standing from whatever the central's e-code answer carried: a card
    validation itself, or a check wrapping one (``ECodeCheck.card``)."""
    if isinstance(validation, ECodeCheck):
        validation = validation.card
    if isinstance(validation, CardValidation):
        return validation
    return None


@dataclass(frozen=True)
class PresentedCredential:
    """One presentation of a card or a code. Personal data stays out of ``repr``."""

    channel: Channel
    card_ref: str
    region: str
    card_number: str | None = field(default=None, repr=False)
    card_identification_code: str | None = field(default=None, repr=False)   # 32 hex
    chip_expiry: date | None = None
    ecode: ECodeOutcome | None = None
    authentication: Authentication = Authentication.NONE
    generation: int | None = None                 # 1, 2 or 3 (None: not known)
    birth_date: date | None = field(default=None, repr=False)   # chip, authenticated reads
    chip_issue: date | None = None

    def __post_init__(self) -> None:
        if (self.channel is Channel.ECODE) != (self.ecode is not None):
            raise ValueError("an e-code credential carries an e-code outcome, a card tap does not")

    @classmethod
    def from_card(
        cls,
        channel: Channel,
        *,
        card_identification_code: str,
        card_number: str,
        chip_expiry: date | None,
        authentication: Authentication = Authentication.NONE,
        generation: int | None = None,
        birth_date: date | None = None,
        chip_issue: date | None = None,
    ) -> PresentedCredential:
        """A tapped card, from the free items of EF05 (readable even on generation 3),
        with how it was authenticated (the profile decides whether ``NONE`` may pass)."""
        code = bytes.fromhex(card_identification_code)
        return cls(
            channel=channel,
            card_ref=card_ref(code),
            region=card_identification_code[:6],
            card_number=card_number,
            card_identification_code=card_identification_code.upper(),
            chip_expiry=chip_expiry,
            authentication=authentication,
            generation=generation,
            birth_date=birth_date,
            chip_issue=chip_issue,
        )

    @classmethod
    def from_card_info(cls, info: CardInfo) -> PresentedCredential:
        """A card as the card reader read it. Only free EF05 items are needed, so a
        generation 3 card without a security module still decides (its chip expiry is
        then unknown and the offline path cannot check it)."""
        if len(info.card_identification_code) != 32 or not info.card_number:
            raise ValueError("the card read has no identification code or card number")
        contactless = info.interface is CardInterface.CONTACTLESS
        return cls.from_card(
            Channel.CONTACTLESS if contactless else Channel.CONTACT,
            card_identification_code=info.card_identification_code,
            card_number=info.card_number,
            chip_expiry=info.expiry_date,
            authentication=authentication_of(info.authenticated_by),
            generation=info.generation,
            birth_date=info.birth_date,
            chip_issue=info.issue_date,
        )

    @classmethod
    def from_verification(cls, verification: ECodeVerification) -> PresentedCredential:
        """A scanned code as the e-code verifier judged it. A code refused before its
        card was known (bad signature, garbage) has an empty ``card_ref``."""
        return cls.from_ecode(ECodeOutcome.from_verification(verification),
                              card_ref=verification.card_ref or "",
                              region=verification.region or "")

    @classmethod
    def from_ecode(
        cls, outcome: ECodeOutcome, *, card_ref: str, region: str
    ) -> PresentedCredential:
        """A scanned code, after the e-code verifier has looked at it."""
        authentication = (Authentication.SIGNATURE if outcome.kind is ECodeKind.OURS
                          else Authentication.CENTRAL if outcome.standing is not None
                          else Authentication.NONE)
        return cls(channel=Channel.ECODE, card_ref=card_ref, region=region, ecode=outcome,
                   authentication=authentication)

    def describe(self) -> str:
        """A loggable description: channel, region, masked card number, card_ref prefix."""
        number = mask_card_number(self.card_number) if self.card_number else "-"
        return f"{self.channel.value} card {number} region {self.region} ref {self.card_ref[:8]}"
