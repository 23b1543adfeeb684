"""Subprocesses that the denylist crash tests SIGKILL (tests/test_denylist_crash.py).

``python -m tests.denylist_workers snapshot PATH VERSION N``: open the list, print
``ready``, install the snapshot ``snapshot_keys(VERSION, N)``, print ``done``, idle.
``python -m tests.denylist_workers deltas PATH``: apply ``delta(v)`` for v = 2, 3, ...
with small compactions in the background, printing ``installed v`` after each.
``python -m tests.denylist_workers open PATH``: open (a schema-1 file: the upgrade), print
``opened``, idle.
``python -m tests.denylist_workers refresh PATH URL TERMINAL SECRET KEY``: open, print
``ready``, refresh from the central (a chunked snapshot), print ``done``, idle.

The contents are functions of the version, so the test rebuilds what each version holds.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

from sscard_terminal.central.client import CentralClient
from sscard_terminal.central.models import CardStatus, DenylistEntry, DenylistUpdate
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Denylist
from sscard_terminal.decision.denylist_format import record, ref_of

DELTA_BASE = 20_000
"""Entries of the snapshot (version 1) the delta worker starts from."""


def snapshot_keys(version: int, n: int) -> list[bytes]:
    rng = random.Random(f"snapshot-{version}")
    return sorted({rng.randbytes(15) for _ in range(n)})


def snapshot_pieces(version: int, n: int) -> tuple[list[bytes], int]:
    keys = snapshot_keys(version, n)
    pieces = [b"".join(record(k, CardStatus.FORMAL_LOSS, 0) for k in keys[i:i + 16384])
              for i in range(0, len(keys), 16384)]
    return pieces, len(keys)


def delta(version: int, model: dict[str, CardStatus]) -> DenylistUpdate:
    """Delta ``version - 1 -> version`` on top of ``model`` (which it updates)."""
    rng = random.Random(f"delta-{version}")
    listed = sorted(model)
    removed = tuple(rng.sample(listed, min(100, len(listed))))
    added = tuple(DenylistEntry(ref_of(rng.randbytes(15)), CardStatus.SUSPENDED)
                  for _ in range(150))
    changed = tuple(DenylistEntry(ref, CardStatus.CANCELLED)
                    for ref in rng.sample(listed, min(50, len(listed))) if ref not in removed)
    for ref in removed:
        del model[ref]
    for entry in added + changed:
        model[entry.card_ref] = entry.status
    return DenylistUpdate(version=version, since_version=version - 1, full=False,
                          added=added + changed, removed=removed)


def delta_model(upto: int) -> dict[str, CardStatus]:
    """What the list holds at version ``upto`` of the delta worker's sequence."""
    return delta_history(upto)[0]


def delta_history(upto: int) -> tuple[dict[str, CardStatus], set[str]]:
    """The list at version ``upto``, and every card listed by any version up to the
    next one (so also those removed before, and those only the next delta adds)."""
    model = {ref_of(k): CardStatus.FORMAL_LOSS for k in snapshot_keys(1, DELTA_BASE)}
    ever = set(model)
    at_upto = dict(model)
    for version in range(2, upto + 2):
        delta(version, model)
        ever.update(model)
        if version == upto:
            at_upto = dict(model)
    return at_upto, ever


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> None:
    command, path = argv[0], Path(argv[1])
    if command == "snapshot":
        version, n = int(argv[2]), int(argv[3])
        pieces, count = snapshot_pieces(version, n)
        with Denylist.open(path) as denylist:
            _say("ready")
            denylist.install_snapshot(version, pieces, count)
            _say("done")
            time.sleep(60)
    elif command == "deltas":
        with Denylist.open(path, compact_at=300) as denylist:
            model = delta_model(denylist.version)
            _say("ready")
            version = denylist.version
            while True:
                version += 1
                denylist.install(delta(version, model))
                _say(f"installed {version}")
    elif command == "refresh":
        base_url, terminal, secret, key = argv[2:6]
        with CentralClient(base_url, terminal, secret, central_public_key=key) as client, \
                Denylist.open(path) as denylist:
            _say("ready")
            denylist.refresh(client, deadline=Deadline.after(120))
            _say("done")
            time.sleep(60)
    elif command == "open":
        with Denylist.open(path):
            _say("opened")
            time.sleep(60)


if __name__ == "__main__":
    main(sys.argv[1:])
