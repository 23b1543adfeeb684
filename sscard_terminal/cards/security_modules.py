"""Finding a security module for generation 3 reads (PSAM first, then the central HSM).

The read path (``sscard read``, the SDK, the daemon) calls :func:`find_authenticator`.
A PSAM is the reader named by ``psam_reader`` (``--psam``), or else the first reader
other than the user card's whose card answers SELECT DF01. When no PSAM is present, or
the PSAM cannot serve a card (unified -2201 / -2202 / -2203), the central HSM two-step
takes over if a central client was given. The returned :class:`ModuleChain` says in
``.name`` which module authenticated the last card.
"""

from __future__ import annotations

import contextlib
import logging
from types import TracebackType
from typing import Any

from ..apdu.processors import ApduProcessor
from ..apdu.transport import CardTransport
from ..drivers.pcsc import PcscTransport, list_readers
from ..errors import ReaderError, SecurityModuleUnavailableError, SscardError
from .hsm import HsmTwoStepAuthenticator, JsonPoster
from .psam import CODE_NO_PSAM, ForgeryRecorder, PsamAuthenticator, read_terminal_number
from .read_auth import CardAuthContext

__all__ = ["ModuleChain", "find_authenticator", "find_psam"]

_log = logging.getLogger(__name__)


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


def find_psam(*, psam_reader: str | None = None, exclude_reader: str | None = None) -> (
    CardTransport | None
):
    """A connection to the PSAM, or None. A named reader that is not a PSAM raises
    :class:`SecurityModuleUnavailableError` (-2201): the configuration is wrong."""
    if psam_reader is not None:
        try:
            transport = _open_pcsc(psam_reader)
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
            transport = _open_pcsc(info.name)
        except SscardError:
            continue
        if _is_psam(transport):
            return transport
        transport.close()
    return None


class ModuleChain:
    """PSAM first, HSM two-step when the PSAM is absent or cannot serve the card.

    Owns the PSAM connection: :meth:`close` (or ``with``) releases it.
    """

    def __init__(
        self,
        psam: PsamAuthenticator | None,
        hsm: HsmTwoStepAuthenticator | None,
        *,
        psam_transport: CardTransport | None = None,
    ) -> None:
        if psam is None and hsm is None:
            raise ValueError("a module chain needs a PSAM or an HSM")
        self.psam = psam
        self.hsm = hsm
        self._psam_transport = psam_transport
        self._psam_reader = psam_transport.reader_name if psam_transport is not None else None
        self._used: str | None = None
        self.last_fallback_code: int | None = None

    @property
    def name(self) -> str:
        """The module that authenticated the last card (before any: the first in line)."""
        if self._used is not None:
            return self._used
        first = self.psam if self.psam is not None else self.hsm
        assert first is not None
        return first.name

    @property
    def psam_reader(self) -> str | None:
        """The reader holding this chain's PSAM (when the chain owns its connection):
        never a reader to take the user's card from (``read_card`` excludes it)."""
        return self._psam_reader

    @property
    def forgeries_detected(self) -> int:
        return sum(m.forgeries_detected for m in (self.psam, self.hsm) if m is not None)

    def authenticate(self, processor: ApduProcessor, card: CardAuthContext) -> None:
        self._used = None
        self.last_fallback_code = None
        if self.psam is not None:
            try:
                # check() is skipped for an algorithm the PSAM already served, so the
                # PSAM can also turn out unable (another province's card: no read key;
                # the PSAM pulled) inside authenticate(): the HSM takes over there too.
                # A forged card or a card's refusal is not the PSAM's: never retried.
                self.psam.check(card)
                self.psam.authenticate(processor, card)
            except SecurityModuleUnavailableError as exc:
                if self.hsm is None:
                    raise
                _log.info("PSAM cannot serve the card (%s, %d): central HSM", exc, exc.code)
                self.last_fallback_code = exc.code
            else:
                self._used = self.psam.name
                return
        assert self.hsm is not None
        self.hsm.authenticate(processor, card)
        self._used = self.hsm.name

    def close(self) -> None:
        if self._psam_transport is not None:
            with contextlib.suppress(SscardError):
                self._psam_transport.close()
            self._psam_transport = None

    def __enter__(self) -> ModuleChain:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def find_authenticator(
    *,
    psam_reader: str | None = None,
    central: Any = None,
    exclude_reader: str | None = None,
    recorder: ForgeryRecorder | None = None,
    psam_transport: CardTransport | None = None,
) -> ModuleChain | None:
    """The security module to use, or None when there is none.

    ``psam_reader`` names the PSAM's reader (``--psam``); otherwise PSAMs are looked for
    among the readers other than ``exclude_reader`` (the user card's). ``central`` is a
    :class:`~sscard_terminal.central.client.CentralClient` for the HSM two-step fallback.
    ``psam_transport`` hands over an already open PSAM connection (``sim:``, tests).
    ``recorder`` is told of every forged card. The returned chain owns the PSAM
    connection: use it as a context manager, or close it when the terminal stops.
    """
    transport = psam_transport
    if transport is None:
        transport = find_psam(psam_reader=psam_reader, exclude_reader=exclude_reader)
    psam = PsamAuthenticator(transport, recorder=recorder) if transport is not None else None
    hsm = None
    if central is not None:
        poster: JsonPoster = central
        hsm = HsmTwoStepAuthenticator(poster, recorder=recorder)
    if psam is None and hsm is None:
        return None
    return ModuleChain(psam, hsm, psam_transport=transport)
