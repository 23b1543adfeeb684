"""Run one benchmark: ``python -m bench NAME [args]``.

Each benchmark is the module ``bench/NAME.py`` with a ``main(argv) -> float`` that
measures our code against a baseline in the same run, prints its figures and returns the
ratio; this runner prints ``ratio=<float>`` as the last line.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def _names() -> list[str]:
    here = Path(__file__).parent
    return sorted(m.name for m in pkgutil.iter_modules([str(here)]) if not m.name.startswith("_"))


def run(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [args]\navailable: " + ", ".join(_names()))
        return 0 if argv else 2
    name = argv[0]
    if name not in _names():
        print(f"unknown benchmark {name!r}; available: {', '.join(_names())}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"bench.{name}")
    ratio = float(module.main(argv[1:]))
    sys.stdout.flush()
    print(f"ratio={ratio:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
