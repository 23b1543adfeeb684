"""Tap to decision through the real daemon, against a bare pyscard read of the same card.

Everything is real and runs at once: pcscd with vpcd, the virtual card in a process of
its own (inserted and removed per tap), the central simulator over HTTP, and the
``sscard-terminald`` process with one PC/SC lane. Each tap is measured from the moment
the card is inserted at vpcd to the moment the daemon's event line for its decision is
read from the daemon's output. The baseline, in the same run and before the daemon
starts, is a bare pyscard client doing the same from the same insertion: wait for the
card, connect, replay exactly the APDUs of our read (recorded from our transport),
disconnect. pcscd's insertion latency is in both.

Phases: baseline; online (the central answers; the forwarder drains a backlog of queued
records at the same time); offline (the central goes silent: the first taps wait out the
online budget until the circuit breaker opens; those are reported, not hidden, in p99).

Printed: p50/p99 per phase, APDUs per tap (the pipeline reads the full basic
information whatever the profile: the same number for every shipped profile) against the
full basic read, the daemon's RSS (no camera), its time from start to READY, and last
``ratio = p50 offline tap-to-decision / p50 bare read`` (both from the insertion, as the
issue defines it). Through vpcd pcscd notices an insertion only at its next poll (about
0.4 s here), which is in both sides and flattens that ratio, so the same figures are also
printed from the moment pcscd reported the card present (the daemon's own ``elapsed_ms``
against the bare client's time after its wait returned) with their ratio. Goals (issue
17): ratio <= 1.5; p99 <= 150 ms offline, <= 300 ms online; RSS <= 80 MB; READY <= 1.5 s.

    python -m bench daemon [--taps N] [--backlog N]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smartcard import scard
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.pcscd_runner import VPCD_READER_0, PcscdRunner, wait_card_state
from sscard_hardware_sim.recording import RecordingTransport, Step

from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.drivers.pcsc import PcscTransport
from sscard_terminal.offline_queue.journal import Journal

DAEMON = Path(sys.executable).parent / "sscard-terminald"
EVENTS = "sscard_terminal.daemon.events: "
# Cards that read without a security module: what is measured is the daemon's path, not
# the central HSM's (which a silent central would hold up).
HOLDERS = ("gen2-adult", "gen1-adult")

_CARD_PROCESS = """
import sys
from sscard_hardware_sim.virtual_card import VirtualCard
from sscard_hardware_sim.vpcd_link import VpcdLink
link = None
card = None
for line in sys.stdin:
    command, _, arg = line.strip().partition(" ")
    if command == "prepare":
        card = VirtualCard.from_holder(arg)
        print("prepared", flush=True)
    elif command == "insert":
        link = VpcdLink(card)
        link.insert()
        print("inserted", flush=True)
    elif command == "remove":
        count = link.apdu_count
        link.close()
        link = None
        print(f"removed {count}", flush=True)
"""


class CardProcess:
    """The virtual card in its own process (its link thread must not share our GIL)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", _CARD_PROCESS],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)

    def _say(self, line: str) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip()

    def prepare(self, holder: str) -> None:
        if self._say(f"prepare {holder}") != "prepared":
            raise RuntimeError("the card process did not prepare the card")

    def insert(self) -> float:
        """Insert the prepared card; the moment just before it reaches vpcd."""
        started = time.monotonic()
        if self._say("insert") != "inserted":
            raise RuntimeError("the card process did not insert the card")
        return started

    def remove(self) -> int:
        """Pull the card; the APDUs it answered while inserted."""
        answer = self._say("remove")
        wait_card_state(VPCD_READER_0, False)
        return int(answer.split()[1])

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _bare_read(apdus: list[list[int]]) -> float:
    """What a bare pyscard client does for a tap: wait for the card, connect, read.
    Returns the moment pcscd reported the card present."""
    _, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    try:
        states = [(VPCD_READER_0, scard.SCARD_STATE_UNAWARE)]
        while True:
            _, states = scard.SCardGetStatusChange(ctx, 5000, states)
            if states[0][1] & scard.SCARD_STATE_PRESENT:
                present_at = time.monotonic()
                break
            states = [(name, state & ~scard.SCARD_STATE_CHANGED)
                      for name, state, _atr in states]
        _, card, proto = scard.SCardConnect(ctx, VPCD_READER_0, scard.SCARD_SHARE_SHARED,
                                            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1)
        scard.SCardStatus(card)
        for apdu in apdus:
            result, response = scard.SCardTransmit(card, proto, apdu)
            if result != scard.SCARD_S_SUCCESS or len(response) < 2:
                raise RuntimeError("baseline transmit failed")
        scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
    finally:
        scard.SCardReleaseContext(ctx)
    return present_at


class DaemonUnderTest:
    """sscard-terminald with its events read, each stamped when it arrived."""

    def __init__(self, config: Path, directory: Path, level: str = "INFO") -> None:
        self.notify_path = str(directory / "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.notify.settimeout(0.2)
        self.events: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
        self.lines: list[str] = []
        env = {**os.environ, "NOTIFY_SOCKET": self.notify_path,
               "PYTHONUNBUFFERED": "1"}
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(DAEMON), "--config", str(config),
                                      "--log-level", level], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            at = time.monotonic()
            self.lines.append(line)
            if EVENTS in line:
                self.events.put((at, json.loads(line.split(EVENTS, 1)[1])))

    def wait_ready(self) -> float:
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                message = self.notify.recv(4096).decode()
            except TimeoutError:
                if self.proc.poll() is not None:
                    raise RuntimeError("daemon exited:\n" + "".join(self.lines[-20:])) \
                        from None
                continue
            if "READY=1" in message.split("\n"):
                return time.monotonic() - self.started
        raise RuntimeError("no READY within 30 s:\n" + "".join(self.lines[-20:]))

    def wait_log(self, text: str, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if time.monotonic() > end:
                raise RuntimeError(f"daemon never logged {text!r}")
            time.sleep(0.05)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.notify.close()


def _tap(card: CardProcess, daemon: DaemonUnderTest, holder: str) -> tuple[float, int,
                                                                            dict[str, Any]]:
    card.prepare(holder)
    started = card.insert()
    try:
        at, event = daemon.events.get(timeout=10)
    except queue.Empty:
        raise RuntimeError("no decision within 10 s; the daemon said:\n"
                           + "".join(daemon.lines[-15:])) from None
    apdus = card.remove()
    return at - started, apdus, event


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _line(name: str, values: list[float]) -> str:
    return (f"{name:<22} p50={statistics.median(values) * 1000:7.1f} ms  "
            f"p99={_p(values, 0.99) * 1000:7.1f} ms  n={len(values)}")


def _config(directory: Path, sim: CentralSim) -> tuple[Path, Path, bytes]:
    state = directory / "state"
    state.mkdir()
    key = secrets.token_bytes(32)
    key_file = directory / "journal.key"
    key_file.write_bytes(key)
    key_file.chmod(0o600)
    secret = directory / "secret"
    secret.write_text(sim.secret)
    config = directory / "terminal.toml"
    config.write_text(f"""
[terminal]
id = "{sim.terminal_id}"
profile = "bus-validator"
state_directory = "{state}"

[central]
url = "{sim.base_url}"
secret_file = "{secret}"
public_key = "{sim.central_public_key}"

[journal]
key_file = "{key_file}"

[lanes.door]
reader = "{VPCD_READER_0}"
""")
    return config, state, key


def _backlog(state: Path, terminal_id: str, key: bytes, count: int) -> None:
    """Records queued by an earlier run, for the forwarder to drain during the taps."""
    with Journal.open(state / "journal.db", terminal_id=terminal_id, keys=key) as journal:
        for n in range(count):
            journal.enqueue("card_tap", {
                "transaction_id": secrets.token_hex(16), "lane": "door", "channel": "contact",
                "outcome": "accept", "reason": "accepted", "online": False,
                "card_ref": f"s{n:07x}", "fare_percent": 100, "concession": None,
                "replayed": False, "authenticated_by": None, "ecode_reason": None}, None)


@contextlib.contextmanager
def _everything(directory: Path) -> Iterator[tuple[CentralSim, CardProcess]]:
    with PcscdRunner():
        sim = CentralSim(directory / "central.db")
        card = CardProcess()
        try:
            yield sim, card
        finally:
            card.close()
            sim.stop()


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="python -m bench daemon")
    parser.add_argument("--taps", type=int, default=30, help="measured taps per phase")
    parser.add_argument("--backlog", type=int, default=2000,
                        help="queued records the forwarder drains during the online phase")
    parser.add_argument("--debug", action="store_true", help="the daemon logs at DEBUG")
    parser.add_argument("--daemon-log", type=Path, metavar="FILE",
                        help="write the daemon's log (stderr) here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sscard-bench-daemon-") as tmp:
        directory = Path(tmp)
        with _everything(directory) as (sim, card):
            # Our read's APDUs, recorded once, for the baseline to replay.
            card.prepare("gen2-adult")
            card.insert()
            wait_card_state(VPCD_READER_0, True)
            steps: list[Step] = []
            with RecordingTransport(PcscTransport(VPCD_READER_0), steps) as recorder:
                read_card_info(recorder)
            full_read = card.remove()
            apdus = [list(apdu) for _, apdu in steps]

            bare: list[float] = []
            bare_present: list[float] = []
            for n in range(args.taps + 3):
                card.prepare("gen2-adult")
                started = card.insert()
                present_at = _bare_read(apdus)
                done = time.monotonic()
                if n >= 3:                                  # warm-up
                    bare.append(done - started)
                    bare_present.append(done - present_at)
                card.remove()

            config, state, key = _config(directory, sim)
            _backlog(state, sim.terminal_id, key, args.backlog)
            daemon = DaemonUnderTest(config, directory,
                                     level="DEBUG" if args.debug else "INFO")
            try:
                ready_s = daemon.wait_ready()
                daemon.wait_log("denylist at version")
                online: list[float] = []
                online_present: list[float] = []
                per_tap: list[int] = []
                for n in range(args.taps + 3):
                    elapsed, count, event = _tap(card, daemon, HOLDERS[n % len(HOLDERS)])
                    if not event.get("online"):
                        raise RuntimeError(f"online phase decided offline: {event}")
                    if n >= 3:
                        online.append(elapsed)
                        online_present.append(float(event["elapsed_ms"]) / 1000)
                        per_tap.append(count)
                with Journal.open(state / "journal.db", terminal_id=sim.terminal_id,
                                  keys=key) as journal:
                    still_queued = journal.status().queued
                sim.set_faults(mode="timeout")              # down, and silent
                offline: list[float] = []
                offline_present: list[float] = []
                opening: list[float] = []
                for n in range(args.taps + 3):
                    elapsed, _count, event = _tap(card, daemon, HOLDERS[n % len(HOLDERS)])
                    if event.get("online"):
                        raise RuntimeError(f"offline phase decided online: {event}")
                    (opening if n < 3 else offline).append(elapsed)
                    if n >= 3:
                        offline_present.append(float(event["elapsed_ms"]) / 1000)
                rss = daemon.rss_mb()
            finally:
                daemon.stop()
                if args.daemon_log is not None:
                    args.daemon_log.write_text("".join(daemon.lines))
    ratio = statistics.median(offline) / statistics.median(bare)
    print(f"reader={VPCD_READER_0} profile=bus-validator taps/phase={args.taps}")
    print("from the insertion at vpcd (pcscd's own polling, ~0.4 s here, is in every figure):")
    print(_line("bare pyscard read", bare))
    print(_line("daemon online", online))
    print(_line("daemon offline", offline))
    print("from pcscd reporting the card present (the daemon's own elapsed_ms):")
    print(_line("bare pyscard read", bare_present))
    print(_line("daemon online", online_present))
    print(_line("daemon offline", offline_present))
    print(f"p50 offline / p50 bare from card present: "
          f"{statistics.median(offline_present) / statistics.median(bare_present):.2f}")
    print(f"{'breaker opening':<22} " + " ".join(f"{v * 1000:.0f}" for v in opening)
          + " ms (the taps that waited out the online budget before the breaker opened)")
    print(f"apdus per tap: {statistics.median(per_tap):.0f} for every shipped profile "
          f"(the pipeline reads the full basic information); full basic read: {full_read}")
    print(f"forwarder backlog: {args.backlog} queued at start, {still_queued} left after "
          f"the online phase")
    print(f"daemon RSS: {rss:.1f} MB (no camera)   start to READY: {ready_s:.2f} s")
    print(f"goals: ratio <= 1.5; p99 <= 150 ms offline ({_p(offline, 0.99) * 1000:.0f} from "
          f"insertion, {_p(offline_present, 0.99) * 1000:.0f} from present), <= 300 ms online "
          f"({_p(online, 0.99) * 1000:.0f}, {_p(online_present, 0.99) * 1000:.0f}); "
          f"RSS <= 80 MB; READY <= 1.5 s")
    return ratio
