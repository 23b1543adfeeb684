"""Client of the central system's terminal protocol (docs/central-protocol.md)."""

from .models import Application, CardStatus, Channel, Entitlement, card_ref

__all__ = ["Application", "CardStatus", "Channel", "Entitlement", "card_ref"]
