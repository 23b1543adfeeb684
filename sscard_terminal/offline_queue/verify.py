"""Verification of the journal's hash chain: is anything deleted, reordered or edited?

Walks the records in sequence order from the chain anchor. Each record must follow its
predecessor (sequence + 1, ``prev_hash`` equal to the predecessor's ``hash``), its own
``hash`` must be the HMAC of what is stored, and an acknowledgement must carry a valid
MAC. The first problem of each record is reported; the walk goes on so a technician sees
the whole extent of the damage.
"""

from __future__ import annotations

from dataclasses import dataclass

from .journal import Journal, chain_problem

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
    """Check the whole chain of ``journal`` as of one moment; never modifies it."""
    keys = journal.keys
    problems: list[ChainProblem] = []
    checked = 0
    first: int | None = None
    last: int | None = None
    with journal.chain_snapshot() as ((anchor_seq, anchor_hash, anchor_ok), rows):
        if not anchor_ok:
            problems.append(ChainProblem(anchor_seq, "anchor-edited"))
        expected_seq, expected_prev = anchor_seq + 1, anchor_hash
        for row in rows:
            seq = int(row[0])
            checked += 1
            first = seq if first is None else first
            last = seq
            problem = chain_problem(keys, row, expected_seq, expected_prev)
            if problem is not None:
                problems.append(ChainProblem(*problem))
            expected_seq = seq + 1
            expected_prev = row[10] if isinstance(row[10], bytes) else b""
    return VerifyReport(checked, first, last, tuple(problems))
