"""What the daemon needs from the terminal's parts: the per-presentation work, one call.

A lane never reads, decides or journals by itself: it hands a card (an open transport) or
a scanned code to :class:`Presenter`, which reads, decides within the one deadline that
started at ``arrived_at``, journals and completes, and answers a
:class:`PresentationResult`. The composition root (``sscard_terminal.terminal``) provides
the real one; the daemon is written against these protocols so that it never wires parts
by hand.

:class:`Runtime` is everything built from one configuration: the presenter, how to open a
card on a named reader, and how to release it all. A SIGHUP reload builds a new runtime
and swaps it in between presentations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from ..apdu.transport import CardTransport
from ..cards.authentication.context import ReadAuthenticator
from ..deadline import Deadline
from ..local_api.status import CentralStatus, ListStatus, QueueStatus
from .config import DaemonConfig

__all__ = ["PresentationResult", "Presenter", "Runtime", "RuntimeFactory", "RuntimeFacts"]


class PresentationResult(Protocol):
    """The answer a lane shows and publishes (no personal data in :meth:`event`)."""

    @property
    def accepted(self) -> bool: ...

    @property
    def reason(self) -> str: ...

    @property
    def transaction_id(self) -> str: ...

    @property
    def journaled(self) -> bool: ...

    def event(self) -> Mapping[str, object]: ...


class Presenter(Protocol):
    """Read or verify, decide, journal, complete: one presentation, one deadline."""

    def present_card(self, transport: CardTransport, *, arrived_at: float,
                     lane: str = "") -> PresentationResult: ...

    def present_code(self, text: str, *, arrived_at: float,
                     lane: str = "") -> PresentationResult: ...


@dataclass(frozen=True)
class RuntimeFacts:
    """The runtime's part of the daemon's status: counts, ages, versions, states only."""

    central: CentralStatus
    journal: QueueStatus
    denylist: ListStatus
    trust_list: ListStatus


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Runtime:
    """The parts built from one configuration, as the lanes use them."""

    presenter: Presenter
    open_card: Callable[[str, Deadline], CardTransport]
    close: Callable[[], None]
    presented: Callable[[], None] = _nothing
    """Told after each journaled presentation (wakes the forwarder)."""
    authenticator: ReadAuthenticator | None = None
    """The security-module chain, for the local API's reads."""
    facts: Callable[[], RuntimeFacts] | None = None
    """What the runtime knows for ``status`` (central link, journal, lists); None: nothing
    (a runtime without a journal, as in tests)."""
    central_link: Callable[[], CentralStatus] | None = None
    """The central link and breaker state alone, without I/O (published on change)."""


RuntimeFactory = Callable[[DaemonConfig], Runtime]
"""Builds a :class:`Runtime` from a validated configuration; raises
:class:`~sscard_terminal.errors.ConfigError` for one it cannot honour (then the daemon
refuses before READY, or keeps the old runtime on a reload). Called in a worker thread."""
