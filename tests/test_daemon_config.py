"""The daemon's configuration: strict validation, one line per problem naming file and key,
and every shipped example passing ``sscard-terminald --check-config``."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.daemon.config import (
    GateKind,
    LaneInput,
    load_config,
    parse_config,
)
from sscard_terminal.daemon.main import EXIT_CONFIG
from sscard_terminal.errors import ConfigError
from sscard_terminal.profiles import BUILTIN_PROFILES

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "systemd" / "examples"
DAEMON = Path(sys.executable).parent / "sscard-terminald"
PUBLIC_KEY = "roe7dKJm987Tx_VPRnyITP1gCuwhyZBmbwCt3yGqv3w"


@pytest.fixture
def systemd_dirs(tmp_path: Path) -> dict[str, str]:
    """What systemd would hand the service: its state and runtime directories, and the
    two credentials of the unit's LoadCredential= lines (fresh placeholder values)."""
    state = tmp_path / "state"
    runtime = tmp_path / "run"
    creds = tmp_path / "credentials"
    for d in (state, runtime, creds):
        d.mkdir()
    (creds / "journal-key").write_text(os.urandom(32).hex() + "\n")
    (creds / "central-secret").write_text("s3cret-of-the-terminal\n")
    return {"STATE_DIRECTORY": str(state), "RUNTIME_DIRECTORY": str(runtime),
            "CREDENTIALS_DIRECTORY": str(creds)}


def minimal(state: Path, **extra: str) -> str:
    text = f"""
[terminal]
id = "T-1"
profile = "bus-validator"
state_directory = "{state}"

[journal]
key_credential = "journal-key"

[lanes.front]
reader = "sim:front"
"""
    for table, body in extra.items():
        text += f"\n[{table}]\n{body}\n"
    return text


def parse(text: str, env: dict[str, str]) -> object:
    return parse_config(text, source="/etc/sscard/terminal.toml", environ=env)


def test_a_minimal_config_validates_into_frozen_dataclasses(
        systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    config = parse_config(minimal(state), source="t.toml", environ=systemd_dirs)
    assert config.terminal_id == "T-1"
    assert config.profile.name == "bus-validator"
    assert config.state_directory == state
    assert config.central is None and config.terminal_config() is None
    assert len(config.journal_key) == 32
    assert "journal_key=" not in repr(config)
    (lane,) = config.lanes
    assert lane.input is LaneInput.READER and lane.is_sim and lane.reads_cards
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.terminal_id = "other"  # type: ignore[misc]


def test_central_link_reads_secret_and_pins_the_key(systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    text = minimal(state, central=f'url = "http://127.0.0.1:8700"\n'
                                  f'secret_credential = "central-secret"\n'
                                  f'public_key = "{PUBLIC_KEY}"')
    config = parse_config(text, source="t.toml", environ=systemd_dirs)
    assert config.central is not None
    assert config.central.secret == "s3cret-of-the-terminal"
    assert "s3cret" not in repr(config)
    terminal = config.terminal_config()
    assert terminal is not None
    assert terminal.terminal_id == "T-1" and terminal.secret == "s3cret-of-the-terminal"
    assert terminal.central_public_key == PUBLIC_KEY


def test_secret_and_key_from_files(tmp_path: Path, systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    key = tmp_path / "journal.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o600)
    secret = tmp_path / "secret"
    secret.write_text("abc\n")
    text = minimal(state, central=f'url = "https://c.example"\nsecret_file = "{secret}"')
    text = text.replace('key_credential = "journal-key"', f'key_file = "{key}"')
    config = parse_config(text, source="t.toml", environ={})
    assert config.journal_key == key.read_bytes()
    assert config.central is not None and config.central.secret == "abc"
    assert config.journal_key_source == f"file {key}"


def test_lanes_scanners_cameras_and_gates(systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    text = minimal(state) + """
[lanes.qr]
scanner = "/dev/serial/by-id/usb-X-if00"
baudrate = 115200
gate = { kind = "gpio", chip = "/dev/gpiochip0", line = 4 }

[lanes.cam]
camera = "/dev/video0"
[lanes.cam.gate]
kind = "serial"
device = "/dev/ttyUSB3"
open_frame = "A0 01 01 A2"
close_frame = "a0:01:00:a1"

[lanes.sim-gate]
reader_prefix = "ACS"
gate = { kind = "sim" }
"""
    config = parse_config(text, source="t.toml", environ=systemd_dirs)
    by_name = {lane.name: lane for lane in config.lanes}
    assert by_name["qr"].input is LaneInput.SCANNER and by_name["qr"].baudrate == 115200
    assert by_name["qr"].gate is not None and by_name["qr"].gate.kind is GateKind.GPIO
    assert by_name["qr"].gate.line == 4
    assert by_name["cam"].gate is not None and by_name["cam"].gate.device == "/dev/ttyUSB3"
    assert (by_name["cam"].gate.open_frame, by_name["cam"].gate.close_frame) == (
        bytes.fromhex("A00101A2"), bytes.fromhex("A00100A1"))
    assert by_name["sim-gate"].input is LaneInput.READER_PREFIX


def test_relative_socket_lives_in_the_runtime_directory(systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    config = parse_config(minimal(state, local_api='socket = "api.sock"'), source="t.toml",
                          environ=systemd_dirs)
    assert config.local_api is not None
    assert config.local_api.socket == Path(systemd_dirs["RUNTIME_DIRECTORY"]) / "api.sock"


def test_state_directory_defaults_to_systemds(systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    text = minimal(state).replace(f'state_directory = "{state}"\n', "")
    assert parse_config(text, source="t", environ=systemd_dirs).state_directory == state


def test_a_profile_path_is_relative_to_the_config_file(tmp_path: Path,
                                                       systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    shipped = (REPO / "profiles" / "library-gate.toml").read_text()
    (tmp_path / "mine.toml").write_text(shipped.replace('name = "library-gate"',
                                                        'name = "my-gate"'))
    conf = tmp_path / "terminal.toml"
    conf.write_text(minimal(state).replace('"bus-validator"', '"mine.toml"'))
    assert load_config(conf, environ=systemd_dirs).profile.name == "my-gate"


BAD = [
    # (what to change, key named in the message, words in the message)
    (lambda t, s: t + "\n[gates]\nx = 1\n", "gates", "unknown table"),
    (lambda t, s: t.replace('id = "T-1"', 'id = "T-1"\nname = "x"'), "terminal.name",
     "unknown key"),
    (lambda t, s: t.replace('id = "T-1"', "id = 7"), "terminal.id", "must be str, got int"),
    (lambda t, s: t.replace('id = "T-1"\n', ""), "terminal.id", "missing"),
    (lambda t, s: t.replace('"bus-validator"', '"tram"'), "terminal.profile",
     "unknown profile"),
    (lambda t, s: t.replace(str(s), str(s / "nope")), "terminal.state_directory",
     "not an existing directory"),
    (lambda t, s: t.replace('"journal-key"', '"missing-key"'), "journal.key_credential",
     "is not in"),
    (lambda t, s: t.replace('key_credential = "journal-key"',
                            'key_credential = "journal-key"\nkey_file = "/k"'),
     "journal.key_credential", "only one of"),
    (lambda t, s: t.replace('key_credential = "journal-key"', 'key_file = "/no/such.key"'),
     "journal.key_file", "does not exist"),
    (lambda t, s: t.replace('reader = "sim:front"', 'reader = "sim:"'), "lanes.front.reader",
     "needs a name"),
    (lambda t, s: t.replace('reader = "sim:front"', "reader_prefix = 3"),
     "lanes.front.reader_prefix", "must be str, got int"),
    (lambda t, s: t.replace('reader = "sim:front"', 'reader = "sim:a"\ncolour = "red"'),
     "lanes.front.colour", "unknown key"),
    (lambda t, s: t.replace('reader = "sim:front"', 'scanner = "COM3"'), "lanes.front.scanner",
     "not an absolute device path"),
    (lambda t, s: t.replace('reader = "sim:front"', 'reader = "sim:a"\nbaudrate = 9600'),
     "lanes.front.baudrate", "only a scanner"),
    (lambda t, s: t.replace('reader = "sim:front"', 'scanner = "/dev/x"\nbaudrate = 1234'),
     "lanes.front.baudrate", "not a standard baud rate"),
    (lambda t, s: t.replace('reader = "sim:front"', 'reader = "sim:a"\n'
                            'gate = { kind = "relay" }'), "lanes.front.gate.kind",
     "not one of sim, serial, gpio"),
    (lambda t, s: t.replace('reader = "sim:front"', 'reader = "sim:a"\n'
                            'gate = { kind = "gpio", chip = "/dev/gpiochip0", line = true }'),
     "lanes.front.gate.line", "must be int, got bool"),
    (lambda t, s: t.replace('reader = "sim:front"', 'reader = "sim:a"\n'
                            'gate = { kind = "sim", device = "/dev/x" }'),
     "lanes.front.gate.device", "unknown key"),
    (lambda t, s: t.replace('reader = "sim:front"', 'reader = "sim:a"\n'
                            'gate = { kind = "serial", device = "/dev/ttyUSB0" }'),
     "lanes.front.gate.open_frame", "missing"),
    (lambda t, s: t.replace('reader = "sim:front"', 'reader = "sim:a"\n'
                            'gate = { kind = "serial", device = "/dev/ttyUSB0", '
                            'open_frame = "A0 01", close_frame = "zz" }'),
     "lanes.front.gate.close_frame", "not hex bytes"),
    (lambda t, s: t + '\n[lanes.back]\nreader = "sim:front"\n', "lanes.back.reader",
     "already lane 'front'"),
    (lambda t, s: t.replace("[lanes.front]\nreader = \"sim:front\"\n", "[lanes]\n"), "lanes",
     "no lane configured"),
    (lambda t, s: t + '\n[security_module]\npsam_reader = "sim:front"\n',
     "security_module.psam_reader", "overlaps lane 'front'"),
    (lambda t, s: t + '\n[central]\nurl = "ftp://x"\nsecret_credential = "central-secret"\n',
     "central.url", "not an http(s) URL"),
    (lambda t, s: t + '\n[central]\nurl = "http://x"\nsecret_credential = "central-secret"\n'
                      'public_key = "short"\n', "central.public_key", "not a base64url"),
    (lambda t, s: t + '\n[central]\nurl = "http://x"\n', "central.secret_file", "missing"),
    (lambda t, s: t + '\n[local_api]\nsocket = "/no/such/dir/api.sock"\n', "local_api.socket",
     "not an existing directory"),
    (lambda t, s: t + '\n[http]\nport = 8765\n', "http", "needs [local_api]"),
    (lambda t, s: t + '\n[metrics]\ntextfile = "/tmp/sscard.txt"\n', "metrics.textfile",
     "ending in .prom"),
    (lambda t, s: t + '\n[metrics]\ntextfile = "/no/such/dir/sscard.prom"\n',
     "metrics.textfile", "not an existing directory"),
    (lambda t, s: t + '\n[metrics]\nport = 9100\n', "metrics.port", "unknown key"),
]


@pytest.mark.parametrize("change,key,words", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_each_problem_is_one_line_naming_file_key_and_why(
        systemd_dirs: dict[str, str], change: object, key: str, words: str) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    text = change(minimal(state), state)  # type: ignore[operator]
    with pytest.raises(ConfigError) as caught:
        parse(text, systemd_dirs)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"/etc/sscard/terminal.toml: key '{key}"), message
    assert words in message, message


def test_credentials_without_credentials_directory_say_how_to_fix(
        systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    with pytest.raises(ConfigError, match=r"CREDENTIALS_DIRECTORY is unset \(add LoadCredential"):
        parse(minimal(state), {})


def test_a_journal_key_readable_by_others_is_refused(tmp_path: Path,
                                                      systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    key = tmp_path / "journal.key"
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    text = minimal(state).replace('key_credential = "journal-key"', f'key_file = "{key}"')
    with pytest.raises(ConfigError, match=r"key 'journal.key_file'.*chmod 600"):
        parse(text, systemd_dirs)


def test_not_toml_names_the_file() -> None:
    with pytest.raises(ConfigError, match=r"^x.toml: not valid TOML"):
        parse_config("[terminal\n", source="x.toml", environ={})


def test_config_exit_code_is_the_clis() -> None:
    assert EXIT_CONFIG == ExitCode.CONFIG_ERROR


def run_daemon(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(DAEMON), *args], check=False, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=60)


def test_every_shipped_profile_has_an_example() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.toml")) == sorted(BUILTIN_PROFILES)


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_each_example_passes_check_config(example: Path, systemd_dirs: dict[str, str]) -> None:
    """The examples name systemd's credentials and directories, not files: the test plays
    systemd and supplies them (placeholder key and secret), exactly as the unit would."""
    result = run_daemon("--config", str(example), "--check-config", env=systemd_dirs)
    assert result.returncode == 0, result.stderr
    assert "configuration ok" in result.stderr


def test_check_config_exits_with_the_config_code_and_one_line(
        tmp_path: Path, systemd_dirs: dict[str, str]) -> None:
    bad = tmp_path / "terminal.toml"
    bad.write_text(minimal(Path(systemd_dirs["STATE_DIRECTORY"])).replace('"T-1"', "1"))
    result = run_daemon("--config", str(bad), "--check-config", env=systemd_dirs)
    assert result.returncode == EXIT_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{bad}: key 'terminal.id': must be str" in lines[0]


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    result = run_daemon("--config", str(tmp_path / "none.toml"), "--check-config", env={})
    assert result.returncode == EXIT_CONFIG
    assert "no such configuration file" in result.stderr


def test_the_http_bridge_needs_a_private_token_of_16_characters(
        tmp_path: Path, systemd_dirs: dict[str, str]) -> None:
    state = Path(systemd_dirs["STATE_DIRECTORY"])
    token = tmp_path / "api.token"
    bridge = (f'\n[local_api]\nsocket = "{tmp_path / "api.sock"}"\n'
              f'\n[http]\nport = 8765\ntoken_file = "{token}"\ndisplay = true\nmetrics = true\n')
    token.write_text("0123456789abcdef-long-enough\n")
    token.chmod(0o644)
    with pytest.raises(ConfigError, match=r"key 'http.token_file': .* readable by every user"):
        parse(minimal(state) + bridge, systemd_dirs)
    token.chmod(0o600)
    http = parse(minimal(state) + bridge, systemd_dirs).http
    assert http is not None and (http.port, http.display, http.metrics) == (8765, True, True)
    assert "0123456789abcdef" not in repr(http)          # the token stays out of logs
    token.write_text("short\n")
    with pytest.raises(ConfigError, match=r"key 'http.token_file': .* at least 16"):
        parse(minimal(state) + bridge, systemd_dirs)
    token.write_text("0123456789abcdef-long-enough\n")
    with pytest.raises(ConfigError, match=r"key 'http.port': 70000 is outside"):
        parse(minimal(state) + bridge.replace("8765", "70000"), systemd_dirs)
