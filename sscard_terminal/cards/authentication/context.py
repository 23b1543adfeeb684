"""The seam between the card reader and a security module (PSAM or central HSM).

A generation 3 card opens its holder data only after internal authentication (the card
proves it is genuine) and external authentication (the terminal proves it may read).
The card reader collects what the module needs into a :class:`CardAuthContext` and hands
it, with the card's processor, to a :class:`ReadAuthenticator`. Implementations live in
their own modules; the reader knows only this protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ...apdu.processors import ApduProcessor

__all__ = ["CardAuthContext", "ReadAuthenticator"]


@dataclass(frozen=True)
class CardAuthContext:
    """What a security module needs to know about the card in front of it."""

    card_identification_code: bytes
    """The 16 bytes of EF05 tag 01: the key-diversification input."""
    algorithm: int
    """From the SSSE FCI tag 9F0C (``86 01 xx``): 01 3DES, 02 SSF33, 03 SM4."""
    atr: bytes
    region: str
    """The issuing region code (first 6 characters of the identification code's hex)."""


class ReadAuthenticator(Protocol):
    """Runs internal then external authentication on the card behind ``processor``.

    Returns normally when the card is genuine and its remaining records are open for
    this session. Raises :class:`~sscard_terminal.errors.ForgedCardError` when internal
    authentication does not match, :class:`~sscard_terminal.errors.SecurityModuleError`
    when the module is missing, lacks the key or the algorithm.
    """

    @property
    def name(self) -> str:
        """Which module authenticated, for ``sscard read`` (``psam:<reader>``, ``hsm:central``)."""
        ...

    def authenticate(self, processor: ApduProcessor, card: CardAuthContext) -> None:
        ...
