"""The ``sscard`` technician CLI (composes the parts; nothing below imports it)."""
