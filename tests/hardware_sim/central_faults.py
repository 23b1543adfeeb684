"""Fault injection of the simulated central: what a real network and a real central do.

Set at start (``central-sim serve --latency-ms 50 --fail-rate 0.1 --fault reset``) or at
run time with ``POST /v1/admin/faults`` (header ``X-Sscard-Admin-Token``):

- ``latency_ms``: added before every answer;
- ``fail_rate``: share of requests answered 503 at random;
- ``mode`` (optionally for the next ``count`` requests only):
  ``none``, ``error`` (503), ``timeout`` (never answers), ``reset`` (TCP RST),
  ``malformed`` (200 with a body that is not JSON), ``oversized`` (200 with 16 MiB),
  ``trickle`` (200, then one byte every 200 ms).

Faults never touch ``/v1/health`` and ``/v1/admin/*``, so the harness can always see and
repair the server.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MODES", "FaultPlan"]

MODES = ("none", "error", "timeout", "reset", "malformed", "oversized", "trickle")


@dataclass
class FaultPlan:
    """The server's current faults; every access goes through the lock."""

    latency_ms: float = 0.0
    fail_rate: float = 0.0
    mode: str = "none"
    count: int | None = None
    """How many more requests get ``mode``; None means until changed."""
    seed: int = 1
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
            self.mode = mode
            self.latency_ms = float(changes.get("latency_ms", self.latency_ms))
            self.fail_rate = float(changes.get("fail_rate", self.fail_rate))
            count = changes.get("count", None)
            self.count = None if count is None else int(count)
            return self.snapshot_locked()

    def snapshot_locked(self) -> dict[str, Any]:
        return {"mode": self.mode, "latency_ms": self.latency_ms, "fail_rate": self.fail_rate,
                "count": self.count}

    def next_request(self) -> tuple[float, str]:
        """(seconds to delay, mode) for the request being served now."""
        with self._lock:
            mode = self.mode
            if mode != "none" and self.count is not None:
                if self.count <= 0:
                    mode = "none"
                else:
                    self.count -= 1
            if mode == "none" and self.fail_rate > 0 and self._random.random() < self.fail_rate:
                mode = "error"
            return self.latency_ms / 1000.0, mode
