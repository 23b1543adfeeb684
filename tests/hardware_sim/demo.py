"""The main job on the simulators: a bus validator's pipeline, end to end.

``scripts/demo`` runs this module. It starts what a terminal talks to, the central
simulator (a real HTTP server on loopback) and the machine's pcscd with vpcd and our
virtual cards behind it (user card in slot 0, PSAM in slot 1), then composes the parts the
way the daemon will: each tap is read through the real PC/SC stack (generation 3 cards
authenticated by the PSAM), decided by the one decision pipeline, journaled durably and
forwarded; e-codes are typed by a virtual serial scanner on a real pseudo-terminal,
verified, and go through the same pipeline (卡码同权). Midway the central goes down
(offline decisions from the local denylist and rules) and comes back (the journal drains,
exactly once).

Output is masked like every other output of the project. ``--json`` prints one JSON
object per event instead of the table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sscard_terminal.central.client import TerminalConfig
from sscard_terminal.central.models import CardStatus
from sscard_terminal.deadline import Deadline
from sscard_terminal.drivers.serial_qr import SerialQrScanner
from sscard_terminal.errors import SscardError
from sscard_terminal.offline_queue.forwarder import Forwarder
from sscard_terminal.offline_queue.verify import verify_journal
from sscard_terminal.profiles import load_profile
from sscard_terminal.terminal.presentation import Presentation
from sscard_terminal.terminal.root import TerminalRoot
from sscard_terminal.terminal.settings import KeySource, TerminalSettings

from . import central_lifecycle
from .central_ecodes import issue_code
from .central_harness import CentralSim
from .central_store import DEMO_CARDS, virtual_cards
from .pcscd_runner import VPCD_READER_0, VPCD_READER_1, PcscdRunner, wait_card_state
from .virtual_card import VirtualCard
from .virtual_psam import VirtualPsam
from .virtual_scanner import VirtualScanner
from .vpcd_link import VpcdLink


class Terminal:
    """The demo's validator: the product's composition root plus the demo's output.

    Nothing here wires a part by hand: the reader, the PSAM chain, the central client,
    the journal, the denylist, the verifier and the engine all come from
    :class:`~sscard_terminal.terminal.root.TerminalRoot`, and each tap or scan goes
    through its one presentation pipeline.
    """

    def __init__(self, sim: CentralSim, workdir: Path, as_json: bool) -> None:
        self.sim = sim
        self.as_json = as_json
        key_file = workdir / "journal.key"
        if not key_file.exists():        # kept with --workdir: the journal stays readable
            key_file.write_bytes(secrets.token_bytes(32))
            key_file.chmod(0o600)
        self.root = TerminalRoot(TerminalSettings(
            terminal_id=sim.terminal_id,
            profile=load_profile("bus-validator"),
            central=TerminalConfig(sim.base_url, sim.terminal_id, sim.secret,
                                   central_public_key=sim.central_public_key),
            card_reader=VPCD_READER_0,
            lane_readers=(VPCD_READER_0,),
            psam_reader=VPCD_READER_1,
            state_dir=workdir,
            journal_key=KeySource(file=key_file),
        ))
        self.presenter = self.root.presenter()
        self.journal = self.root.journal()
        self.denylist = self.root.denylist()
        client = self.root.central()
        assert client is not None
        self.client = client
        self.forwarder = Forwarder(self.journal, client, batch_size=100)
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        self.root.close()

    # --- one presentation ---------------------------------------------------------------

    def tap(self, holder: str, note: str = "") -> None:
        """Insert a virtual card, read it through pcscd, decide, journal, remove it."""
        link = VpcdLink(VirtualCard.from_holder(holder), slot=0)
        link.insert()
        try:
            wait_card_state(VPCD_READER_0, True)
            arrived = time.monotonic()
            try:
                transport = self.root.open_card(Deadline.after(2.0))
            except SscardError as exc:
                self._show("tap", holder, note, None, message=str(exc))
                return
            with transport:
                presentation = self.presenter.present_card(transport, arrived_at=arrived,
                                                           lane="slot0")
            self._show("tap", holder, note, presentation)
        finally:
            link.close()
            wait_card_state(VPCD_READER_0, False)

    def scan(self, scanner: VirtualScanner, reader: SerialQrScanner, code: str,
             label: str, note: str = "") -> None:
        """Type a code on the virtual scanner; read, verify and decide it."""
        scanner.scan(code)
        scanned = reader.read(Deadline.after(5.0))
        if scanned is None:
            self._show("scan", label, note, None, message="the scanner delivered nothing")
            return
        presentation = self.presenter.present_code(scanned.text,
                                                   arrived_at=scanned.at_monotonic,
                                                   lane="scanner")
        self._show("scan", label, note, presentation)

    # --- output ----------------------------------------------------------------------------

    def _show(self, what: str, label: str, note: str, presentation: Presentation | None,
              *, message: str = "") -> None:
        event: dict[str, Any] = {"event": what, "credential": label, "note": note}
        if presentation is not None:
            event.update(presentation.event())
            if event["holder"] and event["authenticated_by"]:
                event["holder"] += f" {event['authenticated_by']}"
        else:
            event.update(outcome="refuse", reason="no_presentation", message=message)
        self.events.append(event)
        if self.as_json:
            print(json.dumps(event, ensure_ascii=False), flush=True)
            return
        # "local": decided here without the central's word (a replayed code, a refusal
        # before the central was asked, or the central down); never a claim that it is down.
        mode = "online " if event.get("online") else "local  "
        fare = (f"fare {event['fare_percent']:3d}%" if event["outcome"] == "accept"
                and event.get("fare_percent") is not None else " " * 9)
        elapsed = f"{event['elapsed_ms']:6.1f} ms" if "elapsed_ms" in event else " " * 9
        detail = event.get("holder") or event.get("message") or ""
        if event.get("ecode_reason") and event["ecode_reason"] != "accepted":
            detail += f" ({event['ecode_reason']})"
        print(f"  {what:4} {label:15} {event['outcome'].upper():7} {event['reason']:24} "
              f"{fare} {mode} {elapsed}  {detail.strip()}"
              f"{'  <- ' + note if note else ''}", flush=True)


def _drop_if_empty(path: Path) -> None:
    """pcscd is quiet when all goes well: an empty log kept with --workdir only puzzles."""
    if path.exists() and path.stat().st_size == 0:
        path.unlink()


def say(text: str, as_json: bool) -> None:
    if not as_json:
        print(f"\n== {text}", flush=True)


@contextmanager
def central(workdir: Path) -> Iterator[CentralSim]:
    sim = CentralSim(workdir / "central.db")
    try:
        yield sim
    finally:
        sim.stop()


def run(as_json: bool, workdir: Path, *, start_pcscd: bool = True) -> int:
    logging.basicConfig(level=logging.WARNING, format="  log %(levelname)s: %(message)s")
    with ExitStack() as stack:
        say("starting the central simulator (HTTP on 127.0.0.1) and pcscd with vpcd", as_json)
        sim = stack.enter_context(central(workdir))
        if start_pcscd:
            log = workdir / "pcscd.log"
            stack.callback(_drop_if_empty, log)
            stack.enter_context(PcscdRunner(log_path=log))
        psam = stack.enter_context(VpcdLink(VirtualPsam(), slot=1))
        psam.insert()
        wait_card_state(VPCD_READER_1, True)
        terminal = Terminal(sim, workdir, as_json)
        stack.callback(terminal.close)
        client = terminal.client
        terminal.denylist.refresh(client, deadline=Deadline.after(3.0))
        chain = terminal.root.module_chain()
        module = chain.name if chain is not None else "none"
        if not as_json:
            print(f"  central {sim.base_url}, terminal {sim.terminal_id}, profile "
                  f"{terminal.presenter.profile.name}, denylist v{terminal.denylist.version}, "
                  f"security module {module}")

        say("card taps through pcscd (slot 0), generation 3 cards authenticated by the PSAM "
            "(slot 1)", as_json)
        for holder in ("gen3-adult", "gen3-3des", "gen3-child", "other-province",
                       "gen2-adult", "gen1-adult", "expired"):
            terminal.tap(holder)
        terminal.tap("gen3-cloned", "keys not derived from the master keys: forged")
        terminal.tap("bank-only", "no social security application")
        terminal.tap("gen2-adult", "same card again at once: anti-passback")

        say("the central changes a card's status; card and e-code share it (卡码同权)", as_json)
        cards = {c.key: c for c in virtual_cards()}
        today = dt.date.today()
        central_lifecycle.report_temporary_loss(sim.store, cards["gen3-child"].card_number, today)
        terminal.tap("gen3-child", "temporary loss reported")
        with ExitStack() as scan_stack:
            link = workdir / "by-id-scanner"
            scanner = scan_stack.enter_context(VirtualScanner(link))
            reader = SerialQrScanner(str(link), dedup_window=0.5)
            scan_stack.callback(reader.close)
            code = issue_code(sim.store, DEMO_CARDS["normal"].card_number)
            terminal.scan(scanner, reader, code, "demo senior", "e-code, senior concession")
            time.sleep(0.6)  # past the scanner's duplicate window: a real second scan
            terminal.scan(scanner, reader, code, "demo senior", "the same code again: replay")
            terminal.scan(scanner, reader,
                          issue_code(sim.store, cards["gen3-child"].card_number),
                          "gen3-child", "e-code of the card reported lost")
            central_lifecycle.set_status(sim.store, cards["other-province"].card_number,
                                         CardStatus.CANCELLED, today)
            terminal.scan(scanner, reader,
                          issue_code(sim.store, cards["other-province"].card_number),
                          "other-province", "card cancelled: its e-code is void too")
            terminal.scan(scanner, reader, "SC1:NOT*A*CODE", "garbage", "garbled QR")

            say("the central goes down: decisions come from the denylist and rules", as_json)
            terminal.denylist.refresh(client, deadline=Deadline.after(3.0))
            sim.set_faults(mode="reset")
            terminal.tap("gen3-rare-name", "rare-character name, decided offline")
            terminal.tap("gen3-child", "lost card, on the local denylist")
            terminal.tap("other-province", "cancelled card, on the local denylist")
            terminal.scan(scanner, reader,
                          issue_code(sim.store, DEMO_CARDS["disabled"].card_number),
                          "demo disabled", "signed e-code verified offline")
            queued = terminal.journal.status().queued
            say(f"{queued} transactions wait in the journal; forwarding while the central is "
                "down fails and backs off", as_json)
            result = terminal.forwarder.drain(Deadline.after(1.0))
            if as_json:
                print(json.dumps({"event": "drain", "central": "down",
                                  "forwarded": result.forwarded,
                                  "remaining": result.remaining}), flush=True)
            else:
                print(f"  drain while down: {result.forwarded} forwarded, {result.remaining} "
                      "still queued")

        say("the central is back: the journal drains, each transaction exactly once", as_json)
        sim.set_faults(mode="none")
        result = terminal.forwarder.drain(Deadline.after(30.0))
        again = terminal.forwarder.drain(Deadline.after(5.0))
        at_central = sim.store.transaction_count(sim.terminal_id)
        journaled = sum(1 for _ in terminal.journal.records())
        if not as_json:
            print(f"  drained {result.forwarded}, then {again.forwarded} more on a second "
                  f"drain; {result.remaining + again.remaining} left")
            print(f"  journaled {journaled}, at the central {at_central}, "
                  f"chain verifies: {verify_journal(terminal.journal).ok}")
        ok = at_central == journaled
        if as_json:
            print(json.dumps({"event": "summary", "drained": result.forwarded + again.forwarded,
                              "remaining": result.remaining + again.remaining,
                              "journaled": journaled, "at_central": at_central,
                              "chain_verifies": verify_journal(terminal.journal).ok,
                              "ok": ok}), flush=True)
        if not as_json:
            print("\n" + ("demo finished: every journaled transaction reached the central once"
                          if ok else "demo FAILED: journal and central disagree"))
        return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sscard_hardware_sim.demo",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="one JSON object per event")
    parser.add_argument("--workdir", type=Path, help="keep databases and logs here")
    parser.add_argument("--use-running-pcscd", action="store_true",
                        help="do not start pcscd: one with vpcd is already running (tests)")
    args = parser.parse_args(argv)
    if os.geteuid() != 0 and not args.use_running_pcscd:
        print("the demo starts the machine's pcscd: run it as root (scripts/demo)",
              file=sys.stderr)
        return 2
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        return run(args.json, args.workdir, start_pcscd=not args.use_running_pcscd)
    with tempfile.TemporaryDirectory(prefix="sscard-demo-") as tmp:
        return run(args.json, Path(tmp), start_pcscd=not args.use_running_pcscd)


if __name__ == "__main__":
    sys.exit(main())
