"""Subprocesses the crash tests kill with SIGKILL: a journal writer and a forwarder.

``python -m tests.journal_workers writer DB KEYHEX TERMINAL COUNT`` enqueues and prints
each record id on stdout only after ``enqueue`` returned (the proof's "returned success").
``python -m tests.journal_workers forwarder DB KEYHEX TERMINAL URL SECRET BATCH`` drains.
"""

from __future__ import annotations

import sys

from sscard_terminal.central.client import CentralClient
from sscard_terminal.deadline import Deadline
from sscard_terminal.offline_queue import Backoff, Forwarder, Journal


def writer(db: str, key_hex: str, terminal: str, count: int) -> None:
    with Journal.open(db, terminal_id=terminal, keys=bytes.fromhex(key_hex)) as journal:
        for i in range(count):
            record = journal.enqueue("card_tap", {"fare_cents": i},
                                     {"name": "王五", "card_number": f"D{i:08d}"})
            sys.stdout.write(record.id + "\n")
            sys.stdout.flush()


def forwarder(db: str, key_hex: str, terminal: str, url: str, secret: str, batch: int) -> None:
    with Journal.open(db, terminal_id=terminal, keys=bytes.fromhex(key_hex)) as journal, \
            CentralClient(url, terminal, secret) as client:
        Forwarder(journal, client, batch_size=batch,
                  backoff=Backoff(base_s=0.01, cap_s=0.1)).drain(Deadline.after(120))
    sys.stdout.write("drained\n")


if __name__ == "__main__":
    role, *rest = sys.argv[1:]
    if role == "writer":
        writer(rest[0], rest[1], rest[2], int(rest[3]))
    else:
        forwarder(rest[0], rest[1], rest[2], rest[3], rest[4], int(rest[5]))
