"""Return codes of sscard-terminal's own beside the unified interface's (docs/local-api.md,
"Card status and e-codes"): a desk's read of a card the central calls lost, void,
suspended, expired or unknown, and the e-code verification for the desk.

They sit in a range the unified interface does not use (-2301..-2399), so HIS software
written for the DLL treats them as failures, and software that knows them can say why.
"""

from __future__ import annotations

import enum

from ..cards.card_info import CardReadStatus

__all__ = ["StatusCode", "code_for_identity_reason", "code_for_status"]


class StatusCode(enum.IntEnum):
    CARD_LOST = -2301          # temporary or formal loss reported
    CARD_VOID = -2302          # replaced, renewed or cancelled
    CARD_SUSPENDED = -2303     # applications suspended (misuse, fraud, lending)
    CARD_EXPIRED = -2304       # past its validity
    CARD_UNKNOWN = -2305       # the central does not know the card
    ECODE_REFUSED = -2310      # the code was refused (signature, expiry, replay, status...)
    ECODE_DEFERRED = -2311     # online-only code, central unreachable: wait for it
    ECODE_UNREACHABLE = -2312  # online-only code, central unreachable: refused
    ECODE_NOT_CONFIGURED = -2313   # no e-code verification on this local API
    IDENTITY_OFFLINE = -2320   # identity desk, central unreachable: no identity offline
    IDENTITY_NOT_AUTHENTICATED = -2321   # no complete read authenticated by PSAM or HSM
    IDENTITY_REFUSED = -2322   # refused for another reason (``reason`` says which)
    IDENTITY_NOT_CONFIGURED = -2324   # no identity release on this local API


_BY_REASON = {
    "card_lost": StatusCode.CARD_LOST,
    "card_void": StatusCode.CARD_VOID,
    "card_suspended": StatusCode.CARD_SUSPENDED,
    "card_expired": StatusCode.CARD_EXPIRED,
    "card_unknown": StatusCode.CARD_UNKNOWN,
    "identity_offline_not_allowed": StatusCode.IDENTITY_OFFLINE,
    "offline_not_allowed": StatusCode.IDENTITY_OFFLINE,
    "identity_not_authenticated": StatusCode.IDENTITY_NOT_AUTHENTICATED,
    "card_not_authenticated": StatusCode.IDENTITY_NOT_AUTHENTICATED,
}


def code_for_identity_reason(reason: str) -> int:
    """The code of a refused identity presentation, from its stable reason."""
    return int(_BY_REASON.get(reason, StatusCode.IDENTITY_REFUSED))


_BY_STATUS = {
    "temporary_loss": StatusCode.CARD_LOST,
    "formal_loss": StatusCode.CARD_LOST,
    "replaced": StatusCode.CARD_VOID,
    "renewed": StatusCode.CARD_VOID,
    "cancelled": StatusCode.CARD_VOID,
    "suspended": StatusCode.CARD_SUSPENDED,
    "expired": StatusCode.CARD_EXPIRED,
    "unknown": StatusCode.CARD_UNKNOWN,
}


def code_for_status(status: CardReadStatus | None) -> int:
    """0 for a usable card or an unknown (offline) status, else the card's code."""
    if status is None or not status.online or status.usable:
        return 0
    return int(_BY_STATUS.get(status.status, StatusCode.CARD_UNKNOWN))
