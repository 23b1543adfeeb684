"""Every CLI command has help text and an example; exit codes are documented."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.cli.main import build_parser


def _walk(parser: argparse.ArgumentParser, path: str) -> list[tuple[str, argparse.ArgumentParser]]:
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.extend(_walk(child, f"{path} {name}"))
    return found


def test_every_command_has_help_and_an_example() -> None:
    parser = build_parser()
    missing = []
    for path, sub in _walk(parser, "sscard"):
        text = sub.format_help()
        if not (sub.description or "").strip() or "Example:" not in text:
            missing.append(path)
    assert not missing, f"commands without description or 'Example:': {missing}"


def test_every_subcommand_is_listed_with_help_in_its_parent() -> None:
    parser = build_parser()
    for path, sub in _walk(parser, "sscard"):
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                assert set(action.choices) <= helped, f"{path}: subcommands without help"


def test_exit_codes_are_documented_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    for code in ExitCode:
        assert re.search(rf"^\|\s*{int(code)}\s*\|\s*`{code.name}`", readme, re.M), code.name
