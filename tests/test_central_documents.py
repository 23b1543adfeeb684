"""Signed denylist (delta, snapshot) and trust list: verified against the pinned key;
a bad signature, a swapped document or a tampered entry is refused."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sscard_hardware_sim import central_lifecycle as life
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central import CardStatus
from sscard_terminal.central.signed import public_key_text
from sscard_terminal.deadline import Deadline
from sscard_terminal.errors import CentralProtocolError, ConfigError

TODAY = dt.date.today()


def test_snapshot_then_delta_tracks_transitions(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        snapshot = client.denylist(0, Deadline.after(3))
        assert snapshot.full and snapshot.version > 0
        denied = {e.card_ref: e.status for e in snapshot.added}
        for key in ("temporary_loss", "formal_loss", "suspended", "cancelled", "expired"):
            row = central_sim.store.card_by_number(DEMO_CARDS[key].card_number)
            assert row is not None and row.card_ref in denied, key
        spare = central_sim.store.card_by_number(DEMO_CARDS["spare"].card_number)
        lost = central_sim.store.card_by_number(DEMO_CARDS["formal_loss"].card_number)
        assert spare is not None and lost is not None
        assert spare.card_ref not in denied
        life.suspend(central_sim.store, spare.card_number, TODAY)
        life.unlock(central_sim.store, lost.card_number, TODAY)
        delta = client.denylist(snapshot.version, Deadline.after(3))
        assert client.denylist(delta.version, Deadline.after(3)).added == ()
    assert not delta.full and delta.since_version == snapshot.version
    assert [(e.card_ref, e.status) for e in delta.added] == [(spare.card_ref,
                                                              CardStatus.SUSPENDED)]
    assert delta.removed == (lost.card_ref,)


def test_terminal_too_far_behind_gets_a_snapshot(central_sim: CentralSim) -> None:
    spare = central_sim.store.card_by_number(DEMO_CARDS["spare"].card_number)
    assert spare is not None
    with central_sim.store.atomic() as conn:
        for _ in range(life.MAX_DELTA + 10):
            central_sim.store.log_denylist(conn, "churn", "add", CardStatus.SUSPENDED, None,
                                           TODAY)
    with central_sim.make_client() as client:
        update = client.denylist(1, Deadline.after(3))
    assert update.full and "churn" not in {e.card_ref for e in update.added}


def test_trust_list_is_signed_and_lists_both_algorithms(central_sim: CentralSim) -> None:
    central_sim.store.revoke_signer("sim-es256-1")
    with central_sim.make_client() as client:
        trust = client.trust_list(Deadline.after(3))
    assert {k.alg for k in trust.keys} == {"ES256", "EdDSA"}
    es = trust.key("sim-es256-1")
    assert es is not None and es.revoked and es.public_key.startswith(b"0Y0")
    ed = trust.key("sim-ed25519-1")
    assert ed is not None and not ed.revoked


def test_a_key_other_than_the_pinned_one_is_refused(central_sim: CentralSim) -> None:
    stranger = public_key_text(Ed25519PrivateKey.generate().public_key())
    with central_sim.make_client(central_public_key=stranger) as client:
        with pytest.raises(CentralProtocolError, match="signature"):
            client.denylist(0, Deadline.after(3))
        with pytest.raises(CentralProtocolError, match="signature"):
            client.trust_list(Deadline.after(3))


def test_no_pinned_key_is_a_config_error(central_sim: CentralSim) -> None:
    with central_sim.make_client(central_public_key=None) as client:
        with pytest.raises(ConfigError):
            client.trust_list(Deadline.after(3))


def _relay(central_sim: CentralSim, edit: Any) -> httpx.MockTransport:
    """A transport that forwards to the real simulator and edits the answer's JSON."""
    real = httpx.HTTPTransport()

    def handler(request: httpx.Request) -> httpx.Response:
        answer = real.handle_request(request)
        answer.read()
        data = edit(request, json.loads(answer.content))
        return httpx.Response(answer.status_code, headers=answer.headers,
                              content=json.dumps(data).encode())
    return httpx.MockTransport(handler)


def test_tampered_denylist_entry_is_refused(central_sim: CentralSim) -> None:
    def drop_an_entry(request: httpx.Request, data: dict[str, Any]) -> dict[str, Any]:
        data["document"]["added"] = data["document"]["added"][1:]
        return data
    with central_sim.make_client(transport=_relay(central_sim, drop_an_entry)) as client:
        with pytest.raises(CentralProtocolError, match="signature"):
            client.denylist(0, Deadline.after(3))


def test_a_denylist_cannot_pass_as_a_trust_list(central_sim: CentralSim) -> None:
    def swap(request: httpx.Request, data: dict[str, Any]) -> dict[str, Any]:
        if request.url.path == "/v1/trust-list":
            with central_sim.make_client() as honest:
                envelope = honest.get_json("/v1/denylist?since=0", Deadline.after(3))
            return envelope
        return data
    with central_sim.make_client(transport=_relay(central_sim, swap)) as client:
        with pytest.raises(CentralProtocolError, match="expected 'trust_list'"):
            client.trust_list(Deadline.after(3))


def test_a_terminal_ahead_of_the_central_gets_a_snapshot(central_sim: CentralSim) -> None:
    with central_sim.make_client() as client:
        update = client.denylist(10_000, Deadline.after(3))
    assert update.full and len(update.added) >= 5
