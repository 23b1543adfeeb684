"""The fuzz target runs, briefly, in the normal suite (the long run is manual)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from .fuzz.fuzz_ecode import random_loop

ITERATIONS = int(os.environ.get("SSCARD_FUZZ_ITERATIONS", "3000"))


def test_fuzz_target_finds_nothing_in_a_short_random_run() -> None:
    assert random_loop(ITERATIONS, seed=20261122) == ITERATIONS


def test_fuzz_target_runs_as_a_script() -> None:
    script = Path(__file__).parent / "fuzz" / "fuzz_ecode.py"
    done = subprocess.run([sys.executable, str(script), "--iterations", "200"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "200 inputs, no finding" in done.stdout
