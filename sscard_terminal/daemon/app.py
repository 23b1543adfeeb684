"""The daemon's runtime (being built: see issue 17)."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import DaemonConfig

__all__ = ["run"]

_log = logging.getLogger("sscard_terminal.daemon")


def run(config: DaemonConfig, *, config_path: Path) -> int:
    _log.error("%s: configuration ok, but the daemon's runtime is not built yet", config_path)
    return 1
