"""Which reader holds the terminal's PSAM, and opening it.

Reader discovery is wiring, not a card application: ``cards/`` authenticates through a
PSAM it is handed as a :class:`~sscard_terminal.apdu.transport.CardTransport` and never
opens a reader itself. This module is where the terminal finds that transport: the
reader named by ``psam_reader`` (``--psam``), or else the first PC/SC reader other than
the user card's whose card answers as a PSAM. The result goes to
:func:`~sscard_terminal.cards.authentication.chain.find_authenticator` as
``psam_transport``.

``open_reader`` decides how a reader name becomes a transport (PC/SC by default), so a
reader scheme other than PC/SC (``sim:``) can be routed in without touching ``cards/``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..apdu.transport import CardTransport
from ..cards.authentication.psam import CODE_NO_PSAM, read_terminal_number
from ..drivers.pcsc import PcscTransport, list_readers
from ..errors import ReaderError, SecurityModuleUnavailableError, SscardError

__all__ = ["ReaderOpener", "find_psam"]

_log = logging.getLogger(__name__)

ReaderOpener = Callable[[str], CardTransport]
"""Opens the card in the named reader (raises a :class:`ReaderError` when it cannot)."""


def _open_pcsc(reader: str) -> CardTransport:
    return PcscTransport(reader)


def _is_psam(transport: CardTransport) -> bool:
    """Whether the card answers as a PSAM: it selects DF01 *and* has the terminal
    number file 0016. A user card (or a bank card) that happens to accept SELECT DF01
    has no such file, so it is never taken for the terminal's PSAM."""
    try:
        read_terminal_number(transport)
    except SscardError:
        return False
    return True


def find_psam(
    *,
    psam_reader: str | None = None,
    exclude_reader: str | None = None,
    open_reader: ReaderOpener = _open_pcsc,
) -> CardTransport | None:
    """A connection to the PSAM, or None. A named reader that is not a PSAM raises
    :class:`SecurityModuleUnavailableError` (-2201): the configuration is wrong.

    Without ``psam_reader`` the PC/SC readers with a card are searched, never
    ``exclude_reader`` (the user card's) nor one another program holds exclusively.
    ``open_reader`` opens a reader by name (default: PC/SC).
    """
    if psam_reader is not None:
        try:
            transport = open_reader(psam_reader)
        except ReaderError as exc:
            raise SecurityModuleUnavailableError(
                f"no PSAM: reader {psam_reader!r}: {exc}", code=CODE_NO_PSAM
            ) from exc
        if not _is_psam(transport):
            transport.close()
            raise SecurityModuleUnavailableError(
                f"no PSAM: the card in {psam_reader!r} does not answer SELECT DF01",
                code=CODE_NO_PSAM,
            )
        return transport
    try:
        readers = list_readers()
    except ReaderError as exc:
        _log.info("no PSAM search: %s", exc)
        return None
    for info in readers:
        if info.name == exclude_reader or not info.card_present or info.exclusive:
            continue
        try:
            transport = open_reader(info.name)
        except SscardError:
            continue
        if _is_psam(transport):
            return transport
        transport.close()
    return None
