"""Value types shared by the central client, the decision path and the e-code verifier.

Card and e-code have equal rights (卡码同权): both resolve to the same card and the same
:class:`CardStatus`, so these types are the common language of every decision.
"""

from __future__ import annotations

import base64
import enum
import hashlib

__all__ = ["Application", "CardStatus", "Channel", "Entitlement", "card_ref"]


class CardStatus(enum.Enum):
    """A card's lifecycle status as the central system reports it (Hainan §16-§28, §42)."""

    NORMAL = "normal"
    TEMPORARY_LOSS = "temporary_loss"      # 15 days (lapses by itself) or open-ended
    FORMAL_LOSS = "formal_loss"            # locked
    REPLACED = "replaced"                  # void from the replacement application on
    RENEWED = "renewed"                    # old card handed back at renewal: void
    CANCELLED = "cancelled"                # death: card and e-code void
    EXPIRED = "expired"                    # 10 years after issue
    SUSPENDED = "suspended"                # misuse, fraud, lending
    UNKNOWN = "unknown"                    # the central does not know this card

    @property
    def usable(self) -> bool:
        """Whether a card in this status may be accepted at all."""
        return self is CardStatus.NORMAL


class Channel(enum.Enum):
    """How the holder presented the credential."""

    CONTACT = "contact"
    CONTACTLESS = "contactless"
    ECODE = "ecode"


class Application(enum.Enum):
    """Applications a holder switches on and off (Wenzhou 2024 五(二))."""

    TRANSIT = "transit"
    LIBRARY = "library"
    SCENIC = "scenic"
    MEDICAL = "medical"
    IDENTITY = "identity"
    SPORTS = "sports"


class Entitlement(enum.Enum):
    """Concession categories merged into the card (卡证码融合)."""

    SENIOR = "senior"
    DISABLED = "disabled"
    VETERAN = "veteran"
    TEACHER = "teacher"
    VOLUNTEER = "volunteer"
    UNION_MEMBER = "union_member"
    CHILD = "child"


def card_ref(card_identification_code: bytes) -> str:
    """The pseudonymous reference of a card: the key that card taps, e-codes and the
    denylist share (卡码同权) without carrying the ID number, name or card number.

    It is derived from the card identification code (EF05 tag 01, readable freely even on
    generation 3 cards), so a terminal computes it from a tap offline and finds it in an
    e-code's payload and in denylist entries.
    """
    if len(card_identification_code) != 16:
        raise ValueError("a card identification code is 16 bytes")
    digest = hashlib.sha256(b"sscard-card-ref:v1:" + card_identification_code).digest()
    return base64.b32encode(digest[:15]).decode("ascii").lower()
