"""Opening readers for the composition root: the user's card and the PSAM.

This is the one place that turns a reader *name* into a connection (PC/SC, or a
``sim:`` reader), so the card applications in ``cards/`` only ever see a
:class:`~sscard_terminal.apdu.transport.CardTransport`.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..apdu.transport import CardTransport
from ..deadline import Deadline
from ..drivers.pcsc import PcscTransport, wait_for_card
from ..drivers.sim import is_sim_reader, open_sim_reader

__all__ = ["open_user_card"]


def open_user_card(reader: str | None, deadline: Deadline, *,
                   exclude: Sequence[str] = ()) -> CardTransport:
    """Connect to the card in ``reader`` (None: the first reader with a card, other than
    those in ``exclude``, such as a PSAM's slot), waiting until ``deadline`` for one."""
    if reader is not None and is_sim_reader(reader):
        return open_sim_reader(reader)
    name = wait_for_card(reader, deadline, exclude=exclude)
    return PcscTransport(name)
