"""The decision engine: one pipeline that accepts or refuses a card tap or an e-code
under a deployment profile, online when the central answers in time, offline from the
local denylist and rules when it does not (docs/decision.md)."""

from .clock import Clock, SystemClock
from .credentials import CardStanding, ECodeOutcome, PresentedCredential
from .denylist import Denylist, DenylistState
from .engine import CardValidator, Decision, DecisionEngine, EngineStatus
from .rules import Outcome, Reason

__all__ = [
    "CardStanding",
    "CardValidator",
    "Clock",
    "Decision",
    "DecisionEngine",
    "Denylist",
    "DenylistState",
    "ECodeOutcome",
    "EngineStatus",
    "Outcome",
    "PresentedCredential",
    "Reason",
    "SystemClock",
]
