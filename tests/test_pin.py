"""PIN verify/change against A's virtual card, SDK and CLI; the PIN never leaks."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from sscard_hardware_sim.virtual_card import VirtualCard

from sscard_terminal.cards.pin import change_pin, verify_pin
from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.cli.main import main
from sscard_terminal.drivers.sim import SimTransport
from sscard_terminal.errors import ConfigError, PinError

GOOD = "123456"  # the synthetic holders' PIN (tests/hardware_sim/data)
WRONG = "987650"


@pytest.fixture(autouse=True)
def _trace_level() -> Iterator[None]:
    """Some tests here turn the APDU trace logger up; restore it per test."""
    trace = logging.getLogger("sscard_terminal.apdu.trace")
    level = trace.level
    trace.setLevel(logging.NOTSET)
    yield
    trace.setLevel(level)


def _transport() -> tuple[VirtualCard, SimTransport]:
    card = VirtualCard.from_holder("gen3-adult")
    return card, SimTransport(card)


def test_verify_ok_and_bytearray_is_wiped() -> None:
    _card, transport = _transport()
    pin = bytearray(GOOD, "ascii")
    verify_pin(transport, pin)
    assert pin == bytearray(len(GOOD))  # wiped to zeros


def test_wrong_pin_reports_tries_then_locks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("sscard_terminal.apdu.trace").setLevel(logging.DEBUG)
    card, transport = _transport()
    seen: list[PinError] = []
    for expected_tries in (2, 1):
        with pytest.raises(PinError) as caught:
            verify_pin(transport, WRONG)
        assert caught.value.tries_left == expected_tries and not caught.value.locked
        seen.append(caught.value)
    with pytest.raises(PinError) as caught:
        verify_pin(transport, WRONG)
    assert caught.value.locked and caught.value.tries_left == 0
    with pytest.raises(PinError) as caught:
        verify_pin(transport, GOOD)  # locked: even the right PIN is refused (69 83)
    assert caught.value.locked and caught.value.sw == 0x6983
    seen.append(caught.value)
    assert card.pin_tries == 0
    text = caplog.text + " ".join(f"{e!s} {e!r}" for e in seen)
    for pin in (GOOD, WRONG):
        assert pin not in text
        assert pin not in text.replace(" ", "")  # not even as BCD hex in an APDU trace


def test_change_pin() -> None:
    card, transport = _transport()
    change_pin(transport, GOOD, "246802")
    assert card.pin == "246802"
    verify_pin(transport, "246802")
    with pytest.raises(PinError) as caught:
        change_pin(transport, GOOD, "111111")
    assert caught.value.tries_left == 2


@pytest.mark.parametrize("bad", ["12345", "1234567", "12a456", ""])
def test_malformed_pin_is_refused_before_sending(bad: str) -> None:
    card, transport = _transport()
    before = card.apdu_count
    with pytest.raises(ConfigError) as caught:
        verify_pin(transport, bad)
    assert card.apdu_count == before
    if bad:
        assert bad not in str(caught.value)


def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
         argv: list[str], stdin: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin.encode())))
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_cli_verify_and_change(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    reader = ["--reader", "sim:gen3-adult", "--pin-stdin"]
    code, text = _cli(monkeypatch, capsys, ["pin", "verify", *reader], GOOD + "\n")
    assert code == ExitCode.OK and "PIN verified" in text
    code, text = _cli(monkeypatch, capsys, ["pin", "verify", *reader], WRONG + "\n")
    assert code == ExitCode.PIN_WRONG and "2 tries left" in text and WRONG not in text
    code, text = _cli(monkeypatch, capsys, ["pin", "change", *reader],
                      f"{GOOD}\n654321\n654321\n")
    assert code == ExitCode.OK and "PIN changed" in text and "654321" not in text
    code, text = _cli(monkeypatch, capsys, ["pin", "change", *reader],
                      f"{GOOD}\n654321\n654322\n")
    assert code == ExitCode.CONFIG_ERROR and "differ" in text


def test_cli_with_apdu_trace_never_logs_the_pin(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for pin in (GOOD, WRONG):
        _cli(monkeypatch, capsys, ["-vv", "pin", "verify", "--pin-stdin",
                                   "--reader", "sim:gen3-adult"], pin + "\n")
    trace = [r for r in caplog.records if r.name == "sscard_terminal.apdu.trace"]
    assert trace, "the APDU trace was on (the SELECT is traced)"
    for pin in (GOOD, WRONG):
        assert pin not in caplog.text.replace(" ", "")
