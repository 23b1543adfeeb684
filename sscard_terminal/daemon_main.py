"""Entry point of ``sscard-terminald``; the daemon itself is :mod:`sscard_terminal.daemon`."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    from .daemon.main import main as daemon_main  # noqa: PLC0415 - Linux-only, load on use
    return daemon_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
