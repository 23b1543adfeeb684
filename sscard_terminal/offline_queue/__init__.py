"""The durable SQLite journal of transactions and its forwarder to the central system.

Public API: :class:`Journal` (open, enqueue, status, acknowledge, prune),
:class:`Forwarder` (batches, backoff, partial acceptance, retention), :func:`verify_journal`
(the hash chain), key loading (:func:`load_key_file`, :func:`load_credential`).
"""

from __future__ import annotations

from .crypto import JournalKeys, load_credential, load_key_file
from .forwarder import (
    DEFAULT_DISCLOSURE,
    Backoff,
    DrainResult,
    Forwarder,
    ForwarderStatus,
    Uploader,
)
from .journal import Journal, PendingRecord
from .records import (
    AckOutcome,
    Alarm,
    FullBehaviour,
    JournalLimits,
    JournalRecord,
    JournalStatus,
)
from .uuid7 import Uuid7Generator
from .verify import ChainProblem, VerifyReport, verify_journal

__all__ = [
    "DEFAULT_DISCLOSURE",
    "AckOutcome",
    "Alarm",
    "Backoff",
    "ChainProblem",
    "DrainResult",
    "Forwarder",
    "ForwarderStatus",
    "FullBehaviour",
    "Journal",
    "JournalKeys",
    "JournalLimits",
    "JournalRecord",
    "JournalStatus",
    "PendingRecord",
    "Uploader",
    "Uuid7Generator",
    "VerifyReport",
    "load_credential",
    "load_key_file",
    "verify_journal",
]
