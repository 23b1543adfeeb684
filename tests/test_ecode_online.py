"""Online verification against the real central simulator (HTTP on 127.0.0.1).

卡码同权: the code of a card gets the same status as a tap of that card, a cancelled
card's code is refused; opaque national/e-voucher codes are judged online only.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sscard_hardware_sim.central_ecodes import issue_code, issue_opaque_code
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.models import CardStatus, Channel
from sscard_terminal.central.signed import load_public_key
from sscard_terminal.deadline import Deadline
from sscard_terminal.ecode import (
    SIMULATOR_SHAPES,
    CachedTrustListFile,
    CentralTrustListProvider,
    CodeKind,
    ECodeVerifier,
    MemoryReplayCache,
    Reason,
    RecognitionProfile,
)

PROFILE = RecognitionProfile.from_mapping(SIMULATOR_SHAPES)


def _verifier(sim: CentralSim, tmp_path: Path, *, central: bool = True,
              identity: bool = False, policy: str = "refuse") -> ECodeVerifier:
    client = sim.make_client(identity=identity)
    cache = CachedTrustListFile(tmp_path / "trust.json", load_public_key(sim.central_public_key))
    trust = CentralTrustListProvider(client, cache=cache)
    return ECodeVerifier(trust, MemoryReplayCache(), central=client if central else None,
                         recognition=PROFILE, opaque_policy=policy)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", ["normal", "expired", "temporary_loss", "formal_loss",
                                 "suspended", "cancelled"])
def test_a_codes_status_is_the_same_as_a_tap_of_the_same_card(
        central_sim: CentralSim, tmp_path: Path, key: str) -> None:
    demo = DEMO_CARDS[key]
    verifier = _verifier(central_sim, tmp_path)
    text = issue_code(central_sim.store, demo.card_number, alg="ES256")
    result = verifier.verify(text, deadline=Deadline.after(5))
    tap = central_sim.make_client().validate_card(
        demo.identification_code, demo.card_number, demo.region, Channel.CONTACTLESS,
        Deadline.after(5))
    assert result.online and result.validation is not None
    assert result.validation.status is tap.status
    assert result.card_ref == tap.card_ref
    assert result.accepted == (tap.status is CardStatus.NORMAL)
    if not result.accepted:
        assert result.reason is Reason.CARD_NOT_USABLE
    if key == "cancelled":
        assert tap.status is CardStatus.CANCELLED and not result.accepted


def test_eddsa_code_round_trips_through_the_simulator_and_replay_is_refused(
        central_sim: CentralSim, tmp_path: Path) -> None:
    verifier = _verifier(central_sim, tmp_path)
    text = issue_code(central_sim.store, DEMO_CARDS["normal"].card_number, alg="EdDSA")
    assert verifier.verify(text, deadline=Deadline.after(5)).accepted
    again = verifier.verify(text, deadline=Deadline.after(5))
    assert again.reason is Reason.REPLAYED and not again.accepted


def test_offline_verification_uses_the_centrals_signed_trust_list_and_revocation(
        central_sim: CentralSim, tmp_path: Path) -> None:
    store = central_sim.store
    offline = _verifier(central_sim, tmp_path, central=False)
    card = DEMO_CARDS["normal"].card_number
    accepted = offline.verify(issue_code(store, card), deadline=Deadline.after(5))
    assert accepted.accepted and not accepted.online
    store.revoke_signer("sim-es256-1")
    (tmp_path / "fresh").mkdir()
    fresh = _verifier(central_sim, tmp_path / "fresh", central=False)
    revoked = fresh.verify(issue_code(store, card), deadline=Deadline.after(5))
    assert revoked.reason is Reason.REVOKED_KID
    assert fresh.verify(issue_code(store, card, alg="EdDSA"),
                        deadline=Deadline.after(5)).accepted


def test_an_expired_code_is_refused_offline_before_asking_the_central(
        central_sim: CentralSim, tmp_path: Path) -> None:
    verifier = _verifier(central_sim, tmp_path)
    old = issue_code(central_sim.store, DEMO_CARDS["normal"].card_number,
                     now=time.time() - 600)
    result = verifier.verify(old, deadline=Deadline.after(5))
    assert result.reason is Reason.EXPIRED and not result.online


@pytest.mark.parametrize("kind", [CodeKind.NATIONAL, CodeKind.EVOUCHER])
def test_opaque_codes_are_verified_online_with_the_cards_status(
        central_sim: CentralSim, tmp_path: Path, kind: CodeKind) -> None:
    verifier = _verifier(central_sim, tmp_path, identity=True)
    good = issue_opaque_code(central_sim.store, DEMO_CARDS["normal"].card_number, kind)
    result = verifier.verify(good, deadline=Deadline.after(5))
    assert result.accepted and result.online and result.kind is kind
    assert result.validation is not None and result.validation.holder is not None
    assert "张三丰" not in repr(result)
    cancelled = issue_opaque_code(central_sim.store, DEMO_CARDS["cancelled"].card_number, kind)
    refused = verifier.verify(cancelled, deadline=Deadline.after(5))
    assert refused.reason is Reason.CARD_NOT_USABLE
    forged = verifier.verify(good[:4] + "0" * (len(good) - 4), deadline=Deadline.after(5))
    assert forged.reason is Reason.CENTRAL_REFUSED and "unknown_code" in forged.message


@pytest.mark.parametrize(("policy", "reason"), [("refuse", Reason.CENTRAL_UNREACHABLE),
                                                ("defer", Reason.DEFERRED)])
def test_opaque_codes_when_the_central_is_down_are_refused_or_deferred(
        central_sim: CentralSim, tmp_path: Path, policy: str, reason: Reason) -> None:
    code = issue_opaque_code(central_sim.store, DEMO_CARDS["normal"].card_number,
                             CodeKind.EVOUCHER)
    ours = issue_code(central_sim.store, DEMO_CARDS["normal"].card_number)
    verifier = _verifier(central_sim, tmp_path, policy=policy)
    warm = issue_code(central_sim.store, DEMO_CARDS["spare"].card_number)
    assert verifier.verify(warm, deadline=Deadline.after(5)).online  # trust list cached
    central_sim.stop()
    result = verifier.verify(code, deadline=Deadline.after(2))
    assert result.reason is reason and not result.accepted
    offline = verifier.verify(ours, deadline=Deadline.after(2))
    assert offline.accepted and not offline.online


def test_a_replayed_code_is_refused_without_asking_the_central(
        central_sim: CentralSim, tmp_path: Path) -> None:
    """A screenshot shown twice is refused from the replay cache at once: the gate does
    not spend its budget on the central, and the central hears of the code only once."""
    client = central_sim.make_client()
    asked: list[str] = []

    class Counting:
        def verify_ecode(self, code_text: str, deadline: Deadline) -> object:
            asked.append(code_text)
            return client.verify_ecode(code_text, deadline)

    cache = CachedTrustListFile(tmp_path / "trust.json",
                                load_public_key(central_sim.central_public_key))
    verifier = ECodeVerifier(CentralTrustListProvider(client, cache=cache),
                             MemoryReplayCache(), central=Counting(),  # type: ignore[arg-type]
                             recognition=PROFILE)
    text = issue_code(central_sim.store, DEMO_CARDS["normal"].card_number)
    first = verifier.verify(text, deadline=Deadline.after(5))
    assert first.accepted and first.online and asked == [text]
    again = verifier.verify(text, deadline=Deadline.after(5))
    assert again.reason is Reason.REPLAYED and not again.accepted
    assert asked == [text]
