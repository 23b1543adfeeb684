"""Chunked denylist snapshots, the simulator's side (docs/central-protocol.md).

A terminal that asks ``/v1/denylist?since=N&chunked=1`` and is due a snapshot gets a
signed manifest instead of the entries: the snapshot's records (the base-file records of
docs/denylist-format.md, sorted by key) cut into chunks, each listed with its record count
and SHA-256. The terminal then fetches ``/v1/denylist/chunk?version=V&index=i`` one by one,
checks each against the manifest, and can stop and resume anywhere: the signature covers
the whole list, and no chunk needs any other to be checked.

The simulator builds a version's records once and keeps the last two in memory, so the
chunks of a manifest stay available while newer changes arrive. Besides the cards' own
entries it serves the synthetic bulk entries the bench loads
(``CentralStore.add_denylist_bulk``: ten million, without a card row each).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import heapq
import threading
from dataclasses import dataclass
from typing import Any

from sscard_terminal.central.models import CardStatus
from sscard_terminal.decision.denylist_format import RECORD_BYTES, day_of, key_of, record

from .central_lifecycle import denylist_document
from .central_store import CentralStore

__all__ = ["chunk", "denylist_answer"]

_KEEP = 2
INLINE_DELTA = 1000
"""Deltas of more changes come as records too (their JSON would cost a terminal 10 ms
and more of parsing with every other thread waiting)."""


@dataclass(frozen=True)
class _Snapshot:
    version: int
    data: bytes
    chunk_records: int
    hashes: tuple[str, ...] = ()

    def chunk(self, index: int) -> bytes:
        size = self.chunk_records * RECORD_BYTES
        return self.data[index * size:(index + 1) * size]

    @property
    def chunks(self) -> int:
        return -(-len(self.data) // (self.chunk_records * RECORD_BYTES))


_lock = threading.Lock()
_snapshots: dict[tuple[str, int, int], _Snapshot] = {}


def _build(store: CentralStore, entries: list[dict[str, Any]], version: int
           ) -> _Snapshot | None:
    """The snapshot's records: the cards' entries and the bulk ones, merged in key order
    (a card's own entry wins over a bulk one with its key)."""
    keyed = []
    for entry in entries:
        key = key_of(entry["card_ref"])
        if key is None:
            return None     # a reference no record can carry: answer inline
        keyed.append(record(key, CardStatus(entry["status"]), day_of(entry.get("until"))))
    keyed.sort()
    out = bytearray()
    last = b""
    for rec in heapq.merge(keyed, (key + rest for key, rest in store.denylist_bulk())):
        if rec[:15] != last:
            out += rec
            last = rec[:15]
    snapshot = _Snapshot(version, bytes(out), store.denylist_chunk_records())
    return dataclasses.replace(snapshot, hashes=tuple(
        hashlib.sha256(snapshot.chunk(i)).hexdigest() for i in range(snapshot.chunks)))


def _build_delta(document: dict[str, Any], store: CentralStore) -> _Snapshot | None:
    """A delta's records: an addition as a record, a removal as its key with status 0."""
    keyed = []
    for entry in document["added"]:
        key = key_of(entry["card_ref"])
        if key is None:
            return None
        keyed.append(record(key, CardStatus(entry["status"]), day_of(entry.get("until"))))
    for ref in document["removed"]:
        key = key_of(ref)
        if key is None:
            return None
        keyed.append(record(key, None, 0))
    keyed.sort()
    snapshot = _Snapshot(document["version"], b"".join(keyed), store.denylist_chunk_records())
    return dataclasses.replace(snapshot, hashes=tuple(
        hashlib.sha256(snapshot.chunk(i)).hexdigest() for i in range(snapshot.chunks)))


def denylist_answer(store: CentralStore, since: int, today: dt.date, *, chunked: bool
                    ) -> dict[str, Any]:
    """The denylist document for ``since``: a delta or an inline snapshot as before, or
    (``chunked``, a snapshot or a delta of more than :data:`INLINE_DELTA` changes due)
    the manifest of a chunked one."""
    document = denylist_document(store, since, today, bulk=not chunked)
    if not chunked:
        return document
    full = bool(document["full"])
    if not full and len(document["added"]) + len(document["removed"]) <= INLINE_DELTA:
        return document
    cache_key = (str(store.path), document["version"], 0 if full else since)
    with _lock:
        snapshot = _snapshots.get(cache_key)
    if snapshot is None or snapshot.chunk_records != store.denylist_chunk_records():
        snapshot = (_build(store, document["added"], document["version"]) if full
                    else _build_delta(document, store))
    if snapshot is None:
        return denylist_document(store, since, today)
    with _lock:
        _snapshots[cache_key] = snapshot
        while len(_snapshots) > _KEEP:
            del _snapshots[next(iter(_snapshots))]
    return {
        "type": "denylist_manifest", "version": snapshot.version, "since_version": since,
        "full": full, "format": "ssdl-records/1", "record_bytes": RECORD_BYTES,
        "entries": len(snapshot.data) // RECORD_BYTES,
        "chunks": [{"records": len(snapshot.chunk(i)) // RECORD_BYTES,
                    "sha256": snapshot.hashes[i]}
                   for i in range(snapshot.chunks)],
    }


def chunk(store: CentralStore, version: int, index: int, since: int = 0) -> bytes | None:
    """Chunk ``index`` of the snapshot of ``version`` (``since`` > 0: of the delta from
    ``since``); None when not kept, or no such chunk."""
    with _lock:
        snapshot = _snapshots.get((str(store.path), version, since))
    if snapshot is None or not 0 <= index < snapshot.chunks:
        return None
    return snapshot.chunk(index)
