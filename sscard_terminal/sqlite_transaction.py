"""One explicit SQLite write transaction, for connections in autocommit mode.

The journal, the denylist, the e-code replay cache and the central simulator open their
connections with ``isolation_level=None`` (each single statement commits on its own), and
group several statements with ``BEGIN IMMEDIATE ... COMMIT``. This is that grouping,
once: taken as a writer from the start (no upgrade deadlock between two writers), rolled
back on any exception, the exception then re-raised unchanged.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

__all__ = ["write_transaction"]


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE``; ``COMMIT`` when the block ends, ``ROLLBACK`` if it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
