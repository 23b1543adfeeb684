"""The reader SDK: one call from "a card is (about to be) on the reader" to CardInfo.

``read_card()`` waits for a card (up to ``timeout``, as a :class:`Deadline`), reads it
and releases it. A reader named ``sim:<holder>`` (e.g. ``sim:gen3-adult``) is a virtual
card run in-process: the SDK then needs no pcscd. A PSAM's slot is never taken for "the
first reader with a card": name it in ``exclude_readers``, or pass the module chain of
:func:`~sscard_terminal.cards.authentication.chain.find_authenticator` (given the PSAM that
:func:`~sscard_terminal.terminal.psam_discovery.find_psam` found), which knows it.
"""

from __future__ import annotations

from collections.abc import Sequence

from .apdu.transport import CardTransport
from .cards.authentication.chain import ModuleChain
from .cards.authentication.context import ReadAuthenticator
from .cards.card_info import CardInfo, CardReadStatus
from .cards.ssse import read_card_info
from .cards.unified import format_basic_info
from .deadline import Deadline
from .decision.engine import CardValidator
from .terminal.card_access import open_user_card
from .terminal.read_status import check_read_status

__all__ = ["CardInfo", "CardReadStatus", "excluded_readers", "format_basic_info", "open_card",
           "read_card"]


def excluded_readers(authenticator: ReadAuthenticator | None,
                     exclude_readers: Sequence[str] = ()) -> tuple[str, ...]:
    """The readers never to take the user's card from: ``exclude_readers`` plus the PSAM
    reader of a :class:`ModuleChain` (a PSAM answers no social security application, so
    picking it would fail the read)."""
    excluded = tuple(exclude_readers)
    if isinstance(authenticator, ModuleChain) and authenticator.psam_reader is not None:
        excluded += (authenticator.psam_reader,)
    return excluded


def open_card(reader: str | None, deadline: Deadline, *,
              exclude: Sequence[str] = ()) -> CardTransport:
    """Connect to the card in ``reader`` (None: the first reader with a card, other than
    those in ``exclude``, such as a PSAM's slot), waiting until ``deadline`` for one."""
    return open_user_card(reader, deadline, exclude=exclude)


def read_card(
    reader: str | None = None,
    timeout: float = 5.0,
    *,
    authenticator: ReadAuthenticator | None = None,
    read_pan: bool = False,
    exclude_readers: Sequence[str] = (),
    central: CardValidator | None = None,
    withhold_unusable: bool = True,
) -> CardInfo:
    """Wait up to ``timeout`` seconds for a card and read it (see ``read_card_info``).

    With ``central`` (a :class:`~sscard_terminal.central.client.CentralClient`) the read
    carries the card's status from the central in ``card_status``, asked within the same
    ``timeout``, or ``unknown`` (offline) when the central did not answer in time; a lost,
    void, suspended or expired card then comes without its holder data unless
    ``withhold_unusable`` is False (docs/card-path.md, "Status on every read").

    With ``reader`` None the first reader with a card is read, never one of
    ``exclude_readers`` nor the PSAM reader of ``authenticator`` (a :class:`ModuleChain`).
    Raises NoReaderError, NoCardError, NotSocialSecurityCardError, CardRemovedError,
    MalformedResponseError, ForgedCardError, ... (all :class:`SscardError`).
    """
    exclude = excluded_readers(authenticator, exclude_readers)
    deadline = Deadline.after(timeout)
    with open_card(reader, deadline, exclude=exclude) as transport:
        info = read_card_info(transport, authenticator=authenticator, read_pan=read_pan)
    if central is None:
        return info
    return check_read_status(info, central, deadline, withhold=withhold_unusable)
