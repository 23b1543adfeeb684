"""SerialQrScanner over a real pseudo-terminal pair that pyserial opens through a symlink."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sscard_hardware_sim.virtual_scanner import VirtualScanner

from sscard_terminal.cli.exit_codes import ExitCode
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.code_filter import ScannerEvent, ScannerState
from sscard_terminal.drivers.line_framer import Frame, LineFramer, Terminator
from sscard_terminal.drivers.serial_qr import SerialQrScanner
from sscard_terminal.errors import ConfigError, ScannerUnavailableError

pytestmark = pytest.mark.timeout(60)

CODE_A = "SC1:6BFOXN*TS0BI$ZD4N9:9S6RCVN5+O30K3/XIV0W23NTDEPWK G2EP4J0B"
CODE_B = "SC1:NCFOXN%TS3DH0YOJ58S S-W5HDC *M0II5XHC9B5G2+$N IOP-IA%NFQGRJPC%OQHIZC4.OI1RM8ZA"


@pytest.fixture
def link(tmp_path: Path) -> Path:
    return tmp_path / "serial" / "by-id" / "usb-Virtual_QR_Scanner_0001-if00"


def _read_all(scanner: SerialQrScanner, seconds: float) -> list[str]:
    """Every code delivered until ``seconds`` of silence."""
    texts = []
    while (code := scanner.read(Deadline.after(seconds))) is not None:
        texts.append(code.text)
    return texts


@pytest.mark.parametrize("terminator", ["CR", "LF", "CRLF"])
def test_codes_are_read_line_by_line_with_each_terminator(link: Path, terminator: str) -> None:
    with VirtualScanner(link, terminator=terminator) as device, SerialQrScanner(
        str(link), terminator=terminator
    ) as scanner:
        device.scan(CODE_A)
        device.scan(CODE_B)
        code = scanner.read(Deadline.after(5))
        assert code is not None
        assert code.text == CODE_A
        assert code.source == f"serial:{link}"
        assert abs(code.at_monotonic - time.monotonic()) < 5
        assert _read_all(scanner, 0.5) == [CODE_B]
        assert scanner.counters().accepted == 2
        assert scanner.counters().discarded == 0


@pytest.mark.parametrize("configured", ["CR", "LF"])
def test_a_crlf_scanner_read_in_cr_or_lf_mode_loses_no_code(link: Path, configured: str) -> None:
    """The setting and the scanner disagree (it was re-flashed, or swapped for another
    model): the other half of its CRLF stuck to every code, which was then discarded as
    non-printable: every code but the first, or every code at all."""
    with VirtualScanner(link, terminator="CRLF") as device, SerialQrScanner(
        str(link), terminator=configured
    ) as scanner:
        device.scan(CODE_A)
        device.scan(CODE_B)
        device.scan(CODE_A + "X")
        assert _read_all(scanner, 0.5) == [CODE_A, CODE_B, CODE_A + "X"]
        assert scanner.counters().discarded == 0


def test_auto_terminator_takes_cr_lf_and_crlf_mixed(link: Path) -> None:
    with VirtualScanner(link) as device, SerialQrScanner(str(link), terminator="auto") as scanner:
        device.send_raw(b"one\rtwo\nthree\r\nfour\r")
        assert _read_all(scanner, 0.5) == ["one", "two", "three", "four"]


def test_a_line_split_across_writes_is_reassembled(link: Path) -> None:
    with VirtualScanner(link, terminator="CRLF") as device, SerialQrScanner(
        str(link), terminator="CRLF"
    ) as scanner:
        device.send_raw(CODE_A[:10].encode() + b"")
        device.drain()
        assert scanner.read(Deadline.after(0.3)) is None  # no terminator yet: nothing
        device.send_raw(CODE_A[10:].encode() + b"\r")
        device.drain()
        time.sleep(0.1)
        device.send_raw(b"\n")
        assert _read_all(scanner, 0.5) == [CODE_A]


def test_prefix_and_suffix_added_by_the_scanner_are_stripped(link: Path) -> None:
    with VirtualScanner(link, prefix=b"]Q1", suffix=b"#") as device, SerialQrScanner(
        str(link), terminator="CR", strip_prefix=b"]Q1", strip_suffix=b"#"
    ) as scanner:
        device.scan(CODE_A)
        assert _read_all(scanner, 0.5) == [CODE_A]


def test_repeats_within_the_window_collapse_to_one(link: Path) -> None:
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", dedup_window=0.6
    ) as scanner:
        for _ in range(5):
            device.scan(CODE_A)
        device.scan(CODE_B)
        assert _read_all(scanner, 0.3) == [CODE_A, CODE_B]
        assert scanner.counters().duplicates == 4
        time.sleep(0.7)  # the window has passed: the same phone again is a new read
        device.scan(CODE_A)
        assert _read_all(scanner, 0.3) == [CODE_A]


def test_garbled_binary_and_oversized_input_is_discarded_and_counted(link: Path) -> None:
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", max_length=512
    ) as scanner:
        device.send_raw(b"\xff\xfe\xc3(garbled utf-8\r")  # invalid UTF-8
        device.send_raw(b"abc\x00def\r")  # NUL
        device.send_raw(b"\x1b[2Jescape\r")  # control characters
        device.send_raw(b"A" * 513 + b"\r")  # one byte too long
        device.send_raw(b"B" * 100_000)  # never terminated: must not grow the buffer
        device.send_raw(b"tail-of-the-flood\r")  # ends the flood: part of the same bad line
        device.scan(CODE_A)  # a good code right after is still read
        texts = _read_all(scanner, 1.0)
        assert texts == [CODE_A]
        counters = scanner.counters()
        assert counters.invalid_utf8 == 1
        assert counters.non_printable == 2
        assert counters.oversized == 2
        assert counters.accepted == 1


def test_a_line_of_only_spaces_is_no_code(link: Path) -> None:
    """A line of only spaces (line noise, a suffix configured as a space) was passed on
    and refused as an unreadable code, with nobody at the gate. A code may still hold
    spaces (Base45 does): only all-space lines go."""
    with VirtualScanner(link) as device, SerialQrScanner(str(link), terminator="CR") as scanner:
        device.send_raw(b"   \r")
        device.send_raw(b" \r")
        device.scan(CODE_B)
        assert _read_all(scanner, 1.0) == [CODE_B]
        assert scanner.counters().accepted == 1


def test_a_code_of_exactly_max_length_is_accepted(link: Path) -> None:
    text = "C" * 512
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", max_length=512
    ) as scanner:
        device.scan(text)
        assert _read_all(scanner, 0.5) == [text]


def test_unplug_and_replug_reports_lost_and_back_and_reads_again(link: Path) -> None:
    events: list[ScannerEvent] = []
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", reconnect_interval=0.05, on_event=events.append
    ) as scanner:
        device.scan(CODE_A)
        assert _read_all(scanner, 0.3) == [CODE_A]
        device.send_raw(b"half-a-co")  # cut mid-code: must never be completed later
        device.drain()
        device.unplug()
        assert scanner.read(Deadline.after(0.5)) is None
        assert scanner.state is ScannerState.LOST
        assert not link.exists()
        device.replug()
        assert link.exists()  # the same stable path, possibly a new tty behind it
        assert scanner.read(Deadline.after(0.5)) is None  # reconnects while waiting
        assert scanner.state is ScannerState.CONNECTED
        device.send_raw(b"de\r")
        device.scan(CODE_B)
        assert _read_all(scanner, 0.5) == ["de", CODE_B]
    kinds = [e.kind for e in events]
    assert kinds == ["scanner-connected", "scanner-lost", "scanner-back", "scanner-closed"]
    assert scanner.counters().lost == 1
    assert scanner.counters().back == 1


def test_a_scanner_plugged_in_after_start_is_waited_for(link: Path) -> None:
    events: list[str] = []
    scanner = SerialQrScanner(
        str(link),
        wait_for_device=True,
        reconnect_interval=0.05,
        on_event=lambda e: events.append(e.kind),
    )
    assert scanner.state is ScannerState.LOST
    with scanner, VirtualScanner(link) as device:
        assert scanner.read(Deadline.after(0.3)) is None  # finds the port while waiting
        assert scanner.state is ScannerState.CONNECTED
        device.scan(CODE_A)
        assert _read_all(scanner, 0.5) == [CODE_A]
    assert events[0] == "scanner-connected"


def test_a_missing_port_is_a_clear_error(link: Path) -> None:
    with pytest.raises(ScannerUnavailableError, match="does not exist"):
        SerialQrScanner(str(link))


def test_a_port_held_by_another_reader_is_busy(link: Path) -> None:
    with VirtualScanner(link), SerialQrScanner(str(link)):
        with pytest.raises(ScannerUnavailableError, match="is busy"):
            SerialQrScanner(str(link))


def test_bad_settings_are_config_errors(link: Path) -> None:
    with pytest.raises(ConfigError):
        SerialQrScanner(str(link), terminator="NUL")
    with pytest.raises(ConfigError):
        SerialQrScanner(str(link), parity="X")  # type: ignore[arg-type]


def test_close_from_another_thread_unblocks_a_reader(link: Path) -> None:
    with VirtualScanner(link):
        scanner = SerialQrScanner(str(link))
        result: list[object] = []
        started = threading.Event()

        def reader() -> None:
            started.set()
            result.append(scanner.read(Deadline.never()))

        thread = threading.Thread(target=reader)
        thread.start()
        started.wait()
        time.sleep(0.2)  # let it block inside select()
        began = time.monotonic()
        scanner.close()
        thread.join(timeout=5)
        assert not thread.is_alive()
        assert time.monotonic() - began < 2.0
        assert result == [None]
        assert scanner.state is ScannerState.CLOSED


def test_close_unblocks_iteration_while_the_scanner_is_unplugged(link: Path) -> None:
    device = VirtualScanner(link)
    scanner = SerialQrScanner(str(link), reconnect_interval=30)
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.extend(c.text for c in scanner))
    thread.start()
    device.scan(CODE_A)
    device.drain()
    time.sleep(0.3)
    device.unplug()
    time.sleep(0.3)  # now waiting out a 30 s reconnect interval
    scanner.close()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert seen == [CODE_A]


def test_repr_of_a_code_does_not_carry_the_whole_code(link: Path) -> None:
    with VirtualScanner(link) as device, SerialQrScanner(str(link), terminator="CR") as scanner:
        device.scan(CODE_B)
        code = scanner.read(Deadline.after(2))
        assert code is not None
        assert CODE_B not in repr(code)
        assert f"[{len(CODE_B)} chars]" in repr(code)


# --- the line framer on its own: any chunking, bounded memory ------------------------

_line = st.binary(min_size=1, max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(_line, max_size=12),
    terminator=st.sampled_from(list(Terminator)),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=10),
)
def test_framer_output_does_not_depend_on_how_the_stream_is_chunked(
    lines: list[bytes], terminator: Terminator, cuts: list[int]
) -> None:
    _, frames, framer = _feed_cut(lines, terminator, cuts)
    assert [f.data for f in frames] == lines
    assert framer.pending == 0


def _feed_cut(lines: list[bytes], terminator: Terminator,
              cuts: list[int]) -> tuple[bytes, list[Frame], LineFramer]:
    """``lines`` ended by ``terminator``, fed to a framer (max 64) cut at ``cuts``: the
    stream, the frames and the framer."""
    end = {"CR": b"\r", "LF": b"\n", "CRLF": b"\r\n", "auto": b"\r\n"}[terminator.value]
    stream = b"".join(line + end for line in lines)
    framer = LineFramer(terminator, max_length=64)
    out: list[Frame] = []
    previous = 0
    for cut in [*sorted({min(c, len(stream)) for c in cuts}), len(stream)]:
        out += framer.feed(stream[previous:cut])
        previous = cut
    return stream, out, framer


@settings(max_examples=100, deadline=None)
@given(chunks=st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=30))
def test_framer_never_holds_more_than_max_length(chunks: list[bytes]) -> None:
    framer = LineFramer(Terminator.AUTO, max_length=128)
    for chunk in chunks:
        frames = framer.feed(chunk)
        assert framer.pending <= 128
        assert all(len(f.data) <= 128 for f in frames)


# --- review: resynchronisation, stale partial lines, counting what is dropped ---------


def test_framer_resyncs_on_a_crlf_split_across_reads_after_an_oversized_line() -> None:
    # A flood without terminator ends with CRLF whose CR closes one read and whose LF
    # opens the next: the line after it is a good code and must come out.
    framer = LineFramer(Terminator.CRLF, max_length=16)
    assert framer.feed(b"X" * 40 + b"\r") == [Frame(oversized=True)]
    assert framer.feed(b"\ngood\r\n") == [Frame(data=b"good")]
    # the same while already skipping (the flood was cut over several reads)
    framer = LineFramer(Terminator.CRLF, max_length=16)
    assert framer.feed(b"Y" * 40) == [Frame(oversized=True)]
    assert framer.feed(b"Y" * 40 + b"\r") == []
    assert framer.feed(b"\ngood\r\n") == [Frame(data=b"good")]
    assert framer.pending == 0


# A line of exactly max_length bytes is left out: in CRLF mode a CR held back at the end
# of a read takes one byte of room (the scanner gives the framer that byte).
_long_or_short = st.binary(min_size=1, max_size=100).filter(
    lambda b: b"\r" not in b and b"\n" not in b and len(b) != 64
)


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(_long_or_short, max_size=10),
    terminator=st.sampled_from(list(Terminator)),
    cuts=st.lists(st.integers(min_value=0, max_value=1200), max_size=12),
)
def test_framer_drops_oversized_lines_the_same_however_the_stream_is_chunked(
    lines: list[bytes], terminator: Terminator, cuts: list[int]
) -> None:
    stream, out, framer = _feed_cut(lines, terminator, cuts)
    expected = [Frame(data=line) if len(line) < 64 else Frame(oversized=True) for line in lines]
    assert out == expected
    assert framer.pending == 0
    # byte by byte: every CRLF is split across two reads
    framer = LineFramer(terminator, max_length=64)
    assert [f for i in range(len(stream)) for f in framer.feed(stream[i : i + 1])] == expected


def test_a_partial_line_left_by_a_silent_scanner_is_not_glued_to_the_next_code(
    link: Path,
) -> None:
    # Noise or half a code, then silence: whatever comes next is a new read. Gluing the
    # fragment to it would pass garbage on and lose the good code.
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", line_timeout=0.3
    ) as scanner:
        device.send_raw(b"half-a-co")
        device.drain()
        assert scanner.read(Deadline.after(0.8)) is None
        assert scanner.counters().oversized == 1  # "no terminator in time"
        device.scan(CODE_A)
        assert _read_all(scanner, 0.5) == [CODE_A]


def test_a_code_sent_slowly_byte_by_byte_within_the_line_timeout_is_read(link: Path) -> None:
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", line_timeout=0.5
    ) as scanner:
        for i in range(0, len(CODE_A), 8):
            device.send_raw(CODE_A[i : i + 8].encode())
            device.drain()
            assert scanner.read(Deadline.after(0.1)) is None
        device.send_raw(b"\r")
        assert _read_all(scanner, 0.5) == [CODE_A]
        assert scanner.counters().oversized == 0


def test_a_slow_caller_does_not_make_a_complete_code_look_stale(link: Path) -> None:
    # The gap is measured on the wire (reads that found nothing), not between calls of
    # read(): a caller busy for longer than line_timeout must not lose a code that
    # arrived in the meantime.
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", line_timeout=0.2
    ) as scanner:
        device.send_raw(CODE_A[:20].encode())
        device.drain()
        assert scanner.read(Deadline.after(0.05)) is None  # reads the first half
        device.send_raw(CODE_A[20:].encode() + b"\r")
        device.drain()
        time.sleep(0.5)  # the caller is busy elsewhere
        assert _read_all(scanner, 0.5) == [CODE_A]


def test_half_a_code_forgotten_at_unplug_is_counted(link: Path) -> None:
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", reconnect_interval=0.05
    ) as scanner:
        device.send_raw(b"half-a-co")
        device.drain()
        assert scanner.read(Deadline.after(0.2)) is None
        device.unplug()
        assert scanner.read(Deadline.after(0.3)) is None
        assert scanner.state is ScannerState.LOST
        assert scanner.counters().oversized == 1
        assert scanner.counters().discarded == 1


def test_an_oversized_flood_ending_in_a_split_crlf_does_not_eat_the_next_code(
    link: Path,
) -> None:
    with VirtualScanner(link, terminator="CRLF") as device, SerialQrScanner(
        str(link), terminator="CRLF", max_length=512
    ) as scanner:
        device.send_raw(b"B" * 5000 + b"\r")
        device.drain()
        assert scanner.read(Deadline.after(0.3)) is None  # the reader has taken it all
        device.send_raw(b"\n")
        device.scan(CODE_A)
        assert _read_all(scanner, 0.5) == [CODE_A]
        assert scanner.counters().oversized == 1


def test_after_an_unterminated_flood_and_silence_the_next_code_is_read(link: Path) -> None:
    # A scanner spewing bytes without any terminator, then quiet: the flood is counted
    # once and the next code is a new line, not the "end" of the flood.
    with VirtualScanner(link) as device, SerialQrScanner(
        str(link), terminator="CR", max_length=512, line_timeout=0.3
    ) as scanner:
        flooded = threading.Event()
        swallowed: list[object] = []

        def pump() -> None:  # reads while the flood is written (a pty holds little)
            while not flooded.is_set():
                swallowed.append(scanner.read(Deadline.after(0.05)))

        reader = threading.Thread(target=pump)
        reader.start()
        device.send_raw(b"B" * 100_000)
        device.drain()
        flooded.set()
        reader.join(timeout=5)
        assert set(swallowed) == {None}
        assert scanner.read(Deadline.after(0.8)) is None  # the rest, then silence
        device.scan(CODE_A)
        assert _read_all(scanner, 0.5) == [CODE_A]
        assert scanner.counters().oversized == 1
        assert scanner.counters().accepted == 1


@pytest.mark.parametrize("seconds", ["nan", "-1"])
def test_sscard_scan_refuses_a_time_limit_that_is_not_a_number_of_seconds(
    link: Path, seconds: str
) -> None:
    # "--seconds nan" compared false with everything: the loop never ended and read
    # with a zero timeout, spinning a core for ever.
    with VirtualScanner(link):
        done = subprocess.run(
            [sys.executable, "-m", "sscard_terminal.cli.main", "scan", "--port", str(link),
             "--seconds", seconds],
            capture_output=True, text=True, timeout=20, check=False,
        )
    assert done.returncode == ExitCode.CONFIG_ERROR, done.stderr
    assert "--seconds" in done.stderr


def test_a_listener_may_close_the_scanner_it_is_told_about(link: Path) -> None:
    # "Stop when the scanner is lost" is a natural listener; it runs in the reading
    # thread, inside read(), and close() there must not deadlock that thread.
    events: list[str] = []
    scanner: SerialQrScanner | None = None

    def on_event(event: ScannerEvent) -> None:
        events.append(event.kind)
        if event.kind == "scanner-lost" and scanner is not None:
            scanner.close()

    device = VirtualScanner(link)
    scanner = SerialQrScanner(str(link), reconnect_interval=0.05, on_event=on_event)
    result: list[object] = []
    reader = threading.Thread(target=lambda: result.append(scanner.read(Deadline.after(5))),
                              daemon=True)
    reader.start()
    time.sleep(0.2)
    device.unplug()
    reader.join(timeout=5)
    assert not reader.is_alive(), "read() deadlocked in close() called by the listener"
    assert result == [None]
    assert scanner.state is ScannerState.CLOSED
    assert events == ["scanner-connected", "scanner-lost", "scanner-closed"]
    scanner.close()  # still idempotent


def test_sscard_scan_without_its_scanner_says_the_device_is_unavailable(link: Path) -> None:
    """A missing or busy scanner exited 16, "an e-code was refused": a script watching
    for refused codes then blamed the holder for an unplugged cable."""
    done = subprocess.run(
        [sys.executable, "-m", "sscard_terminal.cli.main", "scan", "--port", str(link),
         "--seconds", "1"],
        capture_output=True, text=True, timeout=20, check=False,
    )
    assert done.returncode == ExitCode.READER_UNAVAILABLE, done.stderr
    assert "does not exist" in done.stderr
