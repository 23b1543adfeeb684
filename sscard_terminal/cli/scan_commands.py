"""``sscard scan``: read e-codes from a serial scanner or a camera (filled by its issue)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the CLI."""
