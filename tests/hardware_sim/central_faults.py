"""Fault injection of the simulated central: what a real network and a real central do.

Set at start (``central-sim serve --latency-ms 50 --fail-rate 0.1 --fault reset``) or at
run time with ``POST /v1/admin/faults`` (header ``X-Sscard-Admin-Token``):

- ``latency_ms``: added before every answer;
- ``fail_rate``: share of requests answered 503 at random;
- ``mode`` (optionally for the next ``count`` requests only):
  ``none``, ``error`` (503), ``timeout`` (never answers), ``reset`` (TCP RST),
  ``malformed`` (200 with a body that is not JSON), ``oversized`` (200 with 16 MiB),
  ``trickle`` (200, then one byte of the body every ``trickle_ms``, 200 by default),
  ``trickle_head`` (the status line and headers themselves one byte every ``trickle_ms``).

Faults never touch ``/v1/health`` and ``/v1/admin/*``, so the harness can always see and
repair the server.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODES", "FaultPlan"]

MODES = ("none", "error", "timeout", "reset", "malformed", "oversized", "trickle",
         "trickle_head")


@dataclass
class FaultPlan:
    """The server's current faults; every access goes through the lock."""

    latency_ms: float = 0.0
    fail_rate: float = 0.0
    mode: str = "none"
    count: int | None = None
    """How many more requests get ``mode``; None means until changed."""
    seed: int = 1
    trickle_ms: float = 200.0
    """Pause between the bytes of a trickling answer."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; known: {', '.join(MODES)}")
        self._random.seed(self.seed)

    def update(self, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply an admin call's JSON; returns the new plan."""
        with self._lock:
            mode = str(changes.get("mode", self.mode))
            if mode not in MODES:
                raise ValueError(f"unknown fault mode {mode!r}")
            latency_ms = float(changes.get("latency_ms", self.latency_ms))
            fail_rate = float(changes.get("fail_rate", self.fail_rate))
            trickle_ms = float(changes.get("trickle_ms", self.trickle_ms))
            count = self.count
            if "mode" in changes or "count" in changes:  # a new mode: until changed or N
                count = None if changes.get("count") is None else int(changes["count"])
            self.mode, self.count = mode, count
            self.latency_ms, self.fail_rate, self.trickle_ms = latency_ms, fail_rate, trickle_ms
            return self.snapshot_locked()

    def snapshot_locked(self) -> dict[str, Any]:
        return {"mode": self.mode, "latency_ms": self.latency_ms, "fail_rate": self.fail_rate,
                "count": self.count, "trickle_ms": self.trickle_ms}

    def trickle_interval(self) -> float:
        """Seconds between the bytes of a trickling answer."""
        with self._lock:
            return self.trickle_ms / 1000.0

    def next_request(self) -> tuple[float, str]:
        """(seconds to delay, mode) for the request being served now."""
        with self._lock:
            mode = self.mode
            if mode != "none" and self.count is not None:
                if self.count <= 0:
                    mode = "none"
                else:
                    self.count -= 1
                if self.count <= 0:  # spent: back to none, so no later change revives it
                    self.mode, self.count = "none", None
            if mode == "none" and self.fail_rate > 0 and self._random.random() < self.fail_rate:
                mode = "error"
            return self.latency_ms / 1000.0, mode
