"""The simulator's ``sim:`` devices, offered to the product as entry points.

pyproject.toml declares :data:`CARDS` and :data:`PSAMS` in the group
``sscard_terminal.sim_devices`` (see :mod:`sscard_terminal.plugins`), so ``--reader
sim:gen3-adult`` and ``--psam sim:psam`` work without the product naming this package.
The PSAMs hold the public test master keys, like the vpcd PSAM of the PC/SC tests:
``psam`` serves every card, ``psam-no-read-key`` gives unified code -2203 and
``psam-3des-only`` -2202 on an SM4 card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .virtual_card import VirtualCard, holder_names
from .virtual_psam import VirtualPsam, full_psam, psam_without_read_key, psam_without_sm4

__all__ = ["CARDS", "PSAMS", "CardProvider", "PsamProvider"]


@dataclass(frozen=True)
class CardProvider:
    """The virtual cards of the synthetic holders in data/ (``sim:<holder>``)."""

    kind: str = "card"

    def names(self) -> list[str]:
        return holder_names()

    def open(self, name: str) -> VirtualCard:
        return VirtualCard.from_holder(name)  # KeyError for a holder that does not exist


_PSAMS: dict[str, Callable[[], VirtualPsam]] = {
    "psam": full_psam,
    "psam-no-read-key": psam_without_read_key,
    "psam-3des-only": psam_without_sm4,
}


@dataclass(frozen=True)
class PsamProvider:
    """Virtual PSAMs (``sim:psam`` and its variants missing a key or an algorithm)."""

    kind: str = "PSAM"

    def names(self) -> list[str]:
        return list(_PSAMS)

    def open(self, name: str) -> VirtualPsam:
        return _PSAMS[name]()


CARDS = CardProvider()
PSAMS = PsamProvider()
