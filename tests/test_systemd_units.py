"""The shipped systemd files, checked by systemd's own tools (installed by scripts/setup).

``systemd-analyze verify`` exits 0 even for unknown keys or unparsable values (it warns
and ignores them), so the check is "exit 0 and not a word of output"; a planted mistake
shows that this catches what it should. The unit names ``/usr/bin/sscard-terminald``,
which verify requires to exist: the test verifies a copy whose ExecStart lines point at
this installation's real ``sscard-terminald`` instead (exactly what a virtualenv
install's drop-in does), everything else byte for byte the shipped file.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SYSTEMD = REPO / "systemd"
UNIT = SYSTEMD / "sscard-terminald.service"
INSTALLED = Path(sys.executable).parent / "sscard-terminald"
SHIPPED_PATH = "/usr/bin/sscard-terminald"


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path is not None, f"{name} missing: scripts/setup installs Debian's systemd"
    return path


def verify(unit_text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    target = tmp_path / "sscard-terminald.service"
    target.write_text(unit_text)
    return subprocess.run([tool("systemd-analyze"), "verify", "--man=no", str(target)],
                          capture_output=True, text=True, timeout=120, check=False)


def installed_unit() -> str:
    text = UNIT.read_text()
    assert text.count(SHIPPED_PATH) == 1          # ExecStart=
    assert INSTALLED.is_file() and os.access(INSTALLED, os.X_OK)
    return text.replace(SHIPPED_PATH, str(INSTALLED))


def directives(text: str) -> dict[str, list[str]]:
    """``Section.Key`` -> every value (systemd keys may repeat)."""
    found: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        found.setdefault(f"{section}.{key}", []).append(value)
    return found


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(installed_unit(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize("mistake", ["Frobnicate=yes", "WatchdogSec=banana",
                                     "ProtectSystem=very"])
def test_the_verify_check_catches_a_planted_mistake(tmp_path: Path, mistake: str) -> None:
    broken = installed_unit().replace("[Service]\n", f"[Service]\n{mistake}\n", 1)
    result = verify(broken, tmp_path)
    assert result.returncode != 0 or result.stderr.strip() != ""


def test_the_unit_has_what_the_daemon_needs() -> None:
    unit = directives(UNIT.read_text())
    expect = {
        "Service.Type": ["notify"],
        "Service.Restart": ["on-failure"],
        "Service.User": ["sscard"],
        "Service.ProtectSystem": ["strict"],
        "Service.ProtectHome": ["yes"],
        "Service.PrivateTmp": ["yes"],
        "Service.NoNewPrivileges": ["yes"],
        "Service.StateDirectory": ["sscard-terminald"],
        "Service.RuntimeDirectory": ["sscard-terminald"],
        "Service.RestartPreventExitStatus": ["17"],
    }
    for key, value in expect.items():
        assert unit.get(key) == value, key
    assert unit["Service.WatchdogSec"] and unit["Service.TimeoutStopSec"]
    for key in ("Unit.Wants", "Unit.After"):
        assert "pcscd.socket" in " ".join(unit[key]).split()
    allowed = " ".join(unit["Service.DeviceAllow"])
    for device in ("char-ttyACM", "char-ttyUSB", "char-video4linux"):
        assert device in allowed


def test_the_credentials_the_unit_loads_are_those_the_examples_name() -> None:
    loaded = {value.split(":", 1)[0] for value in
              directives(UNIT.read_text())["Service.LoadCredential"]}
    named: set[str] = set()
    for example in (SYSTEMD / "examples").glob("*.toml"):
        data = tomllib.loads(example.read_text())
        named.add(data["journal"]["key_credential"])
        named.add(data["central"]["secret_credential"])
    assert named == loaded == {"journal-key", "central-secret"}


def test_sysusers_creates_the_user_the_polkit_and_udev_rules_name(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run([tool("systemd-sysusers"), f"--root={root}",
                    str(SYSTEMD / "sysusers.d" / "sscard.conf")],
                   check=True, capture_output=True, timeout=60)
    users = {line.split(":")[0]: line.split(":") for line in
             (root / "etc" / "passwd").read_text().splitlines()}
    assert "sscard" in users
    assert users["sscard"][5] == "/var/lib/sscard-terminald"
    assert users["sscard"][6] == "/usr/sbin/nologin"
    assert 'subject.user == "sscard"' in (SYSTEMD / "50-sscard-pcsc.rules").read_text()
    assert re.search(r'GROUP="sscard"', (SYSTEMD / "60-sscard-scanner.rules").read_text())


def test_tmpfiles_creates_the_config_and_credentials_directories(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    subprocess.run([tool("systemd-sysusers"), f"--root={root}",
                    str(SYSTEMD / "sysusers.d" / "sscard.conf")],
                   check=True, capture_output=True, timeout=60)
    subprocess.run([tool("systemd-tmpfiles"), f"--root={root}", "--create",
                    str(SYSTEMD / "tmpfiles.d" / "sscard.conf")],
                   check=True, capture_output=True, timeout=60)
    gid = int(next(line.split(":")[2] for line in (root / "etc" / "group").read_text()
                   .splitlines() if line.startswith("sscard:")))
    config = (root / "etc" / "sscard").stat()
    credentials = (root / "etc" / "sscard" / "credentials").stat()
    assert (config.st_mode & 0o777, config.st_uid, config.st_gid) == (0o750, 0, gid)
    assert (credentials.st_mode & 0o777, credentials.st_uid) == (0o700, 0)
    for value in directives(UNIT.read_text())["Service.LoadCredential"]:
        assert value.split(":", 1)[1].startswith("/etc/sscard/credentials/")
