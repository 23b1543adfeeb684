"""The README's commands work as shown (the way sqlite-utils tests its documentation).

Two checks: the walkthrough block marked ``<!-- doc-test: run -->`` runs line by line in
an empty directory, each line with the exit code it is documented to have (0 unless a
trailing ``# exit N``); and every other ``sscard ...`` or ``python -m
sscard_terminal.local_api ...`` the README shows names a command and options that exist.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sscard_terminal.cli.main import build_parser
from sscard_terminal.local_api.__main__ import build_parser as local_api_parser

README = Path(__file__).resolve().parents[1] / "README.md"
_RUN_BLOCK = re.compile(r"<!-- doc-test: run -->\n```sh\n(.*?)```", re.S)
_EXIT = re.compile(r"#\s*exit (\d+)")
_DOC_PORT = "8700"

pytestmark = pytest.mark.timeout(240)


def _walkthrough() -> list[str]:
    blocks = _RUN_BLOCK.findall(README.read_text(encoding="utf-8"))
    assert blocks, "the README has no runnable walkthrough block"
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on port {port}")


def test_the_walkthrough_runs_as_written(tmp_path: Path) -> None:
    port = str(_free_port())
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           # No pcscd for this walkthrough: it promises to need none.
           "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")}
    background: list[subprocess.Popen[bytes]] = []
    try:
        for line in _walkthrough():
            command = line.split("  #", 1)[0].strip().replace(_DOC_PORT, port)
            found = _EXIT.search(line)
            expected = int(found.group(1)) if found else 0
            if command.endswith("&"):
                background.append(subprocess.Popen(
                    ["bash", "-c", f"exec {command[:-1]}"], cwd=tmp_path, env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True))
                _wait_for_port(int(port))
                continue
            if "terminal-config" in command:
                command = command.replace("terminal-config",
                                          f"terminal-config --base-url http://127.0.0.1:{port}")
            done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env,
                                  capture_output=True, text=True, timeout=60, check=False)
            assert done.returncode == expected, (
                f"README line {line!r} exited {done.returncode}, documented {expected}:\n"
                f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    finally:
        for process in background:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=10)


# --- every other command shown -----------------------------------------------------------

_SPAN = re.compile(r"`((?:sscard|python -m sscard_terminal\.local_api) [^`]*)`")
_FENCED = re.compile(r"```(?:sh|console)?\n(.*?)```", re.S)


def _shown_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    shown = _SPAN.findall(text)
    for block in _FENCED.findall(text):
        shown += [line.strip() for line in block.splitlines()
                  if line.strip().startswith(("sscard ", "python -m sscard_terminal.local_api"))]
    return shown


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions
            for option in action.option_strings}


def _problems(command: str) -> list[str]:
    words = command.split("  #", 1)[0].replace("[", " ").replace("]", " ").split()
    if words[0] == "python":
        parser, words = local_api_parser(), words[3:]
    else:
        parser, words = build_parser(), words[1:]
    problems = []
    # Walk the subcommands: "queue status|drain" names several; each must exist.
    while words and (subs := _subcommands(parser)):
        names = words[0].split("|")
        missing = [name for name in names if name not in subs]
        if missing:
            return [f"{command!r}: no command {missing}"]
        parser, words = subs[names[0]], words[1:]
    known = _options(parser)
    for word in words:
        option = word.split("=", 1)[0]
        if option.startswith("--") and option not in known:
            problems.append(f"{command!r}: no option {option}")
    return problems


def test_every_command_the_readme_shows_exists_with_its_options() -> None:
    shown = _shown_commands()
    assert len(shown) > 20
    problems = [problem for command in shown for problem in _problems(command)]
    assert not problems, "\n".join(problems)


def test_the_option_check_catches_drift() -> None:
    assert _problems("sscard read --reader sim:gen2-adult --no-such-option")
    assert _problems("sscard queue status|nonsense")
    assert not _problems("sscard queue status|drain|export|verify")
