"""``sscard profile list | show NAME | check FILE`` (issue 19.7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sscard_terminal.cli.main import main
from sscard_terminal.profiles import BUILTIN_PROFILES

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"


def test_list_gives_one_line_per_shipped_profile(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(BUILTIN_PROFILES)
    identity = next(line for line in lines if line.startswith("identity-desk"))
    assert "hotel-registration" in identity and "exam-check-in" in identity


def test_show_resolves_a_profile_with_its_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "show", "library-gate", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # library-gate.toml says nothing of regions, authentication or identity: defaults.
    assert data["regions"] == {"local": "all", "elsewhere": "full_fare"}
    assert data["authentication"] == {"unauthenticated": "older_generations"}
    assert data["identity"]["release"] == "none"
    assert data["timing"]["budget_ms"] == 800
    assert main(["profile", "show", "hotel-registration"]) == 0
    text = capsys.readouterr().out
    assert "identity-desk" in text and "complete" in text


def test_check_accepts_a_good_file_and_warns_of_a_kind_without_a_shape(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "check", str(PROFILE_DIR / "hospital-desk.toml")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK ")
    assert "evoucher codes but no [[ecode.shapes]]" in out


@pytest.mark.parametrize(("old", "new", "key"), [
    ("budget_ms = 300 ", "budget_ms = 5 ", "timing.budget_ms"),
    ('[concessions]', '[regions]\nlocal = ["99"]\n\n[concessions]', "regions.local"),
    ('[journal]', '[[ecode.shapes]]\nkind = "national"\npattern = ".*"\n\n[journal]',
     "ecode.shapes[0]"),
])
def test_check_refuses_a_broken_file_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str,
        key: str) -> None:
    text = (PROFILE_DIR / "bus-validator.toml").read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    assert main(["profile", "check", str(broken)]) == 17
    err = capsys.readouterr().err
    assert "broken.toml" in err and key in err
