"""The security-module chain of generation 3 reads (PSAM first, then the central HSM).

The read path (``sscard read``, the SDK, the daemon) calls :func:`find_authenticator`
with the PSAM's connection, found by the composition root
(:func:`sscard_terminal.terminal.psam_discovery.find_psam`): card applications never open
a reader. When no PSAM is present, or the PSAM cannot serve a card (unified -2201 /
-2202 / -2203), the central HSM two-step takes over if a central client was given. The
returned :class:`ModuleChain` says in ``.name`` which module authenticated the last card.
"""

from __future__ import annotations

import contextlib
import logging
from types import TracebackType
from typing import Any

from ...apdu.processors import ApduProcessor
from ...apdu.transport import CardTransport
from ...errors import SecurityModuleUnavailableError, SscardError
from .context import CardAuthContext
from .hsm import HsmTwoStepAuthenticator, JsonPoster
from .psam import ForgeryRecorder, PsamAuthenticator

__all__ = ["ModuleChain", "find_authenticator"]

_log = logging.getLogger(__name__)


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
    psam_transport: CardTransport | None = None,
    central: Any = None,
    recorder: ForgeryRecorder | None = None,
) -> ModuleChain | None:
    """The security module to use, or None when there is none.

    ``psam_transport`` is the open PSAM connection (found by
    :func:`~sscard_terminal.terminal.psam_discovery.find_psam`, or a ``sim:`` PSAM); None
    means no PSAM. ``central`` is a :class:`~sscard_terminal.central.client.CentralClient`
    for the HSM two-step fallback. ``recorder`` is told of every forged card. The
    returned chain owns the PSAM connection: use it as a context manager, or close it
    when the terminal stops.
    """
    transport = psam_transport
    psam = PsamAuthenticator(transport, recorder=recorder) if transport is not None else None
    hsm = None
    if central is not None:
        poster: JsonPoster = central
        hsm = HsmTwoStepAuthenticator(poster, recorder=recorder)
    if psam is None and hsm is None:
        return None
    return ModuleChain(psam, hsm, psam_transport=transport)
