"""``python -m bench decision``: what the decision pipeline adds to the central's answer,
and how fast a validator decides offline.

1. Online: a card tap decided through :class:`DecisionEngine` (budget, online call, rules,
   anti-passback bookkeeping) against the bare ``CentralClient.validate_card`` of the
   same card on the same warm connection to the simulator, interleaved, in the same run.
   Ratio = median engine / median bare (the engine should add well under 10 %).
2. Offline: decisions per second and p50/p99 latency with a denylist of ``--entries``
   card references (central absent), beside a bare dict lookup of the same references:
   the physical floor of an O(1) denylist check.

Options: ``--rounds N`` (online samples, 300), ``--entries N`` (denylist size, 100000),
``--offline N`` (offline decisions, 20000).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.models import CardStatus, Channel, DenylistEntry, DenylistUpdate
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import DecisionEngine, Denylist, PresentedCredential
from sscard_terminal.decision.denylist_format import ref_of
from sscard_terminal.decision.policy import Authentication
from sscard_terminal.profiles import load_profile

CARD = DEMO_CARDS["normal"]


def _credential(code: str, number: str) -> PresentedCredential:
    return PresentedCredential.from_card(Channel.CONTACTLESS, card_identification_code=code,
                                         card_number=number, chip_expiry=date(2035, 1, 1),
                                         authentication=Authentication.PSAM, generation=3)


def _online(sim: CentralSim, denylist: Denylist, rounds: int) -> float:
    # anti-passback off: the same card is decided again and again on purpose
    profile = replace(load_profile("bus-validator"), anti_passback_seconds=0,
                      anti_passback_by_type={}, torn_window_seconds=0)
    credential = _credential(CARD.identification_code, CARD.card_number)
    with sim.make_client() as client:
        engine = DecisionEngine(profile, central=client, denylist=denylist)
        ours: list[float] = []
        bare: list[float] = []
        for _ in range(20):                                    # warm the connection
            client.validate_card(CARD.identification_code, CARD.card_number, CARD.region,
                                 Channel.CONTACTLESS, Deadline.after(2.0))
        for _ in range(rounds):
            start = time.perf_counter()
            decision = engine.decide(credential, deadline=Deadline.after(2.0))
            ours.append(time.perf_counter() - start)
            assert decision.online and decision.accepted, decision
            start = time.perf_counter()
            client.validate_card(CARD.identification_code, CARD.card_number, CARD.region,
                                 Channel.CONTACTLESS, Deadline.after(2.0))
            bare.append(time.perf_counter() - start)
    ours_ms, bare_ms = statistics.median(ours) * 1000, statistics.median(bare) * 1000
    print(f"online decision: engine median {ours_ms:.2f} ms, bare validate_card "
          f"{bare_ms:.2f} ms ({rounds} rounds each)")
    return ours_ms / bare_ms


def _offline(denylist: Denylist, entries: int, count: int) -> None:
    refs = [f"{n:032X}" for n in range(count)]
    credentials = [_credential("330300D156000005" + ref[-16:], "A0000000X") for ref in refs]
    profile = replace(load_profile("bus-validator"), max_offline_decisions=10**9)
    engine = DecisionEngine(profile, central=None, denylist=denylist)
    times: list[float] = []
    for credential in credentials:
        start = time.perf_counter()
        engine.decide(credential, deadline=Deadline.after(1.0))
        times.append(time.perf_counter() - start)
    table = {f"ref{n}": "formal_loss" for n in range(entries)}
    keys = [c.card_ref for c in credentials]
    start = time.perf_counter()
    for key in keys:
        table.get(key)
    bare = (time.perf_counter() - start) / count
    times.sort()
    print(f"offline decision ({entries} denylist entries): p50 {times[len(times) // 2] * 1e6:.0f} "
          f"us, p99 {times[int(len(times) * 0.99)] * 1e6:.0f} us, "
          f"{count / sum(times):.0f} decisions/s; bare dict lookup {bare * 1e9:.0f} ns")


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="python -m bench decision")
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--offline", type=int, default=20_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        with Denylist.open(Path(tmp) / "denylist.db") as denylist:
            denylist.install(DenylistUpdate(
                version=1, since_version=0, full=True, removed=(),
                # Card references as the central writes them (the canonical form the
                # base file keys on), not made-up text.
                added=tuple(DenylistEntry(ref_of(n.to_bytes(15, "big")), CardStatus.FORMAL_LOSS)
                            for n in range(1, args.entries + 1))))
            _offline(denylist, args.entries, args.offline)
            sim = CentralSim(Path(tmp) / "central.db")
            try:
                return _online(sim, denylist, args.rounds)
            finally:
                sim.stop()
