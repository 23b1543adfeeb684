"""The PC/SC adapter: the only module that imports pyscard.

pyscard is imported lazily (inside :func:`_scard`) so importing the package stays light
and a machine without pcsc-lite can still use ``sim:`` readers. Only the low-level
``smartcard.scard`` API is used: pyscard's high-level monitors stop silently when pcscd
restarts (field-notes.md), so :class:`ReaderMonitor` runs its own
``SCardGetStatusChange`` loop on its own context, separate from APDU exchange, and
re-establishes the context when pcscd comes back.

Every PC/SC error is translated into :mod:`sscard_terminal.errors`; pyscard's
``list[int]`` never leaves this module.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..apdu.transport import CardInterface, CardTransport
from ..deadline import Deadline
from ..errors import (
    CardRemovedError,
    CardTimeoutError,
    NoCardError,
    NoReaderError,
    ReaderError,
    ReaderUnavailableError,
)

__all__ = [
    "PNP_NOTIFICATION",
    "CardWaiter",
    "PcscTransport",
    "ReaderEvent",
    "ReaderEventKind",
    "ReaderInfo",
    "ReaderMonitor",
    "detect_interface",
    "list_readers",
    "wait_for_card",
]

_log = logging.getLogger(__name__)

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"
"""pcsc-lite's pseudo-reader whose state changes when a reader is added or removed."""

_CONTACTLESS_HINTS = ("contactless", "picc", "nfc", "rfid", "cl ", "acr122", "pn53")


def _scard() -> ModuleType:
    try:
        return importlib.import_module("smartcard.scard")
    except ImportError as exc:  # pragma: no cover - depends on the machine
        raise ReaderUnavailableError(f"pyscard is not installed: {exc}") from exc


def _message(scard: ModuleType, code: int) -> str:
    try:
        return str(scard.SCardGetErrorMessage(code))
    except Exception:  # pyscard raises on unknown codes on some versions
        return f"PC/SC error {code & 0xFFFFFFFF:08X}"


def _translate(scard: ModuleType, code: int, what: str, reader: str | None = None) -> Exception:
    """The errors.py exception for a PC/SC return code."""
    where = f" ({reader})" if reader else ""
    text = f"{what}{where}: {_message(scard, code)}"
    if code in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_W_RESET_CARD,
                scard.SCARD_E_NOT_TRANSACTED, scard.SCARD_W_UNPOWERED_CARD,
                scard.SCARD_E_INVALID_HANDLE):
        return CardRemovedError(text)
    if code in (scard.SCARD_W_UNRESPONSIVE_CARD, scard.SCARD_E_TIMEOUT):
        return CardTimeoutError(text)
    if code == scard.SCARD_E_NO_SMARTCARD:
        return NoCardError(text)
    if code in (scard.SCARD_E_NO_READERS_AVAILABLE, scard.SCARD_E_UNKNOWN_READER):
        return NoReaderError(text)
    return ReaderUnavailableError(text)


@dataclass(frozen=True)
class ReaderInfo:
    """A reader and what sits in it."""

    name: str
    card_present: bool
    atr: bytes
    exclusive: bool = False

    @property
    def state(self) -> str:
        if self.exclusive:
            return "in use (exclusive)"
        return "card present" if self.card_present else "empty"


class _Context:
    """One SCARDCONTEXT; released on close. Not shared between threads."""

    def __init__(self) -> None:
        self.scard = _scard()
        result, handle = self.scard.SCardEstablishContext(self.scard.SCARD_SCOPE_USER)
        if result != self.scard.SCARD_S_SUCCESS:
            raise ReaderUnavailableError(
                f"cannot reach pcscd: {_message(self.scard, result)} (is pcscd running?)")
        self.handle: Any = handle

    def readers(self) -> list[str]:
        result, names = self.scard.SCardListReaders(self.handle, [])
        if result == self.scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if result != self.scard.SCARD_S_SUCCESS:
            raise _translate(self.scard, result, "listing readers")
        return list(names)

    def close(self) -> None:
        if self.handle is not None:
            with contextlib.suppress(Exception):
                self.scard.SCardReleaseContext(self.handle)
            self.handle = None


def list_readers() -> list[ReaderInfo]:
    """Every reader pcscd knows, with its card state."""
    ctx = _Context()
    try:
        names = ctx.readers()
        if not names:
            return []
        scard = ctx.scard
        states = [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        result, answered = scard.SCardGetStatusChange(ctx.handle, 0, states)
        if result not in (scard.SCARD_S_SUCCESS, scard.SCARD_E_TIMEOUT):
            raise _translate(scard, result, "reading reader states")
        infos = []
        for name, event_state, atr in answered:
            infos.append(ReaderInfo(
                name=name,
                card_present=bool(event_state & scard.SCARD_STATE_PRESENT),
                atr=bytes(atr or b""),
                exclusive=bool(event_state & scard.SCARD_STATE_EXCLUSIVE),
            ))
        return infos
    finally:
        ctx.close()


def detect_interface(atr: bytes, reader_name: str = "") -> CardInterface:
    """Contact or contactless, from the PC/SC part 3 pseudo-ATR and the reader's name.

    A contactless card behind a PC/SC reader is presented with ``3B 8n 80 01 <hist> TCK``:
    T0 = 8n (TD1 present, n historical bytes), TD1 = 80 (TD2 follows, T=0 indicated),
    TD2 = 01 (T=1) and the TCK that closes it. Reader names with "contactless", "PICC",
    "NFC" hint the same when the ATR says nothing.
    """
    if len(atr) >= 5 and atr[0] == 0x3B and atr[1] & 0xF0 == 0x80 and atr[2] == 0x80 \
            and atr[3] == 0x01 and len(atr) == 4 + (atr[1] & 0x0F) + 1:
        check = 0
        for byte in atr[1:]:
            check ^= byte
        if check == 0:
            return CardInterface.CONTACTLESS
    lowered = reader_name.lower()
    if any(hint in lowered for hint in _CONTACTLESS_HINTS):
        return CardInterface.CONTACTLESS
    if atr:
        return CardInterface.CONTACT
    return CardInterface.UNKNOWN


def wait_for_card(reader: str | None, deadline: Deadline, *,
                  exclude: Sequence[str] = ()) -> str:
    """The name of a reader with a card, waiting until ``deadline`` for one to arrive.

    ``reader`` None means any reader; a name must match exactly or be a unique prefix.
    Raises NoReaderError (with ``found``) or NoCardError when time runs out. To cancel
    the wait from another thread, use a :class:`CardWaiter`. ``exclude`` names readers
    never to pick when ``reader`` is None (e.g. the PSAM's slot).
    """
    return CardWaiter().wait(reader, deadline, exclude=exclude)


class CardWaiter:
    """A cancellable wait for a card: ``cancel()`` from any thread ends ``wait()`` at once
    (``SCardCancel`` on the waiting context) with :class:`NoCardError`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ctx: _Context | None = None
        self._cancelled = threading.Event()

    def cancel(self) -> None:
        self._cancelled.set()
        with self._lock:
            if self._ctx is not None and self._ctx.handle is not None:
                with contextlib.suppress(Exception):
                    self._ctx.scard.SCardCancel(self._ctx.handle)

    def wait(self, reader: str | None, deadline: Deadline, *,
             exclude: Sequence[str] = ()) -> str:
        ctx = _Context()
        with self._lock:
            self._ctx = ctx
        try:
            return self._wait(ctx, reader, deadline, exclude)
        finally:
            with self._lock:
                self._ctx = None
            ctx.close()

    def _wait(self, ctx: _Context, reader: str | None, deadline: Deadline,
              exclude: Sequence[str]) -> str:
        scard = ctx.scard
        names = ctx.readers()
        if reader is None:
            names = [n for n in names if n not in exclude]
        if not names:
            raise NoReaderError("no smart card reader found (is the reader plugged in?)",
                                found=())
        if reader is not None:
            matches = [n for n in names if n == reader] or \
                [n for n in names if n.startswith(reader)]
            if len(matches) != 1:
                raise NoReaderError(f"no reader named {reader!r}; found: {', '.join(names)}",
                                    found=tuple(names))
            names = matches
        states = [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        while True:
            if self._cancelled.is_set():
                raise NoCardError("waiting for a card was cancelled")
            timeout_ms = int(min(deadline.remaining(), 3600.0) * 1000)
            result, answered = scard.SCardGetStatusChange(ctx.handle, timeout_ms, states)
            if result == scard.SCARD_E_CANCELLED or self._cancelled.is_set():
                raise NoCardError("waiting for a card was cancelled")
            if result == scard.SCARD_E_TIMEOUT:
                raise NoCardError(f"no card in {', '.join(names)} within the timeout")
            if result != scard.SCARD_S_SUCCESS:
                raise _translate(scard, result, "waiting for a card")
            for name, event_state, _atr in answered:
                if event_state & scard.SCARD_STATE_PRESENT and \
                        not event_state & scard.SCARD_STATE_MUTE:
                    return str(name)
            if deadline.expired:
                raise NoCardError(f"no card in {', '.join(names)} within the timeout")
            states = [(name, event_state & ~scard.SCARD_STATE_CHANGED)
                      for name, event_state, _atr in answered]


class PcscTransport(CardTransport):
    """A card connected through pcscd (T=0 or T=1, shared mode).

    It owns its own PC/SC context: the monitor's polling never delays an APDU.
    PC/SC has no per-APDU timeout; a card that hangs is bounded by the reader driver's
    own waiting time, and :meth:`close` from another thread cancels the exchange.
    """

    def __init__(self, reader: str) -> None:
        self._ctx = _Context()
        scard = self._scard = self._ctx.scard
        self._reader = reader
        self._lock = threading.Lock()
        result, card, protocol = scard.SCardConnect(
            self._ctx.handle, reader, scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        if result != scard.SCARD_S_SUCCESS:
            self._ctx.close()
            raise _translate(scard, result, "connecting to the card", reader)
        self._card: Any = card
        self._protocol = protocol
        result, _name, _state, _proto, atr = scard.SCardStatus(card)
        if result != scard.SCARD_S_SUCCESS:
            self.close()
            raise _translate(scard, result, "reading the card status", reader)
        self._atr = bytes(atr)
        self._interface = detect_interface(self._atr, reader)

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def interface(self) -> CardInterface:
        return self._interface

    @property
    def reader_name(self) -> str:
        return self._reader

    @property
    def protocol(self) -> str:
        return "T=1" if self._protocol == self._scard.SCARD_PROTOCOL_T1 else "T=0"

    def transmit(self, apdu: bytes) -> bytes:
        card = self._card
        if card is None:
            raise CardRemovedError(f"{self._reader}: the card was released")
        result, response = self._scard.SCardTransmit(card, self._protocol, list(apdu))
        if result != self._scard.SCARD_S_SUCCESS:
            raise _translate(self._scard, result, "exchanging an APDU", self._reader)
        if not response:
            # A present card always answers at least SW1 SW2; an empty answer with
            # success is what drivers (vpcd among them) give when the card vanished.
            raise CardRemovedError(f"{self._reader}: the card answered nothing (removed?)")
        return bytes(response)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``SCardBeginTransaction`` .. ``SCardEndTransaction``: pcscd holds other
        programs' exchanges with this card until the block ends."""
        card = self._card
        if card is None:
            raise CardRemovedError(f"{self._reader}: the card was released")
        result = self._scard.SCardBeginTransaction(card)
        if result != self._scard.SCARD_S_SUCCESS:
            raise _translate(self._scard, result, "starting a transaction", self._reader)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                self._scard.SCardEndTransaction(card, self._scard.SCARD_LEAVE_CARD)

    def close(self) -> None:
        with self._lock:
            card, self._card = getattr(self, "_card", None), None
        if card is not None:
            with contextlib.suppress(Exception):
                self._scard.SCardDisconnect(card, self._scard.SCARD_LEAVE_CARD)
        self._ctx.close()


class ReaderEventKind(enum.Enum):
    READER_ADDED = "reader-added"
    READER_REMOVED = "reader-removed"
    CARD_INSERTED = "card-inserted"
    CARD_REMOVED = "card-removed"
    READER_LOST = "reader-lost"
    """pcscd went away: every reader is gone until READER_BACK."""
    READER_BACK = "reader-back"


@dataclass(frozen=True)
class ReaderEvent:
    kind: ReaderEventKind
    reader: str
    atr: bytes = b""
    at: float = 0.0
    """time.monotonic() when the monitor saw it."""


class ReaderMonitor:
    """Reader and card events from one thread of our own, surviving pcscd restarts.

    Events go to :attr:`events` (a queue) and, if given, to ``on_event`` (called from
    the monitor thread: keep it short). ``stop()`` cancels the blocking wait with
    ``SCardCancel`` and joins the thread; nothing is left running.
    """

    def __init__(self, *, retry_interval: float = 0.2,
                 on_event: Callable[[ReaderEvent], None] | None = None) -> None:
        self.events: queue.Queue[ReaderEvent] = queue.Queue()
        self._on_event = on_event
        self._retry = retry_interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ctx_lock = threading.Lock()
        self._ctx: _Context | None = None
        self._known: dict[str, tuple[bool, bytes]] = {}
        self._event_counts: dict[str, int] = {}
        self._lost = False

    def start(self) -> ReaderMonitor:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sscard-pcsc-monitor",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 3.0) -> None:
        self._stop.set()
        with self._ctx_lock:
            if self._ctx is not None and self._ctx.handle is not None:
                with contextlib.suppress(Exception):
                    self._ctx.scard.SCardCancel(self._ctx.handle)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def get(self, timeout: float) -> ReaderEvent | None:
        try:
            return self.events.get(timeout=timeout)
        except queue.Empty:
            return None

    def __enter__(self) -> ReaderMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _emit(self, kind: ReaderEventKind, reader: str, atr: bytes = b"") -> None:
        event = ReaderEvent(kind, reader, atr, time.monotonic())
        _log.info("%s %s", kind.value, reader)
        self.events.put(event)
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:  # a listener's bug must not end the monitor
                _log.exception("reader event listener failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ctx = _Context()
            except ReaderError:
                self._service_lost()
                self._stop.wait(self._retry)
                continue
            with self._ctx_lock:
                self._ctx = ctx
            try:
                if self._lost:
                    self._lost = False
                    self._emit(ReaderEventKind.READER_BACK, "pcscd")
                self._watch(ctx)
            except ReaderError as exc:
                _log.warning("reader monitor: %s", exc)
                self._service_lost()
            finally:
                with self._ctx_lock:
                    self._ctx = None
                ctx.close()
            self._stop.wait(self._retry)

    def _service_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        for name in sorted(self._known):
            present, _atr = self._known[name]
            if present:
                self._emit(ReaderEventKind.CARD_REMOVED, name)
            self._emit(ReaderEventKind.READER_REMOVED, name)
        self._known.clear()
        self._event_counts.clear()
        self._emit(ReaderEventKind.READER_LOST, "pcscd")

    def _sync_readers(self, ctx: _Context) -> list[str]:
        names = ctx.readers()
        for gone in sorted(set(self._known) - set(names)):
            present, _atr = self._known.pop(gone)
            self._event_counts.pop(gone, None)
            if present:
                self._emit(ReaderEventKind.CARD_REMOVED, gone)
            self._emit(ReaderEventKind.READER_REMOVED, gone)
        for new in names:
            if new not in self._known:
                self._known[new] = (False, b"")
                self._emit(ReaderEventKind.READER_ADDED, new)
        return names

    def _watch(self, ctx: _Context) -> None:
        scard = ctx.scard
        names = self._sync_readers(ctx)
        states: list[tuple[str, int]] = [(PNP_NOTIFICATION, scard.SCARD_STATE_UNAWARE)]
        states += [(name, scard.SCARD_STATE_UNAWARE) for name in names]
        while not self._stop.is_set():
            result, answered = scard.SCardGetStatusChange(ctx.handle, scard.INFINITE, states)
            if result == scard.SCARD_E_CANCELLED or self._stop.is_set():
                return
            if result == scard.SCARD_E_TIMEOUT:
                continue
            if result == scard.SCARD_E_UNKNOWN_READER:
                # A reader vanished between listing and waiting: list again.
                names = self._sync_readers(ctx)
                states = [(PNP_NOTIFICATION, scard.SCARD_STATE_UNAWARE)]
                states += [(name, scard.SCARD_STATE_UNAWARE) for name in names]
                continue
            if result != scard.SCARD_S_SUCCESS:
                raise _translate(scard, result, "watching readers")
            pnp_changed = False
            next_states: list[tuple[str, int]] = []
            for name, event_state, atr in answered:
                if name == PNP_NOTIFICATION:
                    if event_state & scard.SCARD_STATE_CHANGED:
                        pnp_changed = True
                    next_states.append((name, event_state & ~scard.SCARD_STATE_CHANGED))
                    continue
                present = bool(event_state & scard.SCARD_STATE_PRESENT)
                gone = bool(event_state & (scard.SCARD_STATE_UNKNOWN
                                           | scard.SCARD_STATE_UNAVAILABLE))
                was_present, _old = self._known.get(name, (False, b""))
                # pcsc-lite counts card events in the upper 16 bits: a card removed and
                # another inserted while we were not looking shows as a moved counter on
                # a reader that is still "present", not as a removal and an insertion.
                counter = (event_state >> 16) & 0xFFFF
                seen = self._event_counts.get(name)
                self._event_counts[name] = counter
                if (present and not gone and was_present and seen is not None
                        and counter != seen):
                    self._known[name] = (True, bytes(atr or b""))
                    self._emit(ReaderEventKind.CARD_REMOVED, name)
                    self._emit(ReaderEventKind.CARD_INSERTED, name, bytes(atr or b""))
                elif present and not gone and not was_present:
                    self._known[name] = (True, bytes(atr or b""))
                    self._emit(ReaderEventKind.CARD_INSERTED, name, bytes(atr or b""))
                elif was_present and (not present or gone):
                    self._known[name] = (False, b"")
                    self._emit(ReaderEventKind.CARD_REMOVED, name)
                if gone:
                    pnp_changed = True
                next_states.append((name, event_state & ~scard.SCARD_STATE_CHANGED))
            if pnp_changed:
                names = self._sync_readers(ctx)
                kept = {n: s for n, s in next_states}
                states = [(PNP_NOTIFICATION, kept.get(PNP_NOTIFICATION,
                                                      scard.SCARD_STATE_UNAWARE))]
                states += [(n, kept.get(n, scard.SCARD_STATE_UNAWARE)) for n in names]
            else:
                states = next_states
