"""The composition root: builds a terminal's parts from its configuration.

See docs/architecture.md for where it sits between the faces and the parts.
"""
