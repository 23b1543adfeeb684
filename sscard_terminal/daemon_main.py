"""Entry point of ``sscard-terminald`` (the daemon is built by its own issue)."""

from __future__ import annotations

import sys


def main() -> int:
    sys.stderr.write("sscard-terminald: the daemon is not built yet (see the open issue)\n")
    return 1
