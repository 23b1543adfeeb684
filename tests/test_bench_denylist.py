"""``python -m bench denylist`` at a small scale (CI): it runs, checks every answer it
times against its generator, and prints each figure with the ratio last. The goals are
met and reported at 10 M entries (README), never asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_denylist_runs_small(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bench", "denylist", "--entries", "30000", "--lookups", "500",
         "--delta", "500", "--transfer", "--dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    text = "\n".join(lines)
    for figure in ("install of 30,000 entries", "open:", "lookup, card on the list:",
                   "lookup, card not on the list:", "resident memory over an empty list",
                   "delta of 500 changes", "longest lookup wait", "compaction",
                   "transfer from the central simulator over HTTP: 30,006 entries",
                   "refresh of a 500-change delta from the simulator"):
        assert figure in text, text
    assert lines[-1].startswith("ratio=")
    assert float(lines[-1].removeprefix("ratio=")) > 0
    assert list(tmp_path.iterdir()) == []
