"""Client of the central system's terminal protocol (docs/central-protocol.md)."""

from .client import MAX_BATCH, CentralClient, TerminalConfig
from .models import (
    Application,
    CardStatus,
    CardValidation,
    Channel,
    DenylistChunk,
    DenylistEntry,
    DenylistManifest,
    DenylistUpdate,
    ECodeCheck,
    Entitlement,
    HolderIdentity,
    PingResult,
    TransactionAck,
    TransactionUpload,
    TrustedKey,
    TrustList,
    card_ref,
)
from .wire import read_signed_trust_list

__all__ = [
    "MAX_BATCH",
    "Application",
    "CardStatus",
    "CardValidation",
    "CentralClient",
    "Channel",
    "DenylistChunk",
    "DenylistEntry",
    "DenylistManifest",
    "DenylistUpdate",
    "ECodeCheck",
    "Entitlement",
    "HolderIdentity",
    "PingResult",
    "TerminalConfig",
    "TransactionAck",
    "TransactionUpload",
    "TrustList",
    "TrustedKey",
    "card_ref",
    "read_signed_trust_list",
]
