"""Identity presentations (issue 19.2): at an identity desk (hotel registration, exam
check-in, government service hall) the card is the holder's identity credential, and the
terminal hands that identity to the desk's own system and to nobody else.

The profile's ``[identity]`` says what may be released (none, masked, complete) and that a
complete, authenticated read is needed. The identity goes only to the local API caller that
asked (``readIdentity``); never to the journal in clear, the display, the logs, events or
metrics. The journal records *that* it was released (when, which lane, which caller, the
card reference, at which level) as settlement and audit evidence; a release that cannot be
recorded does not happen.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..cards.card_info import CardInfo
from ..privacy import mask_card_number, mask_id_number, mask_name
from ..profile_rules import IdentityRelease

if TYPE_CHECKING:
    from .presentation import Presentation

__all__ = ["IdentityPresentation", "ReleasedIdentity", "released_identity"]


@dataclass(frozen=True)
class ReleasedIdentity:
    """The identity handed to the local API caller. ``repr`` masks it whatever the level."""

    level: IdentityRelease
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    sex_code: str = field(repr=False)
    birth_date: str = field(repr=False)        # YYYYMMDD, masked: YYYY****
    ethnicity_code: str = field(repr=False)
    card_number: str = field(repr=False)
    region: str = ""

    def to_unified(self) -> str:
        """``name|id number|sex|birth date|ethnicity|card number|region|`` for a desk's
        software, in the unified interface's pipe-separated style."""
        values = (self.name, self.id_number, self.sex_code, self.birth_date,
                  self.ethnicity_code, self.card_number, self.region)
        return "".join(f"{value.replace('|', '')}|" for value in values)

    def __repr__(self) -> str:
        return (f"ReleasedIdentity(level={self.level.value!r}, name={mask_name(self.name)!r}, "
                f"id_number={mask_id_number(self.id_number)!r})")

    __str__ = __repr__


@dataclass(frozen=True)
class IdentityPresentation:
    """A presentation at an identity desk: the decision (journaled like any tap) and, when
    it was accepted and the release journaled, the identity for the caller."""

    presentation: Presentation
    identity: ReleasedIdentity | None = field(default=None, repr=False)
    caller: str = ""


def released_identity(card: CardInfo, level: IdentityRelease) -> ReleasedIdentity | None:
    """The identity the profile lets out of ``card`` (None for ``none``)."""
    if level is IdentityRelease.NONE:
        return None
    birth = card.birth_date.strftime("%Y%m%d") if card.birth_date else ""
    if level is IdentityRelease.COMPLETE:
        return ReleasedIdentity(level, card.name, card.social_security_number, card.sex_code,
                                birth, card.ethnicity_code, card.card_number, card.region)
    return ReleasedIdentity(level, mask_name(card.name),
                            mask_id_number(card.social_security_number), card.sex_code,
                            birth[:4] + "****" if birth else "", "",
                            mask_card_number(card.card_number), card.region)
