"""What the local API adds for a desk beside the unified interface's strings: the card's
status on a read, and e-code verification (a hospital takes the medical e-voucher and the
e-card code at the same counter as the card). docs/local-api.md, "Card status and e-codes".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..apdu.transport import CardTransport
from ..cards.card_info import CardReadStatus
from ..deadline import Deadline
from ..ecode import ECodeVerification
from ..ecode.reasons import Reason
from ..messages import MessageKind, bilingual
from .status_codes import StatusCode, code_for_identity_reason

__all__ = ["ECodeCheck", "IdentityPresenter", "ecode_answer", "identity_answer",
           "status_fields"]

ECodeCheck = Callable[[str, Deadline], ECodeVerification]
"""Verifies a scanned text within a deadline (the terminal's ``ECodeVerifier.verify``)."""

class _Decided(Protocol):
    @property
    def notices(self) -> Sequence[str]: ...


class _Shown(Protocol):
    """What the answer needs of a presentation (``terminal.presentation.Presentation``)."""

    @property
    def reason(self) -> str: ...
    @property
    def transaction_id(self) -> str: ...
    @property
    def online(self) -> bool: ...
    @property
    def accepted(self) -> bool: ...
    @property
    def decision(self) -> _Decided | None: ...


class _Level(Protocol):
    @property
    def value(self) -> str: ...


class _Identity(Protocol):
    @property
    def level(self) -> _Level: ...
    def to_unified(self) -> str: ...


class IdentityShown(Protocol):
    """An identity presentation (``terminal.identity.IdentityPresentation``): the local API
    is handed the presenter by its ``__main__`` and never builds a terminal itself."""

    @property
    def presentation(self) -> _Shown: ...
    @property
    def identity(self) -> _Identity | None: ...


IdentityPresenter = Callable[[CardTransport, str], IdentityShown]
"""Presents the card behind the transport at an identity desk for a caller (the terminal's
``Presenter.present_identity``)."""


def identity_answer(shown: IdentityShown) -> tuple[int, str, dict[str, Any]]:
    """``(code, data, fields)`` for ``readIdentity``: 0 and the released identity's
    pipe-separated string; a :class:`StatusCode` when refused, with the stable reason."""
    presentation = shown.presentation
    kind = (MessageKind.REASON if presentation.decision is not None
            or presentation.reason.startswith(("identity_", "card_not_auth"))
            else MessageKind.REFUSAL)
    words = bilingual(kind, presentation.reason)
    fields: dict[str, Any] = {
        "reason": presentation.reason, "transaction_id": presentation.transaction_id,
        "online": presentation.online, "message_zh": words["zh"], "message_en": words["en"],
        "identity_release": shown.identity.level.value if shown.identity else None,
        "notices": list(presentation.decision.notices) if presentation.decision else []}
    if shown.identity is not None:
        return 0, shown.identity.to_unified(), fields
    if presentation.accepted:
        return int(StatusCode.IDENTITY_NOT_CONFIGURED), "", fields
    return code_for_identity_reason(presentation.reason), "", fields


def status_fields(status: CardReadStatus) -> dict[str, Any]:
    """The JSON fields that carry a read's card status beside ``code`` and ``data``."""
    shown = bilingual(MessageKind.STATUS, status.status)
    if not status.online:
        shown = bilingual(MessageKind.NOTICE, "status_unknown")
    return {"card_status": status.status, "card_status_online": status.online,
            "card_status_message": status.message, "holder_withheld": status.withheld,
            "message_zh": shown["zh"], "message_en": shown["en"]}


def ecode_answer(verification: ECodeVerification) -> tuple[int, str, dict[str, Any]]:
    """``(code, data, fields)`` for ``verifyECode``: 0 and ``kind|reason|card status|``
    when accepted; a :class:`StatusCode` otherwise. No personal data in any of them."""
    card = verification.validation
    status = card.status.value if card is not None else ""
    data = f"{verification.kind.value}|{verification.reason.value}|{status}|"
    shown = bilingual(MessageKind.ECODE, verification.reason.value)
    fields = {"ecode_kind": verification.kind.value, "ecode_reason": verification.reason.value,
              "ecode_message": verification.message, "card_status": status or None,
              "online": verification.online, "message_zh": shown["zh"],
              "message_en": shown["en"]}
    if verification.accepted:
        return 0, data, fields
    if verification.reason is Reason.DEFERRED:
        code = StatusCode.ECODE_DEFERRED
    elif verification.reason is Reason.CENTRAL_UNREACHABLE:
        code = StatusCode.ECODE_UNREACHABLE
    else:
        code = StatusCode.ECODE_REFUSED
    return int(code), data, fields
