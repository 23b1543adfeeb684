"""The seam to card hardware: bytes in, bytes out.

Everything above this module (APDU processors, card applications, the daemon) talks to
a :class:`CardTransport` and nothing else, so it runs unchanged against pcscd, a
``sim:`` reader or a test double. It lives at the bottom of the protocol layer, not in
``drivers/``: the adapters there (``PcscTransport``, the ``sim:`` reader) implement it,
and nothing that speaks APDUs needs to reach down to them.
"""

from __future__ import annotations

import contextlib
import enum
from abc import ABC, abstractmethod
from types import TracebackType

__all__ = ["CardInterface", "CardTransport"]


class CardInterface(enum.Enum):
    """How the card is powered and spoken to."""

    CONTACT = "contact"
    CONTACTLESS = "contactless"
    UNKNOWN = "unknown"


class CardTransport(ABC):
    """One connected card. Timeouts are fixed when the transport is built.

    ``transmit`` takes a whole command APDU and returns the whole response APDU
    including its two status bytes. It raises only :mod:`sscard_terminal.errors`
    exceptions: ``CardRemovedError``, ``CardTimeoutError``, ``ReaderUnavailableError``.
    """

    @property
    @abstractmethod
    def atr(self) -> bytes:
        """The card's answer to reset (for contactless cards, the reader's pseudo-ATR)."""

    @property
    @abstractmethod
    def interface(self) -> CardInterface:
        """Contact or contactless, as far as the reader can tell."""

    @property
    @abstractmethod
    def reader_name(self) -> str:
        """The name of the reader this card sits in."""

    @abstractmethod
    def transmit(self, apdu: bytes) -> bytes:
        """Send one command APDU, return the response APDU (data + SW1 SW2)."""

    @abstractmethod
    def close(self) -> None:
        """Release the card. Idempotent."""

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Keep other programs' APDUs out of the card for the ``with`` block.

        A card shared through pcscd (a PSAM serving the daemon and ``sscard read``)
        may otherwise take another program's command between two of ours; a PSAM's
        "encrypt with the key derived last" then uses the other program's key. The
        default, for transports no other program can reach, does nothing.
        """
        return contextlib.nullcontext()

    def __enter__(self) -> CardTransport:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
