"""Value types shared by the central client, the decision path and the e-code verifier.

Card and e-code have equal rights (卡码同权): both resolve to the same card and the same
:class:`CardStatus`, so these types are the common language of every decision.
"""

from __future__ import annotations

import base64
import datetime as _dt
import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..privacy import mask_id_number, mask_name

__all__ = [
    "AckOutcome",
    "Application",
    "CardStatus",
    "CardValidation",
    "Channel",
    "DenylistChunk",
    "DenylistEntry",
    "DenylistManifest",
    "DenylistUpdate",
    "ECodeCheck",
    "Entitlement",
    "HolderIdentity",
    "PingResult",
    "TransactionAck",
    "TransactionUpload",
    "TrustList",
    "TrustedKey",
    "card_ref",
    "lapse_passed",
    "parse_until",
]


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


def parse_until(text: str) -> _dt.datetime | _dt.date:
    """A temporary status's end as the protocol carries it: the instant it lapses, RFC 3339
    with its zone (``2026-12-19T09:30:00+08:00``, the report's time plus 15 days), or (from
    an older central, or an end set by date) the last day it holds. ValueError otherwise; a
    time without a zone is refused (it would lapse hours early or late)."""
    if "T" in text or " " in text.strip():
        moment = _dt.datetime.fromisoformat(text)
        if moment.tzinfo is None:
            raise ValueError(f"lapse time {text!r} has no zone")
        return moment
    return _dt.date.fromisoformat(text)


def lapse_passed(until: str, now: _dt.datetime, today: _dt.date) -> bool:
    """Whether a status ending at ``until`` has lapsed: at its instant, to the second, or
    (a date) the day after its last day. An unreadable end never lapses (the safe side)."""
    try:
        end = parse_until(until)
    except ValueError:
        return False
    if isinstance(end, _dt.datetime):
        return now >= end
    return today > end


# --- protocol values (docs/central-protocol.md) ---------------------------------------


@dataclass(frozen=True)
class HolderIdentity:
    """Who holds the card; only sent to terminals whose profile is entitled to it.

    The repr masks both fields so that logging a validation never leaks them.
    """

    name: str
    id_number: str

    def __repr__(self) -> str:
        return (f"HolderIdentity(name={mask_name(self.name)!r}, "
                f"id_number={mask_id_number(self.id_number)!r})")

    __str__ = __repr__


@dataclass(frozen=True)
class CardValidation:
    """The central's answer about one card (tap or e-code: 卡码同权)."""

    status: CardStatus
    reason: str
    """Machine-readable: ``ok``, ``unknown_card``, ``temporary_loss``, ``expired``, ..."""
    card_ref: str | None = None
    since: str | None = None
    """RFC 3339 date the status began (None for ``unknown``)."""
    until: str | None = None
    """When a temporary status ends by itself (15-day temporary loss): the RFC 3339 instant
    with its zone, or the last day it holds (see :func:`parse_until`)."""
    expires_on: str | None = None
    applications: frozenset[Application] = frozenset()
    """Applications switched ON for this card."""
    entitlements: frozenset[Entitlement] = frozenset()
    holder: HolderIdentity | None = None
    warning: str | None = None
    """E.g. ``renew within 3 months`` in the last 3 months before expiry."""

    @property
    def usable(self) -> bool:
        return self.status.usable


@dataclass(frozen=True)
class ECodeCheck:
    """The central's verdict on an e-code text, with the card behind it when known."""

    accepted: bool
    reason: str
    kind: str | None = None
    card: CardValidation | None = None


@dataclass(frozen=True)
class PingResult:
    latency_s: float
    clock_offset_s: float
    """Server time minus terminal time (positive: the terminal is behind)."""
    auth_ok: bool
    terminal_id: str
    server_time: float
    refusal_reason: str | None = None
    """Why the central refused this terminal (``bad_signature``, ``clock_skew``, ...)."""


@dataclass(frozen=True)
class TransactionUpload:
    """One journal record as the central receives it; ``idempotency_key`` makes a retry safe."""

    idempotency_key: str
    sequence: int
    terminal_id: str
    kind: str
    occurred_at: str
    payload: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "idempotency_key": self.idempotency_key,
            "sequence": self.sequence,
            "terminal_id": self.terminal_id,
            "kind": self.kind,
            "occurred_at": self.occurred_at,
            "payload": dict(self.payload),
        }

    def __repr__(self) -> str:  # payloads may hold personal data
        return (f"TransactionUpload(idempotency_key={self.idempotency_key!r}, "
                f"sequence={self.sequence}, kind={self.kind!r}, "
                f"payload=<{len(self.payload)} keys>)")


AckOutcome = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True)
class TransactionAck:
    idempotency_key: str
    outcome: AckOutcome
    reason: str | None = None


@dataclass(frozen=True)
class DenylistEntry:
    card_ref: str
    status: CardStatus
    until: str | None = None
    """When set, the entry lapses by itself at this instant, or after this last day
    (15-day temporary loss; see :func:`parse_until`)."""


@dataclass(frozen=True)
class DenylistUpdate:
    """A verified denylist delta (``full`` False) or snapshot (``full`` True).

    Apply: a snapshot replaces everything; a delta adds ``added`` and drops ``removed``.
    """

    version: int
    since_version: int
    full: bool
    added: tuple[DenylistEntry, ...]
    removed: tuple[str, ...]


@dataclass(frozen=True)
class DenylistChunk:
    """One chunk of a chunked snapshot as the signed manifest describes it."""

    records: int
    sha256: bytes


@dataclass(frozen=True)
class DenylistManifest:
    """A verified, signed manifest of a list sent in chunks of records
    (docs/central-protocol.md): a snapshot (``full``) or a large delta, whose removals
    are records with status 0.

    The signature covers every chunk's SHA-256 and record count, so a chunk that matches
    its hash is as authentic as the manifest; ``digest`` (SHA-256 of the signed document)
    names this exact list, so an interrupted download resumes only into the same one.
    """

    version: int
    since_version: int
    entries: int
    record_bytes: int
    chunks: tuple[DenylistChunk, ...]
    digest: bytes
    full: bool = True


@dataclass(frozen=True)
class TrustedKey:
    """An e-code signer key; ``public_key`` is DER SubjectPublicKeyInfo."""

    kid: str
    alg: Literal["ES256", "EdDSA"]
    public_key: bytes
    not_before: str
    not_after: str
    revoked: bool


@dataclass(frozen=True)
class TrustList:
    """The e-code signer keys as the central published them.

    ``envelope`` is the signed envelope the list was read from (when it came from the
    central): a cache keeps that, not the parsed list, so that whoever loads the cache
    checks the central's signature again instead of trusting a file.
    """

    version: int
    issued_at: str
    keys: tuple[TrustedKey, ...]
    envelope: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def key(self, kid: str) -> TrustedKey | None:
        return next((k for k in self.keys if k.kid == kid), None)
