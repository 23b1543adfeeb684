"""What a new user meets at the CLI (issue 21): each point pinned as it was fixed."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.cli.main import main


def _sscard(*args: str, cwd: Path | None = None, stdin: str | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sscard_terminal.cli.main", *args],
                          capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
                          input=stdin, env={**os.environ, **(env or {})})


def test_a_missing_journal_is_a_journal_error(tmp_path: Path) -> None:
    assert main(["queue", "status", "--db", str(tmp_path / "absent.db")]) == \
        ExitCode.JOURNAL_ERROR


def test_set_status_refuses_a_past_until_and_its_example_is_not_past(tmp_path: Path) -> None:
    yesterday = (dt.date.today() - dt.timedelta(days=1)).isoformat()
    done = _sscard("central-sim", "set-status", "D00000013", "temporary_loss",
                   "--until", yesterday, cwd=tmp_path)
    assert done.returncode == ExitCode.CONFIG_ERROR
    assert "already past" in done.stderr
    helped = _sscard("central-sim", "set-status", "--help", cwd=tmp_path)
    example = helped.stdout.split("Example:", 1)[1].split("--until ", 1)[1][:10]
    assert dt.date.fromisoformat(example) > dt.date.today()


def test_a_piped_pin_without_pin_stdin_is_refused_naming_the_option() -> None:
    done = _sscard("pin", "verify", "--reader", "sim:gen3-adult", stdin="123456\n")
    assert done.returncode == ExitCode.CONFIG_ERROR
    assert "--pin-stdin" in done.stderr and "GetPassWarning" not in done.stderr


def test_readers_is_usable_without_pcscd_when_simulated_readers_exist() -> None:
    done = _sscard("readers", env={"PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm"})
    assert done.returncode == ExitCode.OK
    assert "PC/SC readers unavailable" in done.stdout and "sim:gen2-adult" in done.stdout


def test_watch_without_pcscd_is_an_error_not_an_event() -> None:
    done = _sscard("watch", "--seconds", "2",
                   env={"PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm"})
    assert done.returncode == ExitCode.READER_UNAVAILABLE
    assert "reader-lost" not in done.stdout and "pcscd" in done.stderr


def test_watch_follows_a_simulated_reader() -> None:
    done = _sscard("watch", "--reader", "sim:gen2", "--count", "1")
    assert done.returncode == 0
    assert done.stdout.startswith("card-inserted\tsim:gen2-adult ATR 3B")


def test_a_closed_pipe_ends_quietly() -> None:
    done = subprocess.run(f"{sys.executable} -m sscard_terminal.cli.main readers | head -1",
                          shell=True, capture_output=True, text=True, timeout=60, check=False)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr
