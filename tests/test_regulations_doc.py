"""docs/regulations.md names, for every clause that binds a terminal, the tests that show
it: each named test must exist (a rename or a deletion fails here), every table row must
name at least one, and the out-of-scope lines stay."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "regulations.md"
_NAMED = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")}


def named_tests(text: str) -> list[tuple[str, str]]:
    return _NAMED.findall(text)


def missing_tests(text: str, root: Path = ROOT) -> list[str]:
    missing = []
    cache: dict[str, set[str]] = {}
    for file, name in named_tests(text):
        path = root / file
        if file not in cache:
            cache[file] = _tests_in(path) if path.is_file() else set()
        if name not in cache[file]:
            missing.append(f"{file}::{name}")
    return missing


def test_every_test_the_regulations_page_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(named_tests(text)) >= 30
    assert missing_tests(text) == []


def test_the_check_fails_for_a_test_that_does_not_exist() -> None:
    text = "| HN21 §1 | x | y | z | `tests/test_foreign_holder.py::test_no_such_test` |"
    assert missing_tests(text) == ["tests/test_foreign_holder.py::test_no_such_test"]
    gone = "| HN21 §1 | x | y | z | `tests/test_gone_away.py::test_anything` |"
    assert missing_tests(gone) == ["tests/test_gone_away.py::test_anything"]


def test_every_clause_row_names_a_test() -> None:
    rows = [line for line in DOC.read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith("| clause")
            and not line.startswith("|---")]
    assert rows
    for row in rows:
        assert named_tests(row), row


def test_the_out_of_scope_lines_are_there() -> None:
    text = DOC.read_text(encoding="utf-8")
    scope = text.split("## Out of scope", 1)[1]
    for topic in ("Visual reading", "Paperwork at service offices", "Bank-account rules"):
        assert topic in scope
