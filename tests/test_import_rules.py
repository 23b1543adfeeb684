"""The layering rules of docs/architecture.md, checked on the source (issue 16, item 4).

The rules table is read from docs/architecture.md itself, so the page and this test
cannot disagree: a rule changed in one place only fails here. Every ``import`` in
``sscard_terminal/`` counts, at module level or inside a function or ``TYPE_CHECKING``
block: a dependency is a dependency wherever it is written.

Two more rules have no row in the table: nothing in the package names the simulator
package (the simulators plug in from outside), and the SDK's read path imports no
Linux-only module (``tests/test_sdk.py`` also runs that path with them blocked).

Each checker is shown a planted violation of every rule (a copy of the package with
one bad module per rule, in ``tmp_path``) and must report exactly those.
"""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "sscard_terminal"
ARCHITECTURE = ROOT / "docs" / "architecture.md"

SIMULATOR_PACKAGE = "sscard_hardware_sim"
LINUX_ONLY = frozenset({"fcntl", "termios", "grp", "pwd", "resource", "systemd", "tty", "pty",
                        "posix"})
# The SDK's read path: the package (which imports the SDK) and `sscard read`.
READ_PATH_ROOTS = (PACKAGE, f"{PACKAGE}.sdk", f"{PACKAGE}.cli.main")


# --- the import graph -------------------------------------------------------------------


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    guarded: bool
    """Inside ``try`` whose handlers catch ImportError: the module works without it."""


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError")
               for n in names):
            return True
    return False


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: set[str]) -> None:
        self.package = module if is_package else module.rpartition(".")[0]
        self.known = known
        self.imports: list[Import] = []
        self._guards = 0

    def _add(self, target: str, node: ast.stmt) -> None:
        self.imports.append(Import(target, node.lineno, self._guards > 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.package.split(".")
            base = base[: len(base) - (node.level - 1)]
            source = ".".join([*base, node.module] if node.module else base)
        else:
            source = node.module or ""
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            self._add(submodule if submodule in self.known else source, node)

    def visit_Try(self, node: ast.Try) -> None:
        guarded = _catches_import_error(node)
        self._guards += guarded
        for statement in node.body:
            self.visit(statement)
        self._guards -= guarded
        for rest in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(rest)


def import_graph(root: Path) -> dict[str, list[Import]]:
    """Every module of the package under ``root`` with the imports it writes."""
    paths = {_module_name(p, root): p for p in sorted((root / PACKAGE).rglob("*.py"))}
    known = set(paths)
    graph = {}
    for module, path in paths.items():
        collector = _Collector(module, path.name == "__init__.py", known)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        graph[module] = collector.imports
    return graph


# --- the rules table of docs/architecture.md ----------------------------------------------


def _matches(module: str, pattern: str) -> bool:
    full = f"{PACKAGE}.{pattern}"
    return module == full or module.startswith(full + ".")


@dataclass(frozen=True)
class Selection:
    """``everything`` (but some), or a list: parsed from one table cell."""

    everything: bool
    names: tuple[str, ...]

    @classmethod
    def parse(cls, cell: str) -> Selection:
        return cls(cell.strip().startswith("everything"), tuple(re.findall(r"`([\w.]+)`", cell)))

    def __contains__(self, module: object) -> bool:
        assert isinstance(module, str)
        if not (module == PACKAGE or module.startswith(PACKAGE + ".")):
            return False  # not ours: the rules are about our own layers
        listed = any(_matches(module, name) for name in self.names)
        return not listed if self.everything else listed


@dataclass(frozen=True)
class Rule:
    name: str
    importers: Selection
    forbidden: Selection


def read_rules(page: Path = ARCHITECTURE) -> list[Rule]:
    """The rows of the table under the heading "Import rules"."""
    text = page.read_text(encoding="utf-8")
    section = text[text.index("## Import rules"):]
    rules = []
    for line in section.splitlines()[1:]:
        if line.startswith("## "):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 3 or set(cells[0]) <= {"-", " "}:
            continue
        name = re.findall(r"`([\w-]+)`", cells[0])
        if not name:
            continue  # the header row
        rules.append(Rule(name[0], Selection.parse(cells[1]), Selection.parse(cells[2])))
    return rules


@dataclass(frozen=True, order=True)
class Violation:
    rule: str
    module: str
    target: str
    line: int


def layer_violations(graph: dict[str, list[Import]], rules: list[Rule]) -> list[Violation]:
    found = []
    for module, imports in graph.items():
        for rule in rules:
            if module not in rule.importers:
                continue
            found += [Violation(rule.name, module, i.target, i.line)
                      for i in imports if i.target in rule.forbidden]
    return sorted(set(found))


def simulator_mentions(root: Path) -> list[str]:
    """Files of the package (any kind) that name the simulator package."""
    return sorted(str(p.relative_to(root)) for p in (root / PACKAGE).rglob("*")
                  if p.is_file() and SIMULATOR_PACKAGE.encode() in p.read_bytes())


def read_path(graph: dict[str, list[Import]]) -> set[str]:
    """Our modules the read path loads: the roots and everything they import, wherever
    written (a function-level import of ours runs when the read gets there), with the
    packages that hold them (importing a module runs its package's ``__init__``)."""
    seen: set[str] = set()
    todo = [m for m in READ_PATH_ROOTS if m in graph]
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += [i.target for i in graph[module] if i.target in graph]
        parts = module.split(".")
        todo += [p for n in range(1, len(parts)) if (p := ".".join(parts[:n])) in graph]
    return seen


def linux_only_on_read_path(graph: dict[str, list[Import]]) -> list[Violation]:
    return sorted(
        Violation("linux-only-off-the-read-path", module, i.target, i.line)
        for module in read_path(graph) for i in graph[module]
        if i.target.split(".")[0] in LINUX_ONLY and not i.guarded
    )


# --- the rules hold -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> dict[str, list[Import]]:
    return import_graph(ROOT)


def test_the_layering_rules_hold(graph: dict[str, list[Import]]) -> None:
    assert layer_violations(graph, read_rules()) == []


def test_the_package_never_names_the_simulators() -> None:
    assert simulator_mentions(ROOT) == []


def test_the_read_path_imports_no_linux_only_module(graph: dict[str, list[Import]]) -> None:
    assert f"{PACKAGE}.sdk" in read_path(graph)
    assert f"{PACKAGE}.drivers.pcsc" in read_path(graph)
    assert linux_only_on_read_path(graph) == []


def test_the_table_keeps_the_rules_of_issue_16() -> None:
    """The page may add rules; these it may not lose."""
    rules = read_rules()

    def forbidden(importer: str, target: str) -> bool:
        return any(f"{PACKAGE}.{importer}" in r.importers and f"{PACKAGE}.{target}" in r.forbidden
                   for r in rules)

    must = [("apdu.processors", "drivers.pcsc"), ("apdu.tlv", "cards.ssse"),
            ("apdu.command", "deadline"), ("cards.ssse", "drivers.pcsc"),
            ("drivers.pcsc", "cards.ssse"), ("drivers.sim", "decision.engine"),
            ("drivers.camera", "cli.main"), ("drivers.pcsc", "terminal.psam_discovery"),
            ("drivers.pcsc", "daemon.service"), ("decision.engine", "cli.main"),
            ("cards.ssse", "local_api.handler"), ("ecode.verifier", "daemon.service"),
            ("offline_queue.journal", "terminal"), ("cards.ssse", "terminal"),
            ("local_api.handler", "terminal")]
    assert [pair for pair in must if not forbidden(*pair)] == []
    allowed = [("apdu.processors", "errors"), ("apdu.processors", "apdu.transport"),
               ("cli.card_commands", "terminal.psam_discovery"), ("daemon.service", "terminal"),
               ("local_api.__main__", "terminal"), ("sdk", "terminal"),
               ("terminal.root", "local_api.handler"), ("cli.main", "local_api.handler"),
               ("drivers.pcsc", "apdu.transport")]
    assert [pair for pair in allowed if forbidden(*pair)] == []


# --- the checkers catch what they are shown -----------------------------------------------


def _plant(root: Path, module: str, source: str) -> None:
    path = root / Path(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def test_each_checker_reports_a_planted_violation(tmp_path: Path) -> None:
    shutil.copytree(ROOT / PACKAGE, tmp_path / PACKAGE,
                    ignore=shutil.ignore_patterns("__pycache__"))
    # The copy starts clean, so every report below is a planted module.
    clean = import_graph(tmp_path)
    assert layer_violations(clean, read_rules()) == []
    assert linux_only_on_read_path(clean) == []
    for mention in simulator_mentions(tmp_path):  # until branch i16-plugins lands
        (tmp_path / mention).unlink()

    _plant(tmp_path, f"{PACKAGE}.apdu.planted", "from ..drivers.pcsc import PcscTransport\n")
    _plant(tmp_path, f"{PACKAGE}.cards.planted",
           "def f():\n    from sscard_terminal.drivers import pcsc\n")
    _plant(tmp_path, f"{PACKAGE}.drivers.planted",
           "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cards import ssse\n")
    _plant(tmp_path, f"{PACKAGE}.decision.planted", "import sscard_terminal.cli.main\n")
    _plant(tmp_path, f"{PACKAGE}.ecode.planted", "from ..terminal import psam_discovery\n")
    _plant(tmp_path, f"{PACKAGE}.central.planted",
           'SIM = "sscard_hardware_sim.virtual_card"\n')
    _plant(tmp_path, f"{PACKAGE}.posix_planted", "import fcntl\n")
    sdk = tmp_path / PACKAGE / "sdk.py"
    sdk.write_text(sdk.read_text(encoding="utf-8") + "\nfrom . import posix_planted\n",
                   encoding="utf-8")

    planted = import_graph(tmp_path)
    reported = {(v.rule, v.module, v.target) for v in layer_violations(planted, read_rules())}
    assert reported == {
        ("apdu-stands-alone", f"{PACKAGE}.apdu.planted", f"{PACKAGE}.drivers.pcsc"),
        ("cards-see-only-the-transport", f"{PACKAGE}.cards.planted", f"{PACKAGE}.drivers.pcsc"),
        ("drivers-do-not-compose", f"{PACKAGE}.drivers.planted", f"{PACKAGE}.cards.ssse"),
        ("faces-are-on-top", f"{PACKAGE}.decision.planted", f"{PACKAGE}.cli.main"),
        ("only-faces-build-a-terminal", f"{PACKAGE}.ecode.planted",
         f"{PACKAGE}.terminal.psam_discovery"),
    }
    assert simulator_mentions(tmp_path) == [f"{PACKAGE}/central/planted.py"]
    assert [(v.module, v.target) for v in linux_only_on_read_path(planted)] == [
        (f"{PACKAGE}.posix_planted", "fcntl")]


def test_a_guarded_linux_only_import_is_allowed(tmp_path: Path) -> None:
    _plant(tmp_path, f"{PACKAGE}.__init__", "from . import sdk\n")
    _plant(tmp_path, f"{PACKAGE}.sdk", "try:\n    import termios\nexcept ImportError:\n"
                                       "    termios = None\nimport grp\n")
    assert [(v.module, v.target) for v in linux_only_on_read_path(import_graph(tmp_path))] == [
        (f"{PACKAGE}.sdk", "grp")]
