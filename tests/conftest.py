"""Shared pytest fixtures. Each part appends its own section; keep sections independent."""

from __future__ import annotations
