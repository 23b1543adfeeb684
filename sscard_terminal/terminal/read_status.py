"""The card's status on every machine read for a desk (issue 22.2, Hainan §32).

A read for a hospital or service desk (the SDK's ``read_card``, ``sscard read``, the local
API's ``iReadCardBas``) is not only the chip's data: with a central configured it carries
the card's status from the central, asked within what is left of the caller's budget, or
says plainly that the status is unknown because the central did not answer. A card that is
lost, void, suspended or expired is then answered as such, and its holder data is withheld
where the deployment says so (the default): a desk must not register a patient on a card
reported lost.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from ..apdu.transport import CardInterface
from ..cards.card_info import CardInfo, CardReadStatus
from ..central.models import CardStatus, Channel
from ..deadline import Deadline
from ..decision.engine import CardValidator
from ..errors import CentralError, DeadlineExceededError

__all__ = ["STATUS_UNKNOWN_MESSAGE", "check_read_status", "withhold_holder_data"]

_log = logging.getLogger(__name__)

STATUS_UNKNOWN_MESSAGE = "status unknown (offline): the central did not answer in time"

_MESSAGES = {
    CardStatus.NORMAL: "the central reports the card normal",
    CardStatus.TEMPORARY_LOSS: "the card is reported lost (temporary loss)",
    CardStatus.FORMAL_LOSS: "the card is reported lost (formal loss)",
    CardStatus.REPLACED: "the card is void: a replacement was applied for",
    CardStatus.RENEWED: "the card is void: it was renewed",
    CardStatus.CANCELLED: "the card is void: cancelled",
    CardStatus.EXPIRED: "the card has expired",
    CardStatus.SUSPENDED: "the card's applications are suspended",
    CardStatus.UNKNOWN: "the central does not know this card",
}


def check_read_status(info: CardInfo, central: CardValidator, deadline: Deadline, *,
                      withhold: bool = True) -> CardInfo:
    """``info`` with its :class:`CardReadStatus` from ``central`` (asked until ``deadline``),
    the holder data withheld when the card is not usable and ``withhold`` is set. A central
    that is down, slow or answering garbage gives ``unknown``/offline, never an error."""
    if len(info.card_identification_code) != 32 or not info.card_number:
        return replace(info, card_status=CardReadStatus(
            "unknown", False, "the card has no identification code"))
    channel = (Channel.CONTACTLESS if info.interface is CardInterface.CONTACTLESS
               else Channel.CONTACT)
    try:
        validation = central.validate_card(info.card_identification_code, info.card_number,
                                           info.region, channel, deadline)
    except (CentralError, DeadlineExceededError) as exc:
        _log.info("card status for a desk read: unknown (%s)", type(exc).__name__)
        return replace(info, card_status=CardReadStatus("unknown", False,
                                                        STATUS_UNKNOWN_MESSAGE))
    central_status = validation.status
    checked = replace(info, card_status=CardReadStatus(central_status.value, True,
                                                       _MESSAGES[central_status]))
    if not central_status.usable and withhold:
        return withhold_holder_data(checked)
    return checked


def withhold_holder_data(info: CardInfo) -> CardInfo:
    """The read without the holder's personal data (name, ID number, birth, sex,
    ethnicity, birthplace, bank account): what is left identifies the card, not the
    person."""
    status = info.card_status
    return replace(info, name="", social_security_number="", birth_date=None, birthplace="",
                   sex_code="", ethnicity_code="", pan=None,
                   card_status=None if status is None else replace(status, withheld=True),
                   warnings=list(info.warnings))
