"""What every simulated card-slot device (user card, PSAM) offers its link.

The vpcd socket link (``vpcd_link``) and the in-process ``sim:`` reader both drive a
:class:`VirtualDevice`; neither knows what kind of card it is.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["VirtualDevice"]


class VirtualDevice(Protocol):
    """A card as the reader sees it: power, ATR, and one APDU at a time."""

    @property
    def atr(self) -> bytes:
        """Answer to reset; for a contactless card, the PC/SC part 3 pseudo-ATR."""
        ...

    def power_on(self) -> None:
        """Cold reset: forget the session (selected file, authentication state)."""
        ...

    def power_off(self) -> None:
        ...

    def transmit(self, apdu: bytes) -> bytes:
        """Answer one command APDU with data + SW. Unknown commands answer 6D00/6E00,
        never a silent 9000."""
        ...
