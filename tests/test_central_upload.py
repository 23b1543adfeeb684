"""Transaction batch upload: idempotent per transaction, partial acceptance explicit."""

from __future__ import annotations

import datetime as dt
import sqlite3

import httpx
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.central import MAX_BATCH, TransactionUpload
from sscard_terminal.deadline import Deadline


def _tx(sim: CentralSim, n: int, **changes: object) -> TransactionUpload:
    fields: dict[str, object] = {
        "idempotency_key": f"tx-{n:06d}", "sequence": n, "terminal_id": sim.terminal_id,
        "kind": "tap", "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "payload": {"fare": 200, "card_ref": "abc"}}
    fields.update(changes)
    return TransactionUpload(**fields)  # type: ignore[arg-type]


def _stored(sim: CentralSim) -> int:
    with sqlite3.connect(sim.db) as conn:
        return int(conn.execute("SELECT count(*) FROM transactions").fetchone()[0])


def test_a_retried_batch_never_doubles(central_sim: CentralSim) -> None:
    batch = [_tx(central_sim, n) for n in range(20)]
    with central_sim.make_client() as client:
        first = client.upload_transactions(batch, Deadline.after(5))
        again = client.upload_transactions(batch, Deadline.after(5))
    assert [a.outcome for a in first] == ["accepted"] * 20
    assert [a.outcome for a in again] == ["duplicate"] * 20
    assert [a.idempotency_key for a in again] == [t.idempotency_key for t in batch]
    assert _stored(central_sim) == 20


def test_partial_acceptance_is_explicit_per_transaction(central_sim: CentralSim) -> None:
    batch = [
        _tx(central_sim, 1),
        _tx(central_sim, 2, terminal_id="T-SOMEONE-ELSE"),
        _tx(central_sim, 3, occurred_at="yesterday"),
        _tx(central_sim, 4),
    ]
    with central_sim.make_client() as client:
        client.upload_transactions(batch[:1], Deadline.after(5))
        acks = client.upload_transactions(batch, Deadline.after(5))
    assert [(a.outcome, a.reason) for a in acks] == [
        ("duplicate", None), ("rejected", "terminal_mismatch"),
        ("rejected", "bad_field:occurred_at"), ("accepted", None)]
    assert _stored(central_sim) == 2


def test_large_batches_are_split_at_the_documented_maximum(central_sim: CentralSim) -> None:
    batch = [_tx(central_sim, n) for n in range(MAX_BATCH + 7)]
    with central_sim.make_client() as client:
        acks = client.upload_transactions(batch, Deadline.after(20))
    assert len(acks) == MAX_BATCH + 7 and {a.outcome for a in acks} == {"accepted"}
    assert _stored(central_sim) == MAX_BATCH + 7


def test_a_retry_after_a_lost_answer_does_not_double(central_sim: CentralSim) -> None:
    """The central stored the batch but its answer was lost on the way back: the client's
    retry (same keys) is acknowledged as duplicates, nothing is stored twice."""
    real = httpx.HTTPTransport()
    lost = []

    def lose_first_answer(request: httpx.Request) -> httpx.Response:
        answer = real.handle_request(request)
        answer.read()
        if not lost:
            lost.append(answer.status_code)
            raise httpx.ReadError("connection dropped after the central answered")
        return answer

    batch = [_tx(central_sim, n) for n in range(5)]
    with central_sim.make_client(transport=httpx.MockTransport(lose_first_answer)) as client:
        acks = client.upload_transactions(batch, Deadline.after(5))
    assert lost == [200]
    assert [a.outcome for a in acks] == ["duplicate"] * 5
    assert _stored(central_sim) == 5


def test_a_reset_first_attempt_is_retried(central_sim: CentralSim) -> None:
    batch = [_tx(central_sim, n) for n in range(5)]
    with central_sim.make_client() as client:
        central_sim.set_faults(mode="reset", count=1)
        acks = client.upload_transactions(batch, Deadline.after(5))
    assert [a.outcome for a in acks] == ["accepted"] * 5
    assert _stored(central_sim) == 5
