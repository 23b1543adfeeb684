"""Masking of personal data for logs, traces, errors and default output.

Name, social security (ID) number, card number and bank account number are personal
data (Hainan §5). They are masked everywhere by default; unmasked output is an
explicit, logged opt-in of a technician.
"""

from __future__ import annotations

__all__ = ["mask_card_number", "mask_id_number", "mask_name", "mask_pan", "mask_text"]


def mask_name(name: str) -> str:
    """Keep the first character: ``张三丰`` -> ``张**``."""
    if not name:
        return ""
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def mask_id_number(number: str) -> str:
    """Keep the region (first 4) and the last 4: ``3303**********1234``.

    A shorter number (a foreign holder's social security number under the national rule,
    an old 15-digit ID) shows no more than a third of itself, so that a short number is
    not mostly in clear: ``GBR330385061201`` -> ``GBR**********01``.
    """
    if len(number) >= 18:
        return number[:4] + "*" * (len(number) - 8) + number[-4:]
    shown = len(number) // 3
    head, tail = shown - shown // 2, shown // 2
    return number[:head] + "*" * (len(number) - shown) + (number[-tail:] if tail else "")


def mask_card_number(number: str) -> str:
    """Keep the first and the last character of the 9-character card number."""
    if len(number) <= 2:
        return "*" * len(number)
    return number[0] + "*" * (len(number) - 2) + number[-1]


def mask_pan(pan: str) -> str:
    """Keep the first 6 (issuer) and last 4 digits of a bank card number."""
    if len(pan) <= 10:
        return "*" * len(pan)
    return pan[:6] + "*" * (len(pan) - 10) + pan[-4:]


def mask_text(value: str) -> str:
    """Mask an arbitrary personal string, keeping only its length visible."""
    return "*" * len(value)
