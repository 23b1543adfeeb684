"""Client of the central system's terminal protocol (docs/central-protocol.md)."""

from .client import MAX_BATCH, CentralClient, TerminalConfig, read_signed_trust_list
from .models import (
    Application,
    CardStatus,
    CardValidation,
    Channel,
    DenylistEntry,
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

__all__ = [
    "MAX_BATCH",
    "Application",
    "CardStatus",
    "CardValidation",
    "CentralClient",
    "Channel",
    "DenylistEntry",
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
