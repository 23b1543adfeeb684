"""Every signed central document (the denylist and the trust list) refused when its
signature is forged (EdDSA by another key, ES256, one bit changed), missing, null, or
under another ``alg``, with the installed list unchanged (issue 23: a document with no
``signature`` field returned unverified passed the suite).

The documents come from the real central simulator through a relay that edits its
answers, as a man in the middle (or a compromised mirror) would.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sscard_hardware_sim import central_lifecycle as life
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.client import CentralClient
from sscard_terminal.central.signed import (
    canonical_json,
    load_public_key,
    public_key_text,
    sign_document,
    verify_document,
)
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Denylist
from sscard_terminal.ecode import (
    CachedTrustListFile,
    CentralTrustListProvider,
    ECodeIssuer,
    ECodeVerifier,
    MemoryReplayCache,
    Reason,
)
from sscard_terminal.errors import CentralProtocolError, ConfigError

from .ecode_helpers import CARD_REF, REGION

Envelope = dict[str, Any]
Forgery = Callable[[Envelope], Envelope]

FORGER_ED = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FORGER_ES = ec.derive_private_key(0x5EED_1234_5678, ec.SECP256R1())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _edit(document: Envelope) -> Envelope:
    """What an attacker wants the terminal to install: an empty denylist (every lost
    card passes), or a trust list with the forger's own code-signing key in it."""
    edited = json.loads(json.dumps(document))
    edited["version"] = int(edited["version"]) + 100
    if edited["type"] == "denylist":
        edited["added"], edited["removed"], edited["full"] = [], [], True
    else:
        spki = FORGER_ED.public_key().public_bytes(Encoding.DER,
                                                   PublicFormat.SubjectPublicKeyInfo)
        edited["keys"].append({**edited["keys"][0], "kid": "forger", "alg": "EdDSA",
                               "public_key": base64.b64encode(spki).decode("ascii"),
                               "revoked": False})
    return edited


def _forged_eddsa(envelope: Envelope) -> Envelope:
    document = _edit(envelope["document"])
    return {"document": document, "alg": "EdDSA",
            "signature": _b64url(FORGER_ED.sign(canonical_json(document)))}


def _forged_es256(envelope: Envelope) -> Envelope:
    document = _edit(envelope["document"])
    r, s = decode_dss_signature(FORGER_ES.sign(canonical_json(document),
                                               ec.ECDSA(hashes.SHA256())))
    return {"document": document, "alg": "ES256",
            "signature": _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))}


def _one_bit_changed(envelope: Envelope) -> Envelope:
    raw = base64.urlsafe_b64decode(envelope["signature"] + "==")
    return {**envelope, "signature": _b64url(raw[:10] + bytes([raw[10] ^ 1]) + raw[11:])}


def _no_signature(envelope: Envelope) -> Envelope:
    return {"document": _edit(envelope["document"]), "alg": "EdDSA"}


def _null_signature(envelope: Envelope) -> Envelope:
    return {"document": _edit(envelope["document"]), "alg": "EdDSA", "signature": None}


def _empty_signature(envelope: Envelope) -> Envelope:
    return {"document": _edit(envelope["document"]), "alg": "EdDSA", "signature": ""}


def _alg(name: str | None) -> Forgery:
    """The genuine document with its genuine signature, under another (or no) ``alg``:
    only the algorithm check can refuse it."""
    def forge(envelope: Envelope) -> Envelope:
        forged = dict(envelope)
        if name is None:
            del forged["alg"]
        else:
            forged["alg"] = name
        return forged
    return forge


FORGERIES: dict[str, Forgery] = {
    "forged-eddsa": _forged_eddsa,
    "forged-es256": _forged_es256,
    "one-bit-changed": _one_bit_changed,
    "no-signature": _no_signature,
    "null-signature": _null_signature,
    "empty-signature": _empty_signature,
    "alg-es256": _alg("ES256"),
    "alg-none": _alg("none"),
    "alg-lowercase": _alg("eddsa"),
    "alg-missing": _alg(None),
}


class _Relay:
    """An httpx transport in front of the real simulator that forges signed answers
    while ``forgery`` is set."""

    def __init__(self) -> None:
        self.forgery: Forgery | None = None
        self.forged = 0
        self._real = httpx.HTTPTransport()

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        answer = self._real.handle_request(request)
        answer.read()
        signed = request.url.path in ("/v1/denylist", "/v1/trust-list")
        if self.forgery is None or not signed or answer.status_code != 200:
            return answer
        self.forged += 1
        content = json.dumps(self.forgery(json.loads(answer.content))).encode()
        headers = {k: v for k, v in answer.headers.items() if k.lower() != "content-length"}
        return httpx.Response(200, headers=headers, content=content)


@pytest.fixture
def relay() -> _Relay:
    return _Relay()


@pytest.fixture
def relayed(central_sim: CentralSim, relay: _Relay) -> Iterator[CentralClient]:
    with central_sim.make_client(transport=relay.transport()) as client:
        yield client


def test_every_forgery_is_refused_by_the_envelope_check_itself(central_sim: CentralSim) -> None:
    """The unit under the client: verify_document against the genuine envelopes."""
    with central_sim.make_client() as honest:
        envelopes = {
            "denylist": honest.get_json("/v1/denylist?since=0", Deadline.after(3)),
            "trust_list": honest.get_json("/v1/trust-list", Deadline.after(3)),
        }
    key = load_public_key(central_sim.central_public_key)
    unsigned = "signed document: missing signature or unknown algorithm"
    for kind, envelope in envelopes.items():
        assert verify_document(key, envelope, kind) == envelope["document"]
        for name, forge in FORGERIES.items():
            with pytest.raises(CentralProtocolError) as refused:
                verify_document(key, forge(envelope), kind)
            # the whole message: a technician reads which check refused the document
            expected = (f"signed {kind}: signature does not verify with the pinned central key"
                        if name in ("forged-eddsa", "one-bit-changed", "empty-signature")
                        else unsigned)
            assert str(refused.value) == expected, name


@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_a_forged_denylist_is_refused_and_the_installed_list_is_unchanged(
        central_sim: CentralSim, relayed: CentralClient, relay: _Relay, tmp_path: Path,
        forgery: str) -> None:
    lost = central_sim.store.card_by_number(DEMO_CARDS["formal_loss"].card_number)
    spare = central_sim.store.card_by_number(DEMO_CARDS["spare"].card_number)
    assert lost is not None and spare is not None
    path = tmp_path / "denylist.db"
    with Denylist.open(path) as denylist:
        installed = denylist.refresh(relayed, deadline=Deadline.after(5))
        before = denylist.state()
        assert denylist.lookup(lost.card_ref) is not None
        # the central moves on, so an unforged refresh would change the list
        life.suspend(central_sim.store, spare.card_number, dt.date.today())
        relay.forgery = FORGERIES[forgery]
        with pytest.raises(CentralProtocolError):
            denylist.refresh(relayed, deadline=Deadline.after(5))
        assert relay.forged == 1
        assert denylist.version == installed
        assert denylist.state() == before
        assert denylist.lookup(lost.card_ref) is not None       # still refused
        assert denylist.lookup(spare.card_ref) is None
    with Denylist.open(path) as reopened:                       # nothing written either
        assert reopened.version == installed and reopened.lookup(lost.card_ref) is not None
        relay.forgery = None
        assert reopened.refresh(relayed, deadline=Deadline.after(5)) > installed
        assert reopened.lookup(spare.card_ref) is not None      # the honest delta applies


@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_a_forged_trust_list_is_refused_and_the_list_in_use_is_unchanged(
        central_sim: CentralSim, relayed: CentralClient, relay: _Relay, tmp_path: Path,
        forgery: str) -> None:
    cache = CachedTrustListFile(tmp_path / "trust.json",
                                load_public_key(central_sim.central_public_key))
    provider = CentralTrustListProvider(relayed, cache=cache)
    first = provider.refresh(Deadline.after(5))
    saved = cache.path.read_bytes()
    relay.forgery = FORGERIES[forgery]
    with pytest.raises(CentralProtocolError):
        relayed.trust_list(Deadline.after(5))
    kept = provider.refresh(Deadline.after(5))               # falls back, never installs
    assert relay.forged == 2
    assert kept is first
    assert cache.path.read_bytes() == saved
    # a code signed by the forger's key stays unknown; the central's own key still works
    verifier = ECodeVerifier(provider, MemoryReplayCache())
    forged_code = ECodeIssuer(b"forger", FORGER_ED).issue(CARD_REF, REGION)
    assert verifier.verify(forged_code, deadline=Deadline.after(5)).reason is Reason.UNKNOWN_KID
    genuine = ECodeIssuer(b"sim-ed25519-1",
                          central_sim.store.signer_private_key("sim-ed25519-1"))
    assert verifier.verify(genuine.issue(CARD_REF, REGION), deadline=Deadline.after(5)).accepted


@pytest.mark.parametrize("forgery", FORGERIES, ids=list(FORGERIES))
def test_a_forged_trust_list_file_is_refused_on_load(
        central_sim: CentralSim, tmp_path: Path, forgery: str) -> None:
    with central_sim.make_client() as honest:
        envelope = honest.get_json("/v1/trust-list", Deadline.after(3))
    key = load_public_key(central_sim.central_public_key)
    path = tmp_path / "trust.json"
    path.write_text(json.dumps(FORGERIES[forgery](envelope)), encoding="utf-8")
    with pytest.raises(ConfigError, match="refused"):
        CachedTrustListFile(path, key).load()


def test_the_signed_bytes_are_the_documented_canonical_json() -> None:
    """Sorted keys, no spaces, UTF-8 (not \\u escapes): a terminal and a real central must
    produce the same bytes, or no signature ever verifies. Pinned byte for byte, since the
    simulator shares this code and would agree with any change to it."""
    document = {"type": "denylist", "version": 7, "b": [1, {"z": None, "a": True}],
                "名": "张三"}
    assert canonical_json(document) == (
        '{"b":[1,{"a":true,"z":null}],"type":"denylist","version":7,"名":"张三"}'
    ).encode()


def test_sign_document_makes_the_documented_envelope_and_it_verifies() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    document = {"type": "trust_list", "version": 3, "keys": []}
    envelope = sign_document(key, document)
    assert set(envelope) == {"document", "alg", "signature"}
    assert envelope["alg"] == "EdDSA" and envelope["document"] == document
    signature = envelope["signature"]
    assert "=" not in signature and "+" not in signature and "/" not in signature
    raw = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
    key.public_key().verify(raw, canonical_json(document))       # raises if wrong
    assert verify_document(key.public_key(), envelope, "trust_list") == document
    with pytest.raises(CentralProtocolError, match="expected 'denylist'"):
        verify_document(key.public_key(), envelope, "denylist")
    for broken, message in (
            ("not a dict", "signed document: not a JSON object"),
            ({"alg": "EdDSA", "signature": signature}, "signed document: missing document"),
            ({"document": [], "alg": "EdDSA", "signature": signature},
             "signed document: missing document")):
        with pytest.raises(CentralProtocolError) as refused:
            verify_document(key.public_key(), broken, "trust_list")
        assert str(refused.value) == message
    with pytest.raises(CentralProtocolError) as swapped:
        verify_document(key.public_key(), envelope, "denylist")
    assert str(swapped.value) == "signed document is a 'trust_list', expected 'denylist'"


def test_the_pinned_key_text_round_trips_and_garbage_is_a_config_error() -> None:
    public = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))).public_key()
    text = public_key_text(public)
    assert len(text) == 43 and "=" not in text
    assert public_key_text(load_public_key(f"  {text}\n")) == text
    for garbage in ("", "abc", text[:-2], "!" * 43):
        with pytest.raises(ConfigError, match="not a base64url Ed25519 key"):
            load_public_key(garbage)
