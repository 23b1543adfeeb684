"""The composition root: builds a terminal's parts from its configuration (see docs/architecture.md)."""
