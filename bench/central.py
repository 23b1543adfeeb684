"""``python -m bench central``: our client against bare httpx, and the simulator's throughput.

1. Latency: one card validation through :class:`CentralClient` (signing, deadline,
   bounded streaming read, strict parsing into a ``CardValidation``) against a bare
   httpx request to the same endpoint (signed the same way, ``.json()`` only), both on a
   warm keep-alive connection, interleaved, in the same run. Ratio = median ours / median
   bare (goal <= 1.3).
2. Throughput: the simulator's sustained validations per second with several client
   threads over keep-alive connections, auth and SQLite included (goal >= 500/s).

Options: ``--rounds N`` (latency samples, 400), ``--seconds S`` (throughput, 3),
``--threads T`` (throughput clients, 8).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central import Channel
from sscard_terminal.central.auth import sign_request
from sscard_terminal.deadline import Deadline

CARD = DEMO_CARDS["normal"]
BODY = {"card_identification_code": CARD.identification_code, "card_number": CARD.card_number,
        "region": CARD.region, "channel": "contactless"}


def _latency(sim: CentralSim, rounds: int) -> tuple[float, float]:
    ours_t: list[float] = []
    bare_t: list[float] = []
    with sim.make_client() as client, httpx.Client(base_url=sim.base_url) as bare:
        def ours() -> None:
            client.validate_card(CARD.identification_code, CARD.card_number, CARD.region,
                                 Channel.CONTACTLESS, Deadline.after(2.0))

        def plain() -> None:
            raw = json.dumps(BODY).encode()
            headers = sign_request(sim.terminal_id, sim.secret, "POST", "/v1/cards/validate",
                                   body=raw)
            headers["Content-Type"] = "application/json"
            answer = bare.post("/v1/cards/validate", content=raw, headers=headers, timeout=2.0)
            answer.raise_for_status()
            answer.json()

        for _ in range(20):  # warm both connections
            ours()
            plain()
        for _ in range(rounds):
            for call, sink in ((ours, ours_t), (plain, bare_t)):
                start = time.perf_counter()
                call()
                sink.append(time.perf_counter() - start)
    return statistics.median(ours_t), statistics.median(bare_t)


def _throughput(sim: CentralSim, seconds: float, threads: int) -> float:
    stop = threading.Event()
    counts = [0] * threads
    errors = [0] * threads

    def worker(index: int) -> None:
        with sim.make_client() as client:
            while not stop.is_set():
                try:
                    client.validate_card(CARD.identification_code, CARD.card_number,
                                         CARD.region, Channel.CONTACT, Deadline.after(2.0))
                    counts[index] += 1
                except Exception:
                    errors[index] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    time.sleep(0.5)  # connections up
    begin, before = time.perf_counter(), sum(counts)
    time.sleep(seconds)
    done, elapsed = sum(counts) - before, time.perf_counter() - begin
    stop.set()
    for thread in pool:
        thread.join()
    if sum(errors):
        print(f"throughput: {sum(errors)} failed validations")
    return done / elapsed


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="python -m bench central")
    parser.add_argument("--rounds", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        sim = CentralSim(Path(folder) / "central.db")
        try:
            ours, bare = _latency(sim, args.rounds)
            rate = _throughput(sim, args.seconds, args.threads)
        finally:
            sim.stop()
    ratio = ours / bare
    print(f"validation latency: ours median {ours * 1000:.2f} ms, bare httpx median "
          f"{bare * 1000:.2f} ms, ratio {ratio:.3f} (goal <= 1.3)")
    print(f"simulator sustained: {rate:.0f} validations/s with {args.threads} client threads "
          f"(goal >= 500/s)")
    return ratio
