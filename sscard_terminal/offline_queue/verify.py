"""Verification of the journal's hash chain: is anything deleted, reordered or edited?

Walks the records in sequence order from the chain anchor. Each record must follow its
predecessor (sequence + 1, ``prev_hash`` equal to the predecessor's ``hash``), its own
``hash`` must be the HMAC of what is stored, and an acknowledgement must carry a valid
MAC. The first problem of each record is reported; the walk goes on so a technician sees
the whole extent of the damage.
"""

from __future__ import annotations

from dataclasses import dataclass

from .journal import Journal, ack_mac, record_hash

__all__ = ["ChainProblem", "VerifyReport", "verify_journal"]


@dataclass(frozen=True)
class ChainProblem:
    """One place where the chain does not hold (no personal data in it)."""

    seq: int
    problem: str   # "missing", "reordered", "edited", "ack-edited", "anchor-edited"

    def __str__(self) -> str:
        return f"record {self.seq}: {self.problem}"


@dataclass(frozen=True)
class VerifyReport:
    """What :func:`verify_journal` found."""

    checked: int
    first_seq: int | None
    last_seq: int | None
    problems: tuple[ChainProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_journal(journal: Journal) -> VerifyReport:
    """Check the whole chain of ``journal``; never modifies it."""
    keys = journal.keys
    anchor_seq, expected_prev, anchor_ok = journal.anchor()
    problems: list[ChainProblem] = []
    if not anchor_ok:
        problems.append(ChainProblem(anchor_seq, "anchor-edited"))
    expected_seq = anchor_seq + 1
    checked = 0
    first: int | None = None
    last: int | None = None
    for row in journal.raw_rows():
        (seq, record_id, terminal_id, wall, mono, boot, kind, payload, personal,
         prev_hash, hash_, acked_at, outcome, reason, mac) = row
        seq = int(seq)
        prev_hash, hash_ = bytes(prev_hash), bytes(hash_)
        checked += 1
        first = seq if first is None else first
        last = seq
        computed = record_hash(keys, prev_hash, seq=seq, record_id=record_id,
                               terminal_id=terminal_id, wall_time=wall, mono_ns=int(mono),
                               boot_id=boot, kind=kind, payload=payload,
                               personal=bytes(personal) if personal else None)
        if computed != hash_:
            problems.append(ChainProblem(seq, "edited"))
        elif seq != expected_seq or prev_hash != expected_prev:
            if seq > expected_seq:
                problems.append(ChainProblem(expected_seq, "missing"
                                             if seq - expected_seq > 0 else "reordered"))
            else:
                problems.append(ChainProblem(seq, "reordered"))
        elif acked_at is not None and (
                mac is None or bytes(mac) != ack_mac(keys, hash_, outcome or "", reason or "",
                                                     acked_at)):
            problems.append(ChainProblem(seq, "ack-edited"))
        expected_seq, expected_prev = seq + 1, hash_
    return VerifyReport(checked, first, last, tuple(problems))
