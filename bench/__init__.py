"""Benchmarks: ``python -m bench NAME`` from the repo root; the last line is ``ratio=<float>``."""
