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


def test_every_directory_that_ships_files_is_a_package() -> None:
    """A directory of package data that is no package (no __init__.py, so not listed)
    makes setuptools print a "Package ... is absent from the packages configuration"
    warning of ~40 lines on every install (issue 21, item 12)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    package_dirs = config["tool"]["setuptools"]["package-dir"].values()
    loose = [
        str(path.relative_to(ROOT))
        for base in package_dirs
        for path in (ROOT / base).rglob("*")
        if path.is_dir() and path.name != "__pycache__" and not path.name.startswith(".")
        and not (path / "__init__.py").is_file()
    ]
    assert loose == []


def test_holder_data_ships_as_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    data = config["tool"]["setuptools"]["package-data"]["sscard_hardware_sim.data"]
    shipped = {p.name for pattern in data for p in (ROOT / "tests/hardware_sim/data").glob(pattern)}
    on_disk = {p.name for p in (ROOT / "tests/hardware_sim/data").iterdir()
               if p.is_file() and p.suffix != ".py"}
    assert shipped == on_disk and shipped


def test_public_api_names_exist() -> None:
    for name in sscard_terminal.__all__:
        assert hasattr(sscard_terminal, name), name
