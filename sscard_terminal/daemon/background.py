"""Background work of one runtime: forwarding the journal and refreshing the denylist.

None may stall a tap, so each has a thread of its own and talks to the central with
its own deadlines, never a presentation's:

- the **forwarder** (:class:`~sscard_terminal.offline_queue.forwarder.Forwarder`) is woken
  after every presentation that was journaled, and otherwise polls; it prunes acknowledged
  records past retention in small slices between batches. On stop it finishes the batch in
  flight (its request timeout is kept short, :data:`FORWARD_TIMEOUT_S`, so that fits the
  daemon's stop budget) and returns; what was not acknowledged is sent again after the
  restart and the central deduplicates it;
- the **central probe**: while the central's circuit breaker is open, a ping after each
  cool-down decides when the central is back, so no tap is ever the probe;
- the **denylist refresh** fetches what changed since the installed version at start and
  then every :data:`DENYLIST_EVERY_S`; a failure is logged in one line and retried with
  backoff (the offline rules refuse on a denylist older than the profile allows, so a
  terminal that cannot refresh says so rather than silently accepting).

A terminal without a central has neither.
"""

from __future__ import annotations

import logging
import threading

from ..central.circuit_breaker import CircuitBreaker
from ..central.client import CentralClient
from ..deadline import Deadline
from ..decision import Denylist
from ..errors import SscardError
from ..offline_queue.forwarder import Forwarder
from ..offline_queue.journal import Journal

__all__ = ["DENYLIST_EVERY_S", "FORWARD_TIMEOUT_S", "Background"]

log = logging.getLogger(__name__)

FORWARD_TIMEOUT_S = 5.0
DENYLIST_EVERY_S = 900.0
PROBE_EVERY_S = 0.5
PROBE_BUDGET_S = 2.0
_DENYLIST_BUDGET_S = 20.0
_RETRY_FIRST_S = 5.0


class Background:
    """The forwarder and the denylist refresh of one runtime."""

    def __init__(self, *, journal: Journal, denylist: Denylist, central: CentralClient,
                 breaker: CircuitBreaker | None = None,
                 denylist_every_s: float = DENYLIST_EVERY_S) -> None:
        self.forwarder = Forwarder(journal, central, request_timeout_s=FORWARD_TIMEOUT_S)
        self._denylist = denylist
        self._central = central
        self._every = denylist_every_s
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self.forwarder.run, name="sscard-forwarder", daemon=True),
            threading.Thread(target=self._refresh_loop, name="sscard-denylist", daemon=True),
        ]
        self._breaker = breaker
        if breaker is not None:
            breaker.probe_in_background()
            self._threads.append(threading.Thread(target=self._probe_loop,
                                                  name="sscard-central-probe", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def presented(self) -> None:
        """A presentation was journaled: forward it now, not at the next poll."""
        self.forwarder.notify()

    def stop(self, timeout: float) -> None:
        """Stop between batches; wait up to ``timeout`` seconds for both threads."""
        self._stop.set()
        self.forwarder.stop()
        deadline = Deadline.after(timeout)
        for thread in self._threads:
            if thread.ident is not None:
                thread.join(deadline.remaining())
            if thread.is_alive():
                log.warning("%s still busy at stop; its work resumes after the restart",
                            thread.name)

    def _probe_loop(self) -> None:
        """While the central's circuit is open, ping it after each cool-down, so that no
        tap has to be the probe (and wait out the online budget on a silent central)."""
        assert self._breaker is not None
        while not self._stop.wait(PROBE_EVERY_S):
            try:
                self._breaker.probe(lambda: self._central.ping(Deadline.after(PROBE_BUDGET_S)))
            except SscardError as exc:
                log.warning("probing the central failed: %s", type(exc).__name__)

    def _refresh_loop(self) -> None:
        retry = _RETRY_FIRST_S
        while not self._stop.is_set():
            try:
                version = self._denylist.refresh(self._central,
                                                 deadline=Deadline.after(_DENYLIST_BUDGET_S))
            except SscardError as exc:
                log.warning("denylist refresh failed (%s: %s); again in %.0f s",
                            type(exc).__name__, exc, retry)
                self._stop.wait(retry)
                retry = min(self._every, retry * 2)
                continue
            log.info("denylist at version %d", version)
            retry = _RETRY_FIRST_S
            self._stop.wait(self._every)
