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
from collections.abc import Callable, Sequence

from ..apdu.transport import CardTransport
from ..cards.authentication.psam import CODE_NO_PSAM, read_terminal_number
from ..drivers.pcsc import PcscTransport, list_readers
from ..drivers.sim import is_sim_reader, open_sim_reader
from ..errors import ReaderError, SecurityModuleUnavailableError, SscardError

__all__ = ["ReaderOpener", "find_psam", "is_psam", "open_reader_by_name"]

_log = logging.getLogger(__name__)

ReaderOpener = Callable[[str], CardTransport]
"""Opens the card in the named reader (raises a :class:`ReaderError` when it cannot)."""


def open_reader_by_name(reader: str) -> CardTransport:
    """PC/SC by name, or a simulated reader (``--psam sim:psam``: no pcscd needed)."""
    if is_sim_reader(reader):
        return open_sim_reader(reader)
    return PcscTransport(reader)


def is_psam(transport: CardTransport) -> bool:
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
    exclude_readers: Sequence[str] = (),
    open_reader: ReaderOpener = open_reader_by_name,
) -> CardTransport | None:
    """A connection to the PSAM, or None. A named reader that is not a PSAM raises
    :class:`SecurityModuleUnavailableError` (-2201): the configuration is wrong.

    Without ``psam_reader`` the PC/SC readers with a card are searched, never
    ``exclude_reader`` nor ``exclude_readers`` (the user cards' readers: a daemon's lanes
    are never probed) nor one another program holds exclusively. ``open_reader`` opens a
    reader by name (default: PC/SC, or ``sim:`` for a simulated one).
    """
    excluded = {*exclude_readers, *((exclude_reader,) if exclude_reader else ())}
    if psam_reader is not None:
        try:
            transport = open_reader(psam_reader)
        except ReaderError as exc:
            raise SecurityModuleUnavailableError(
                f"no PSAM: reader {psam_reader!r}: {exc}", code=CODE_NO_PSAM
            ) from exc
        if not is_psam(transport):
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
        if info.name in excluded or not info.card_present or info.exclusive:
            continue
        try:
            transport = open_reader(info.name)
        except SscardError:
            continue
        if is_psam(transport):
            return transport
        transport.close()
    return None
