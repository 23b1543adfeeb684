"""The reader SDK: one call from "a card is (about to be) on the reader" to CardInfo.

``read_card()`` waits for a card (up to ``timeout``, as a :class:`Deadline`), reads it
and releases it. A reader named ``sim:<holder>`` (e.g. ``sim:gen3-adult``) is a virtual
card run in-process: the SDK then needs no pcscd.
"""

from __future__ import annotations

from collections.abc import Sequence

from .cards.card_info import CardInfo
from .cards.read_auth import ReadAuthenticator
from .cards.ssse import read_card_info
from .cards.unified import format_basic_info
from .deadline import Deadline
from .drivers.pcsc import PcscTransport, wait_for_card
from .drivers.sim import is_sim_reader, open_sim_reader
from .drivers.transport import CardTransport

__all__ = ["CardInfo", "format_basic_info", "open_card", "read_card"]


def open_card(reader: str | None, deadline: Deadline, *,
              exclude: Sequence[str] = ()) -> CardTransport:
    """Connect to the card in ``reader`` (None: the first reader with a card, other than
    those in ``exclude``, such as a PSAM's slot), waiting until ``deadline`` for one."""
    if reader is not None and is_sim_reader(reader):
        return open_sim_reader(reader)
    name = wait_for_card(reader, deadline, exclude=exclude)
    return PcscTransport(name)


def read_card(
    reader: str | None = None,
    timeout: float = 5.0,
    *,
    authenticator: ReadAuthenticator | None = None,
    read_pan: bool = False,
) -> CardInfo:
    """Wait up to ``timeout`` seconds for a card and read it (see ``read_card_info``).

    Raises NoReaderError, NoCardError, NotSocialSecurityCardError, CardRemovedError,
    MalformedResponseError, ForgedCardError, ... (all :class:`SscardError`).
    """
    with open_card(reader, Deadline.after(timeout)) as transport:
        return read_card_info(transport, authenticator=authenticator, read_pan=read_pan)
