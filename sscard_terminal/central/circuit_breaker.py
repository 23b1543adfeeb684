"""Remember that the central is down, so offline taps stop paying for it.

A central that is down but *silent* (packets dropped, a dead route) costs each tap its
whole online budget before the engine decides offline: on a bus validator that is most of
300 ms, on every tap, for as long as the outage lasts. The breaker remembers the outage::

    closed ──(N silent failures in a row)──► open ──(cool-down over)──► half-open
      ▲                                        ▲                          │ one probe
      └──────────── probe answered ────────────┼──────────────────────────┤
                                               └──── probe failed ────────┘

While open, a call is refused at once with :class:`CentralUnreachableError`, which the
decision engine already treats as "decide offline". After the cool-down, exactly one call
goes through as a probe (half-open); every other call meanwhile is refused as if open, so
a burst of taps after an outage does not all wait out the budget on a central that may
still be gone. A probe that never reports back (its thread died) frees the slot again
after another cool-down.

Only *silence* opens the breaker: :class:`CentralUnreachableError` and
:class:`DeadlineExceededError`. A central that answers, even with a refusal or garbage,
is reachable and answers fast; those errors pass through and count as "it answered".

A daemon moves the probe off the tap path (:meth:`CircuitBreaker.probe_in_background`): a
thread of its own pings the central after each cool-down, and taps are refused at once
until that probe hears an answer.

The clock is injected (a zero-argument callable returning seconds, monotonic by default)
so tests move time by hand. Thread-safe: the daemon's lanes call it from worker threads.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ..errors import CentralError, CentralUnreachableError, DeadlineExceededError

if TYPE_CHECKING:
    from ..deadline import Deadline
    from .client import CentralClient
    from .models import CardValidation, Channel, ECodeCheck

__all__ = ["CircuitBreaker", "CircuitState", "GuardedCentral"]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Errors that mean "nobody answered in time". Anything else the central raised came from
# an answer (a refusal, a malformed body) and proves the link is up.
_SILENCE: tuple[type[BaseException], ...] = (CentralUnreachableError, DeadlineExceededError)


class CircuitState(enum.Enum):
    CLOSED = "closed"          # calls go through
    OPEN = "open"              # calls refused at once until the cool-down is over
    HALF_OPEN = "half_open"    # one probe is out; the others are refused


class CircuitBreaker:
    """Closed / open / half-open with one probe; see the module docstring."""

    def __init__(
        self,
        *,
        failure_threshold: int = 3,
        cool_down_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "central",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if cool_down_s <= 0:
            raise ValueError("cool_down_s must be positive")
        self._threshold = failure_threshold
        self._cool_down = cool_down_s
        self._clock = clock
        self._name = name
        self._lock = threading.Lock()
        self._state = CircuitState.CLOSED
        self._failures_in_row = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None
        self._taps_probe = True
        self._counters = {"calls": 0, "refused_open": 0, "failures": 0, "successes": 0,
                          "opened": 0, "closed": 0, "probes": 0}

    # --- state -------------------------------------------------------------------------

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._current_state()

    def counters(self) -> dict[str, int]:
        """A copy of the counters, for metrics and status pages."""
        with self._lock:
            return dict(self._counters)

    # --- the two ways to use it --------------------------------------------------------

    def allow(self) -> bool:
        """Whether a call may go to the central now. A True in half-open makes the caller
        the probe: it must report with :meth:`record_success` or :meth:`record_failure`."""
        with self._lock:
            state = self._current_state()
            if state is CircuitState.CLOSED:
                self._counters["calls"] += 1
                return True
            if (state is CircuitState.HALF_OPEN and self._probe_started is None
                    and self._taps_probe):
                self._probe_started = self._clock()
                self._counters["calls"] += 1
                self._counters["probes"] += 1
                log.info("%s circuit half-open: one probe goes through", self._name)
                return True
            self._counters["refused_open"] += 1
            return False

    def record_success(self) -> None:
        """The central answered (whatever it said)."""
        with self._lock:
            self._counters["successes"] += 1
            self._failures_in_row = 0
            self._probe_started = None
            if self._state is not CircuitState.CLOSED:
                self._state = CircuitState.CLOSED
                self._counters["closed"] += 1
                log.info("%s circuit closed: the central answers again", self._name)

    def record_failure(self) -> None:
        """The central stayed silent within the budget."""
        with self._lock:
            self._counters["failures"] += 1
            self._failures_in_row += 1
            was_probe = self._probe_started is not None
            self._probe_started = None
            if was_probe or (self._state is CircuitState.CLOSED
                             and self._failures_in_row >= self._threshold):
                if self._state is CircuitState.CLOSED:
                    self._counters["opened"] += 1
                    log.warning("%s circuit open after %d silent calls: deciding offline "
                                "for %.1f s before the next probe", self._name,
                                self._failures_in_row, self._cool_down)
                self._state = CircuitState.OPEN
                self._opened_at = self._clock()

    def probe_in_background(self) -> None:
        """Calls never probe from now on: while the circuit is not closed every call is
        refused at once, and only :meth:`probe` (a background thread's) may close it. A
        daemon does this so that no tap ever waits out the online budget on a central that
        may still be silent; a one-shot tool, with no such thread, keeps tap probes."""
        with self._lock:
            self._taps_probe = False

    def probe(self, ask: Callable[[], object]) -> bool:
        """If the cool-down is over, ``ask`` the central (a cheap signed round trip) and
        close the circuit on an answer, or open it for another cool-down on silence. True
        if the circuit is closed afterwards. For a background thread."""
        with self._lock:
            state = self._current_state()
            if state is CircuitState.CLOSED:
                return True
            if state is CircuitState.OPEN or self._probe_started is not None:
                return False
            self._probe_started = self._clock()
            self._counters["probes"] += 1
        try:
            ask()
        except _SILENCE:
            self.record_failure()
            return False
        except CentralError:
            pass                           # refused or garbled: it answered
        except BaseException:
            with self._lock:
                self._probe_started = None
            raise
        self.record_success()
        return True

    def call(self, func: Callable[[], _T]) -> _T:
        """Run ``func`` (one central call) through the breaker.

        Raises :class:`CentralUnreachableError` at once while the circuit is open.
        """
        if not self.allow():
            raise CentralUnreachableError(
                f"{self._name} silent on recent calls: not asked again before the next probe")
        try:
            result = func()
        except _SILENCE:
            self.record_failure()
            raise
        except CentralError:
            self.record_success()      # it answered: refused or garbled, but there
            raise
        except BaseException:
            # Not the central's doing (a bug, KeyboardInterrupt): free a probe slot
            # without judging the central either way.
            with self._lock:
                self._probe_started = None
            raise
        self.record_success()
        return result

    # --- internals ---------------------------------------------------------------------

    def _current_state(self) -> CircuitState:
        """The state, moving open -> half-open when the cool-down is over (lock held)."""
        now = self._clock()
        if self._state is CircuitState.OPEN and now - self._opened_at >= self._cool_down:
            self._state = CircuitState.HALF_OPEN
            self._probe_started = None
        elif (self._state is CircuitState.HALF_OPEN and self._probe_started is not None
              and now - self._probe_started >= self._cool_down):
            self._probe_started = None     # the probe never reported: let another one go
        return self._state


class GuardedCentral:
    """A central client whose card validations and e-code checks go through a breaker.

    It has the two calls the decision engine and the e-code verifier make, so it stands
    in for the client wherever those are wired; everything else (denylist, trust list,
    uploads) is background work that keeps using the client itself.
    """

    def __init__(self, central: CentralClient, breaker: CircuitBreaker) -> None:
        self.central = central
        self.breaker = breaker

    def validate_card(self, card_identification_code: str, card_number: str, region: str,
                      channel: Channel, deadline: Deadline) -> CardValidation:
        return self.breaker.call(lambda: self.central.validate_card(
            card_identification_code, card_number, region, channel, deadline))

    def verify_ecode(self, code_text: str, deadline: Deadline) -> ECodeCheck:
        return self.breaker.call(lambda: self.central.verify_ecode(code_text, deadline))
