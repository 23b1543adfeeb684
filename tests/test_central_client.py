"""Client behaviour at the package boundary: garbage answers become CentralProtocolError,
the ping CLI reports latency, offset and auth, the config keeps its secret out of reprs."""

from __future__ import annotations

import json
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import httpx
import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.central import CentralClient, Channel, TerminalConfig
from sscard_terminal.deadline import Deadline
from sscard_terminal.errors import (
    CentralProtocolError,
    CentralRefusedError,
    CentralUnreachableError,
    ConfigError,
)


def _client(handler: object, **kwargs: object) -> CentralClient:
    return CentralClient("http://central.invalid", "T1", "secret",
                         transport=httpx.MockTransport(handler),  # type: ignore[arg-type]
                         **kwargs)  # type: ignore[arg-type]


def _validate(client: CentralClient) -> object:
    return client.validate_card("330302D1560000050000000000000000", "D00000013", "330302",
                                Channel.CONTACT, Deadline.after(2))


@pytest.mark.parametrize("status,content", [
    (200, b"not json"),
    (200, b"[1, 2]"),
    (200, b'{"status": "teleported", "reason": "x"}'),
    (200, b'{"status": "normal"}'),
    (200, b'{"status": "normal", "reason": "ok", "holder": "Zhang"}'),
    (200, b'{"status": "normal", "reason": "ok", "applications": "all"}'),
    (404, b'{"error": "not_found", "reason": "no route"}'),
    (413, b'{"error": "too_large"}'),
])
def test_malformed_answers_are_protocol_errors(status: int, content: bytes) -> None:
    with _client(lambda request: httpx.Response(status, content=content)) as client:
        with pytest.raises(CentralProtocolError):
            _validate(client)


def test_oversized_answer_without_length_is_cut_off() -> None:
    def endless(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=iter([b"x" * 65536] * 100))
    with _client(endless, max_response_bytes=100_000) as client:
        with pytest.raises(CentralProtocolError, match="cap"):
            _validate(client)


def test_unknown_applications_from_a_newer_central_are_ignored() -> None:
    body = {"status": "normal", "reason": "ok", "applications": ["transit", "teleport"]}
    with _client(lambda request: httpx.Response(200, json=body)) as client:
        result = _validate(client)
    assert {a.value for a in result.applications} == {"transit"}  # type: ignore[attr-defined]


def test_closed_client_is_unreachable_not_a_crash() -> None:
    client = _client(lambda request: httpx.Response(200, json={}))
    client.close()
    with pytest.raises(CentralUnreachableError):
        _validate(client)


def test_config_needs_credentials_and_hides_the_secret() -> None:
    with pytest.raises(ConfigError):
        TerminalConfig.from_mapping({"base_url": "http://x"})
    config = TerminalConfig.from_mapping({"base_url": "http://x", "terminal_id": "T",
                                          "secret": "hunter2", "unrelated": 1})
    assert "hunter2" not in repr(config)


def test_bad_ca_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        CentralClient("https://central.invalid", "T", "s", ca_file=str(tmp_path / "none.pem"))


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sscard_terminal.cli.main", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_ping_cli_with_terminal_config(central_sim: CentralSim, tmp_path: Path) -> None:
    made = _cli("central-sim", "terminal-config", "--db", str(central_sim.db), "--terminal-id",
                central_sim.terminal_id, "--base-url", central_sim.base_url)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "central.json"
    config.write_text(made.stdout, encoding="utf-8")
    assert json.loads(made.stdout)["central_public_key"] == central_sim.central_public_key
    done = _cli("central", "ping", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "auth:         ok" in done.stdout and "clock offset:" in done.stdout
    wrong = tmp_path / "secret"
    wrong.write_text("0" * 64, encoding="utf-8")
    refused = _cli("central", "ping", "--config", str(config), "--secret-file", str(wrong))
    assert refused.returncode == 14 and "REFUSED (bad_signature)" in refused.stdout
    down = _cli("central", "ping", "--url", "http://127.0.0.1:9", "--terminal-id", "T",
                "--secret-file", str(wrong), "--timeout", "0.5")
    assert down.returncode == 13, down.stderr


def test_a_deadline_that_never_expires_is_served(central_sim: CentralSim) -> None:
    """``Deadline.never()`` (a daemon's background job) means no timeout, not a crash of
    the socket layer on an infinite timeout."""
    with central_sim.make_client() as client:
        assert client.server_time(Deadline.never()) > 0
        assert client.ping(Deadline.never()).auth_ok


@pytest.mark.parametrize("content", [b"[" * 100_000, b'{"a":' * 100_000])
def test_deeply_nested_answer_is_a_protocol_error_not_a_recursion_error(content: bytes) -> None:
    with _client(lambda request: httpx.Response(200, content=content)) as client:
        with pytest.raises(CentralProtocolError):
            _validate(client)


@pytest.mark.parametrize("header", ["nan", "inf", "-inf", "1e999"])
def test_a_server_time_that_is_not_a_finite_number_is_ignored(header: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"status": "normal", "reason": "ok"},
                              headers={"X-Sscard-Server-Time": header})
    with _client(answer) as client:
        _validate(client)
        assert client.clock_offset is None


@pytest.mark.parametrize("changes", [
    {"base_url": 5},
    {"base_url": "http://[::1"},
    {"base_url": "ftp://central.example"},
    {"terminal_id": 7},
    {"terminal_id": "T-巴士"},
    {"terminal_id": "T\r\nX-Injected: 1"},
    {"secret": ["s"]},
    {"ca_file": 5},
    {"verify": "false"},
    {"central_public_key": 5},
])
def test_a_broken_config_is_a_config_error(changes: dict[str, object]) -> None:
    data = {"base_url": "http://127.0.0.1:9", "terminal_id": "T", "secret": "s", **changes}
    with pytest.raises(ConfigError):
        client = CentralClient.from_config(TerminalConfig.from_mapping(data))
        client.close()


def test_cli_bad_files_are_config_errors_not_tracebacks(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    missing = str(tmp_path / "no" / "such" / "dir" / "c.db")
    runs = [
        ("central", "ping", "--url", "http://127.0.0.1:9", "--terminal-id", "T",
         "--secret-file", str(tmp_path / "none")),
        ("central-sim", "terminal-config", "--db", str(junk), "--terminal-id", "T"),
        ("central-sim", "set-app", "D00000013", "library", "off", "--db", str(junk)),
        ("central-sim", "set-status", "D00000013", "normal", "--db", missing),
        ("central-sim", "serve", "--port", "0", "--db", missing),
    ]
    for args in runs:
        done = _cli(*args)
        assert done.returncode == 17 and "Traceback" not in done.stderr, (args, done.stderr)
        assert done.stderr.startswith("sscard: "), args


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"true", b'"12"'])
def test_a_time_answer_that_is_not_a_finite_number_is_a_protocol_error(value: bytes) -> None:
    content = b'{"server_time": ' + value + b"}"
    with _client(lambda request: httpx.Response(200, content=content)) as client:
        with pytest.raises(CentralProtocolError):
            client.server_time(Deadline.after(2))


def test_a_compressed_answer_cannot_inflate_past_the_cap_in_memory() -> None:
    """The cap must hold for what is held in memory, not only for what came off the wire:
    one 64 KiB read of gzip (what the socket layer hands over at once) inflates to ~64 MB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = packer.compress(b"\0" * (64 * 1024 * 1024)) + packer.flush()
    assert len(bomb) < 100_000

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"Content-Encoding": "gzip"},
                              content=iter([bomb]))
    with _client(answer, max_response_bytes=1024 * 1024) as client:
        tracemalloc.start()
        try:
            with pytest.raises(CentralProtocolError):
                _validate(client)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"


def test_the_client_asks_for_uncompressed_answers() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Accept-Encoding", ""))
        return httpx.Response(200, json={"status": "normal", "reason": "ok"})
    with _client(answer) as client:
        _validate(client)
    assert seen == ["identity"]


HOSTILE_REASON = "ok\r\n2026-11-23 INFO sscard: card accepted\x1b[2J\u202etxt" + "x" * 100_000


def _clean(text: str | None) -> None:
    assert text is not None and len(text) <= 200
    assert all(ch.isprintable() for ch in text), repr(text[:80])


def test_a_hostile_reason_cannot_forge_log_lines_or_flood_them() -> None:
    """The central's reasons reach logs, errors, the journal and gate displays: control
    characters could forge a log line or clear a technician's terminal, and a 100 kB
    reason rides along everywhere it goes."""
    body = {"status": "normal", "reason": HOSTILE_REASON, "warning": HOSTILE_REASON}
    with _client(lambda request: httpx.Response(200, json=body)) as client:
        result = _validate(client)
    _clean(result.reason)      # type: ignore[attr-defined]
    _clean(result.warning)     # type: ignore[attr-defined]
    assert result.reason.startswith("ok??2026-11-23 INFO")  # type: ignore[attr-defined]

    refusal = {"error": "unauthorized", "reason": HOSTILE_REASON}
    with _client(lambda request: httpx.Response(401, json=refusal)) as client, \
            pytest.raises(CentralRefusedError) as refused:
        _validate(client)
    _clean(refused.value.reason)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 400

    with _client(lambda request: httpx.Response(404, json=refusal)) as client, \
            pytest.raises(CentralProtocolError) as odd:
        _validate(client)
    assert "\n" not in str(odd.value) and len(str(odd.value)) < 400

    ecode = {"accepted": False, "reason": HOSTILE_REASON}
    with _client(lambda request: httpx.Response(200, json=ecode)) as client:
        _clean(client.verify_ecode("SC1:X", Deadline.after(2)).reason)


def test_id_and_card_numbers_in_a_centrals_reason_are_masked() -> None:
    """Reasons are meant to be codes, but one a central wrote with the holder's numbers
    in it would carry them into every log line and error that quotes it."""
    said = "card D00000013 of 33030219900101123X reported lost; see ticket A1234567890"
    body = {"status": "formal_loss", "reason": said}
    with _client(lambda request: httpx.Response(200, json=body)) as client:
        reason = _validate(client).reason   # type: ignore[attr-defined]
    assert "D00000013" not in reason and "33030219900101123X" not in reason
    # whole, so a mask one character too narrow or too wide fails; the ticket number is
    # not the shape of a card number and is left alone
    assert reason == "card D*******3 of 3303**********123X reported lost; see ticket A1234567890"
