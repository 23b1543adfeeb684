"""The distribution lists every package, and the public API is what ``__all__`` says."""

from __future__ import annotations

import tomllib
from pathlib import Path

import sscard_terminal

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_directory_is_listed_in_pyproject() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    found = set()
    for base, name in ((ROOT / "sscard_terminal", "sscard_terminal"),
                       (ROOT / "tests" / "hardware_sim", "sscard_hardware_sim"),
                       (ROOT / "profiles", "sscard_profiles")):
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join((name, *rel.parts)))
    assert found == listed


def test_public_api_names_exist() -> None:
    for name in sscard_terminal.__all__:
        assert hasattr(sscard_terminal, name), name
