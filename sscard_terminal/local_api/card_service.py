"""Blocking card work behind the local API: one reader, one operation at a time.

Runs in worker threads (the asyncio transports call it through an executor). The
reader's lock is a :class:`threading.Lock` held by the thread doing the card I/O, so
a client that vanishes mid-request cannot release it while the card is still busy.

The HSM two-step keeps the card connected between ``Step1`` and ``Step2``: the open
session belongs to one owner (a Unix-socket or WebSocket connection, or the HTTP
token) and is closed (card released) when its owner sends Step2, disconnects, or
lets it expire, and when any new card operation on the reader starts (the reader
holds one card: a new read supersedes a half-done two-step).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from ..apdu.transport import CardInterface, CardTransport
from ..cards.authentication.context import ReadAuthenticator
from ..cards.authentication.psam import ForgeryRecorder
from ..cards.card_info import CardInfo, CardReadStatus
from ..cards.ssse import read_card_info
from ..cards.unified import (
    HsmTwoStepSession,
    UnifiedCode,
    format_basic_info,
    unified_code_for,
)
from ..deadline import Deadline
from ..errors import SscardError
from .items import ItemFile, format_items, needs_authentication
from .status_codes import code_for_status

__all__ = ["CardOpener", "CardReaderService", "CardSettings", "IType"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")

StatusChecker = Callable[[CardInfo, Deadline], CardInfo]
"""Adds the central's status to a read (``terminal.read_status.check_read_status``)."""

CardOpener = Callable[[Deadline], CardTransport]
"""Connects to the user's card, waiting until the deadline for one (e.g.
``lambda d: sdk.open_card(reader, d, exclude=...)``)."""


class IType:
    """The unified interface's ``iType``: which interface to read the card on."""

    CONTACT = 1
    CONTACTLESS = 2
    AUTO_CONTACT_FIRST = 3
    AUTO_CONTACTLESS_FIRST = 4
    ALL = (1, 2, 3, 4)


@dataclass(frozen=True)
class CardSettings:
    """How the reader is used; the terminal identifiers go into every iReadCardBas string."""

    terminal_number: str = ""
    device_number: str = ""
    card_wait_s: float = 3.0
    """How long a read waits for a card to be presented."""
    hsm_session_timeout_s: float = 30.0
    """How long the card stays connected between Step1 and Step2."""


@dataclass
class _OpenSession:
    owner: str
    serial: int
    transport: CardTransport
    session: HsmTwoStepSession
    timer: threading.Timer


def _interface_refused(transport: CardTransport, itype: int) -> bool:
    """Whether the card sits on the other interface than the one ``iType`` 1/2 asks
    for (an unknown interface is accepted: not every reader says which it is)."""
    wanted = {IType.CONTACT: CardInterface.CONTACT,
              IType.CONTACTLESS: CardInterface.CONTACTLESS}.get(itype)
    if wanted is None or transport.interface is CardInterface.UNKNOWN:
        return False
    return transport.interface is not wanted


class CardReaderService:
    """The card operations of the unified interface on one reader.

    Every method blocks (card I/O) and answers ``(code, text)`` as the unified
    interface does: ``(0, string)`` or ``(negative code, "")``; it never raises for
    a card or security-module failure. The strings carry personal data in clear (HIS
    expects it): nothing here logs them. ``recorder`` is told of every card the
    two-step refuses as forged (-25); give the authenticator its own for the one-step.
    """

    def __init__(
        self,
        opener: CardOpener,
        *,
        authenticator: ReadAuthenticator | None = None,
        settings: CardSettings | None = None,
        recorder: ForgeryRecorder | None = None,
        status_checker: StatusChecker | None = None,
    ) -> None:
        self._opener = opener
        self._status_checker = status_checker
        self._authenticator = authenticator
        self.settings = settings or CardSettings()
        self._recorder = recorder
        self.forgeries_detected = 0
        """Cards refused by the two-step (-25); the authenticator counts its own."""
        self._lock = threading.Lock()
        self._session: _OpenSession | None = None
        self._serials = itertools.count(1)
        self._closed = False

    # --- operations --------------------------------------------------------------------

    def read_basic(self, itype: int, deadline: Deadline) -> tuple[int, str]:
        """``iReadCardBas``: read the card with the configured security module.

        A generation 3 card read without a module (none configured) is -2201, as the
        unified interface answers; a module that cannot serve the card gives its own
        -2201/-2202/-2203, after which HIS software switches to the two-step.
        """
        code, text, _ = self.read_basic_checked(itype, deadline)
        return code, text

    def read_basic_checked(self, itype: int,
                           deadline: Deadline) -> tuple[int, str, CardReadStatus | None]:
        """``iReadCardBas`` with the card's status: with a status checker (a central is
        configured) a lost, void, suspended, expired or unknown card is answered with its
        :class:`StatusCode` (the string empty when its holder data was withheld); an
        unknown status (offline) is code 0 with the status saying so."""
        info = self._read(itype, deadline)
        if isinstance(info, int):
            return info, "", None
        if not info.complete:
            return int(UnifiedCode.NO_PSAM), "", None
        if self._status_checker is not None:
            info = self._status_checker(info, deadline)
        status = info.card_status
        code = code_for_status(status)
        if status is not None and status.withheld:
            return code, "", status
        text = format_basic_info(info, terminal_number=self.settings.terminal_number,
                                 device_number=self.settings.device_number)
        assert isinstance(text, str)
        return code, text, status

    def run_on_card(self, itype: int, deadline: Deadline,
                    work: Callable[[CardTransport], _T]) -> _T | int:
        """``work`` on the card, holding the reader as every operation does (an identity
        presentation reads, decides and journals in one go); a code when there is no card
        to work on."""
        with self._reader(deadline) as busy:
            if busy is not None:
                return busy
            self._end_session_locked("superseded by a new read")
            try:
                with self._open(deadline) as transport:
                    if _interface_refused(transport, itype):
                        return int(UnifiedCode.NO_CARD)
                    return work(transport)
            except SscardError as exc:
                return unified_code_for(exc)

    def read_items(self, itype: int, files: tuple[ItemFile, ...],
                   deadline: Deadline) -> tuple[int, str]:
        """``iReadCard``: the named items. A generation 3 card without a security
        module still gives its free items (01, 03, 07); anything more is -2201."""
        code, text, _ = self.read_items_checked(itype, files, deadline)
        return code, text

    def read_items_checked(self, itype: int, files: tuple[ItemFile, ...], deadline: Deadline
                           ) -> tuple[int, str, CardReadStatus | None]:
        """``iReadCard`` with the card's status, as :meth:`read_basic_checked`."""
        info = self._read(itype, deadline)
        if isinstance(info, int):
            return info, "", None
        if not info.complete and needs_authentication(files):
            return int(UnifiedCode.NO_PSAM), "", None
        if self._status_checker is not None:
            info = self._status_checker(info, deadline)
        status = info.card_status
        code = code_for_status(status)
        if status is not None and status.withheld:
            return code, "", status
        return code, format_items(files, info), status

    def hsm_step1(self, owner: str, itype: int, deadline: Deadline) -> tuple[int, str]:
        """``iReadCardBas_HSM_Step1``: connect, run the card side of step 1 and keep the
        card connected for ``owner``'s Step2 (until it expires)."""
        with self._reader(deadline) as busy:
            if busy is not None:
                return busy, ""
            self._end_session_locked("superseded by a new Step1")
            try:
                transport = self._opener(deadline.capped(self.settings.card_wait_s))
            except SscardError as exc:
                return unified_code_for(exc, hsm=True), ""
            if _interface_refused(transport, itype):
                self._close_transport(transport)
                return int(UnifiedCode.NO_CARD), ""
            session = HsmTwoStepSession(transport,
                                        terminal_number=self.settings.terminal_number,
                                        device_number=self.settings.device_number,
                                        recorder=self._recorder)
            try:
                code, text = session.step1()
            except BaseException:
                self._close_transport(transport)
                raise
            if code != 0:
                self._close_transport(transport)
                return code, ""
            serial = next(self._serials)
            timer = threading.Timer(self.settings.hsm_session_timeout_s,
                                    self._expire, args=(owner, serial))
            timer.daemon = True
            self._session = _OpenSession(owner, serial, transport, session, timer)
            timer.start()
            return 0, text

    def hsm_step2(self, owner: str, key: str, deadline: Deadline) -> tuple[int, str]:
        """``iReadCardBas_HSM_Step2``: finish ``owner``'s two-step with the HSM's key
        string and release the card. Without a Step1 of this owner (none, expired,
        superseded, or another client's) the answer is -23, illegal input."""
        with self._reader(deadline) as busy:
            if busy is not None:
                return busy, ""
            open_session = self._session
            if open_session is None or open_session.owner != owner:
                return int(UnifiedCode.ILLEGAL_INPUT), ""
            try:
                return open_session.session.step2(key)
            finally:
                self.forgeries_detected += open_session.session.forgeries_detected
                self._end_session_locked(None)

    def has_session(self, owner: str) -> bool:
        """Whether ``owner`` holds the card for a Step2 (for tests and status)."""
        open_session = self._session
        return open_session is not None and open_session.owner == owner

    def release(self, owner: str) -> None:
        """Close ``owner``'s two-step session, if any (its connection went away)."""
        with self._lock:
            open_session = self._session
            if open_session is not None and open_session.owner == owner:
                self._end_session_locked("its client disconnected")

    def close(self) -> None:
        """Release the card of any open session; later operations answer -11."""
        with self._lock:
            self._closed = True
            self._end_session_locked("the local API is stopping")

    # --- plumbing ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _reader(self, deadline: Deadline) -> Iterator[int | None]:
        """The reader, taken before ``deadline``: yields None, or the code to answer
        instead (-11) when another operation keeps it busy or the API is stopping."""
        wait = deadline.remaining()
        if not self._lock.acquire(timeout=-1 if wait == float("inf") else wait):
            _log.info("reader busy until the deadline")
            yield int(UnifiedCode.READER_CONNECTION_ERROR)
            return
        try:
            yield int(UnifiedCode.READER_CONNECTION_ERROR) if self._closed else None
        finally:
            self._lock.release()

    def _read(self, itype: int, deadline: Deadline) -> CardInfo | int:
        """The card read whole (as far as the security module allows), or the code."""
        with self._reader(deadline) as busy:
            if busy is not None:
                return busy
            self._end_session_locked("superseded by a new read")
            try:
                with self._open(deadline) as transport:
                    if _interface_refused(transport, itype):
                        return int(UnifiedCode.NO_CARD)
                    return read_card_info(transport, authenticator=self._authenticator)
            except SscardError as exc:
                return unified_code_for(exc)

    def _expire(self, owner: str, serial: int) -> None:
        with self._lock:
            open_session = self._session
            if open_session is not None and (open_session.owner, open_session.serial) == (
                    owner, serial):
                self._end_session_locked("it expired")

    def _end_session_locked(self, why: str | None) -> None:
        open_session, self._session = self._session, None
        if open_session is None:
            return
        open_session.timer.cancel()
        if why is not None:
            _log.info("HSM two-step session of %s closed: %s", open_session.owner, why)
        self._close_transport(open_session.transport)

    @staticmethod
    def _close_transport(transport: CardTransport) -> None:
        try:
            transport.close()
        except SscardError as exc:
            _log.info("releasing the card: %s", exc)

    @contextlib.contextmanager
    def _open(self, deadline: Deadline) -> Iterator[CardTransport]:
        transport = self._opener(deadline.capped(self.settings.card_wait_s))
        try:
            yield transport
        finally:
            self._close_transport(transport)
