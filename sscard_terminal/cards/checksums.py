"""Check digits of the numbers on a social security card.

A wrong check digit is reported, never a reason to reject a card: foreign holders'
numbers follow a national scheme that is not a citizen ID number, and a terminal that
refuses them refuses a legitimate holder. Each check says which rule it applied.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "CheckResult",
    "CheckRule",
    "card_number_check_char",
    "check_card_number",
    "check_id_number",
    "id_check_digit",
]

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_CARD_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_CARD_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_CARD_VALUES = {c: i for i, c in enumerate(_CARD_ALPHABET)}


class CheckRule(enum.Enum):
    GB11643 = "GB 11643 (ISO 7064 MOD 11-2) citizen ID number"
    CARD_NUMBER = "social security card number (weights 3 7 9 10 5 8 4 2, mod 11)"
    NOT_APPLICABLE = "no check rule applies (not a citizen ID number)"


@dataclass(frozen=True)
class CheckResult:
    rule: CheckRule
    valid: bool | None
    """None when no rule applies (foreign or unknown number shapes)."""


def id_check_digit(first17: str) -> str:
    """The 18th character of a citizen ID number from its first 17 digits."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("an ID number's first 17 characters are digits")
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def check_id_number(number: str) -> CheckResult:
    """GB 11643 for 18-character citizen numbers; anything else: not applicable."""
    upper = number.upper()
    if len(upper) == 18 and upper[:17].isdigit() and (upper[17].isdigit() or upper[17] == "X"):
        return CheckResult(CheckRule.GB11643, id_check_digit(upper[:17]) == upper[17])
    return CheckResult(CheckRule.NOT_APPLICABLE, None)


def card_number_check_char(first8: str) -> str:
    """The 9th character of a card number from its first 8 (0-9, A-Z)."""
    upper = first8.upper()
    if len(upper) != 8:
        raise ValueError("a card number's first 8 characters are 0-9 or A-Z")
    try:
        total = sum(_CARD_VALUES[c] * w for c, w in zip(upper, _CARD_WEIGHTS, strict=True))
    except KeyError:
        raise ValueError("a card number's first 8 characters are 0-9 or A-Z") from None
    remainder = 11 - total % 11
    return "X" if remainder == 10 else "0" if remainder == 11 else str(remainder)


def check_card_number(number: str) -> CheckResult:
    upper = number.upper()
    if len(upper) == 9:
        try:
            return CheckResult(CheckRule.CARD_NUMBER,
                               card_number_check_char(upper[:8]) == upper[8])
        except ValueError:
            pass
    return CheckResult(CheckRule.NOT_APPLICABLE, None)
