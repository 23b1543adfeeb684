"""Chunked denylist snapshots over the real simulator (docs/central-protocol.md): a
signed manifest of chunk hashes, chunks checked one by one before a byte is written, a
switch only when every chunk matched, and an interrupted download that resumes where it
stopped without trusting what is on disk."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import httpx
import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_lifecycle import set_status
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.models import CardStatus, DenylistManifest, DenylistUpdate
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Denylist
from sscard_terminal.decision.denylist_format import record, ref_of
from sscard_terminal.errors import (
    CentralProtocolError,
    CentralUnreachableError,
    DenylistError,
)


class _Wire(httpx.HTTPTransport):
    """The real network, with a hand on it: counts chunk requests, and can alter a
    chunk's bytes or cut the connection from some chunk on."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[int] = []
        self.alter: int | None = None
        self.cut_from: int | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/v1/denylist/chunk"):
            index = int(request.url.params["index"])
            self.chunks.append(index)
            if self.cut_from is not None and index >= self.cut_from:
                raise httpx.ConnectError("cable pulled", request=request)
            if self.alter == index:
                response = super().handle_request(request)
                body = bytearray(response.read())
                body[0] ^= 0x01
                return httpx.Response(response.status_code, headers=response.headers,
                                      content=bytes(body), request=request)
        return super().handle_request(request)


def _inline(central_sim: CentralSim) -> dict[str, str]:
    """The central's list as the legacy inline snapshot states it: card_ref -> status."""
    with central_sim.make_client() as plain:
        update = plain.denylist(0, Deadline.after(5))
    assert update.full and len(update.added) >= 5
    return {e.card_ref: e.status.value for e in update.added}


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("denylist.db."))


def test_a_snapshot_comes_as_a_signed_manifest_of_chunks_and_installs(
        central_sim: CentralSim, tmp_path: Path) -> None:
    central_sim.store.set_denylist_chunk_records(2)
    expected = _inline(central_sim)
    wire = _Wire()
    with central_sim.make_client(transport=wire) as client, \
            Denylist.open(tmp_path / "denylist.db") as denylist:
        manifest = client.denylist_update(0, Deadline.after(5))
        assert isinstance(manifest, DenylistManifest)
        assert manifest.entries == len(expected) and len(manifest.chunks) == 3
        version = denylist.refresh(client, deadline=Deadline.after(10))
        assert version == manifest.version
        assert sorted(wire.chunks) == [0, 1, 2]
        assert denylist.state().entries == len(expected)
        for ref, status in expected.items():
            hit = denylist.lookup(ref)
            assert hit is not None and hit.status.value == status
        # Up to date: the next refresh is an (empty) inline delta, no chunk fetched.
        wire.chunks.clear()
        assert denylist.refresh(client, deadline=Deadline.after(5)) == version
        assert wire.chunks == []
    assert [n for n in _files(tmp_path) if ".download-" in n] == []


def test_a_chunk_altered_on_the_way_installs_nothing(
        central_sim: CentralSim, tmp_path: Path) -> None:
    central_sim.store.set_denylist_chunk_records(2)
    wire = _Wire()
    wire.alter = 1
    with central_sim.make_client(transport=wire) as client, \
            Denylist.open(tmp_path / "denylist.db") as denylist:
        with pytest.raises(CentralProtocolError, match="does not match the signed manifest"):
            denylist.refresh(client, deadline=Deadline.after(10))
        assert denylist.version == 0 and denylist.state().entries == 0
        assert denylist.age_hours() is None
    assert [n for n in _files(tmp_path) if ".base-" in n or ".download-" in n] == []


def test_an_altered_manifest_is_refused(central_sim: CentralSim) -> None:
    central_sim.store.set_denylist_chunk_records(2)

    class Forger(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            if request.url.path.endswith("/v1/denylist"):
                envelope = json.loads(response.read())
                envelope["document"]["chunks"][0]["sha256"] = "0" * 64
                return httpx.Response(200, headers={"Content-Type": "application/json"},
                                      content=json.dumps(envelope).encode(), request=request)
            return response

    with central_sim.make_client(transport=Forger()) as client, \
            pytest.raises(CentralProtocolError, match="signature does not verify"):
        client.denylist_update(0, Deadline.after(5))


def test_an_interrupted_download_resumes_where_it_stopped(
        central_sim: CentralSim, tmp_path: Path) -> None:
    """Cut after three chunks, the terminal restarts (the list is closed and opened
    again), and the next refresh fetches only the chunks it lacks."""
    central_sim.store.set_denylist_chunk_records(1)
    expected = _inline(central_sim)
    wire = _Wire()
    wire.cut_from = 3
    with central_sim.make_client(transport=wire) as client:
        with Denylist.open(tmp_path / "denylist.db") as denylist:
            with pytest.raises(CentralUnreachableError):
                denylist.refresh(client, deadline=Deadline.after(10))
            assert denylist.version == 0 and denylist.state().entries == 0
        (download,) = [n for n in _files(tmp_path) if ".download-" in n]
        assert (tmp_path / download).stat().st_size == 4096 + 3 * 20
        wire.cut_from, wire.chunks = None, []
        denylist = Denylist.open(tmp_path / "denylist.db")
        denylist.refresh(client, deadline=Deadline.after(10))
        assert wire.chunks == list(range(3, len(expected)))
        assert denylist.state().entries == len(expected)
        assert all(denylist.lookup(ref) is not None for ref in expected)
        denylist.close()
    assert [n for n in _files(tmp_path) if ".download-" in n] == []


def test_a_download_altered_on_disk_is_not_trusted_on_resume(
        central_sim: CentralSim, tmp_path: Path) -> None:
    central_sim.store.set_denylist_chunk_records(1)
    expected = _inline(central_sim)
    wire = _Wire()
    wire.cut_from = 3
    with central_sim.make_client(transport=wire) as client, \
            Denylist.open(tmp_path / "denylist.db") as denylist:
        with pytest.raises(CentralUnreachableError):
            denylist.refresh(client, deadline=Deadline.after(10))
        (download,) = [tmp_path / n for n in _files(tmp_path) if ".download-" in n]
        data = bytearray(download.read_bytes())
        data[4096 + 20 + 3] ^= 0x01                 # chunk 1 on disk, changed
        download.write_bytes(bytes(data))
        wire.cut_from, wire.chunks = None, []
        with pytest.raises(DenylistError, match="does not match the manifest"):
            denylist.refresh(client, deadline=Deadline.after(10))
        assert denylist.version == 0 and not download.exists()
        denylist.refresh(client, deadline=Deadline.after(10))
        assert wire.chunks == list(range(len(expected)))
        assert denylist.state().entries == len(expected)


def test_a_chunked_snapshot_then_deltas(central_sim: CentralSim, tmp_path: Path) -> None:
    """After a chunked snapshot the terminal takes the central's deltas as before."""
    central_sim.store.set_denylist_chunk_records(4)
    with central_sim.make_client() as client, \
            Denylist.open(tmp_path / "denylist.db") as denylist:
        first = denylist.refresh(client, deadline=Deadline.after(10))
        spare = central_sim.store.card_by_number(DEMO_CARDS["spare"].card_number)
        assert spare is not None and denylist.lookup(spare.card_ref) is None
        set_status(central_sim.store, spare.card_number, CardStatus.SUSPENDED,
                   dt.date.today())
        update = client.denylist_update(first, Deadline.after(5))
        assert isinstance(update, DenylistUpdate) and not update.full
        assert denylist.refresh(client, deadline=Deadline.after(5)) == update.version
        hit = denylist.lookup(spare.card_ref)
        assert hit is not None and hit.status is CardStatus.SUSPENDED


def test_bulk_entries_travel_in_chunks_and_a_terminal_behind_the_load_gets_a_snapshot(
        central_sim: CentralSim, tmp_path: Path) -> None:
    """The simulator's synthetic provincial entries (the bench loads ten million):
    served as chunk records beside the cards' own entries, and a terminal whose version
    predates the load gets a snapshot, never a delta that would miss them."""
    rng = random.Random(11)
    keys = sorted({rng.randbytes(15) for _ in range(5000)})
    records = b"".join(record(k, CardStatus.FORMAL_LOSS, 0) for k in keys)
    central_sim.store.set_denylist_chunk_records(1024)
    cards = _inline(central_sim)
    with central_sim.make_client() as client, \
            Denylist.open(tmp_path / "denylist.db") as denylist:
        before = denylist.refresh(client, deadline=Deadline.after(10))
        loaded = central_sim.store.add_denylist_bulk([records], dt.date.today())
        assert loaded > before
        update = client.denylist_update(before, Deadline.after(10))
        assert isinstance(update, DenylistManifest) and update.entries == 5000 + len(cards)
        assert len(update.chunks) == 5
        assert denylist.refresh(client, deadline=Deadline.after(20)) == loaded
        assert denylist.state().entries == 5000 + len(cards)
        assert all(denylist.lookup(ref_of(k)) is not None for k in keys[::50])
        assert all(denylist.lookup(ref) is not None for ref in cards)
    # The legacy inline form carries them too.
    with central_sim.make_client() as plain:
        inline = plain.denylist(before, Deadline.after(10))
    assert inline.full and len(inline.added) == 5000 + len(cards)


def _log_changes(central_sim: CentralSim, adds: list[str], removes: list[str]) -> None:
    with central_sim.store.atomic() as conn:
        for ref in adds:
            central_sim.store.log_denylist(conn, ref, "add", CardStatus.SUSPENDED, None,
                                           dt.date.today())
        for ref in removes:
            central_sim.store.log_denylist(conn, ref, "remove", None, None, dt.date.today())


def test_a_large_delta_comes_as_records_and_applies(
        central_sim: CentralSim, tmp_path: Path) -> None:
    """Past 1,000 changes a delta comes as a signed manifest of records too (removals
    with status 0): no JSON of tens of thousands of entries to parse on the terminal."""
    central_sim.store.set_denylist_chunk_records(512)
    rng = random.Random(12)
    first = [ref_of(rng.randbytes(15)) for _ in range(1500)]
    second = [ref_of(rng.randbytes(15)) for _ in range(700)]
    cards = len(_inline(central_sim))
    wire = _Wire()
    with central_sim.make_client(transport=wire) as client, \
            Denylist.open(tmp_path / "denylist.db") as denylist:
        start = denylist.refresh(client, deadline=Deadline.after(10))
        _log_changes(central_sim, first, [])
        mid = denylist.refresh(client, deadline=Deadline.after(10))
        assert all(denylist.lookup(ref) is not None for ref in first)
        _log_changes(central_sim, second, first[:600])
        update = client.denylist_update(mid, Deadline.after(10))
        assert isinstance(update, DenylistManifest) and not update.full
        assert update.since_version == mid and update.entries == 1300
        wire.chunks.clear()
        assert denylist.refresh(client, deadline=Deadline.after(10)) == update.version
        assert sorted(wire.chunks) == [0, 1, 2]
        assert all(denylist.lookup(ref) is None for ref in first[:600])
        assert all(denylist.lookup(ref) is not None for ref in first[600:] + second)
        # (The simulator's snapshots list cards; these changes are in its log only.)
        assert denylist.state().entries == cards + 1500 + 700 - 600
        assert start < mid < update.version


def test_an_altered_delta_chunk_changes_nothing(central_sim: CentralSim, tmp_path: Path) -> None:
    central_sim.store.set_denylist_chunk_records(512)
    rng = random.Random(13)
    adds = [ref_of(rng.randbytes(15)) for _ in range(1200)]
    wire = _Wire()
    with central_sim.make_client(transport=wire) as client, \
            Denylist.open(tmp_path / "denylist.db") as denylist:
        version = denylist.refresh(client, deadline=Deadline.after(10))
        entries = denylist.state().entries
        _log_changes(central_sim, adds, [])
        wire.alter = 2
        with pytest.raises(CentralProtocolError, match="does not match the signed manifest"):
            denylist.refresh(client, deadline=Deadline.after(10))
        assert denylist.version == version and denylist.state().entries == entries
        assert all(denylist.lookup(ref) is None for ref in adds)
        wire.alter = None
        denylist.refresh(client, deadline=Deadline.after(10))
        assert all(denylist.lookup(ref) is not None for ref in adds)
