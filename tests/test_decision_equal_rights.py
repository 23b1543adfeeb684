"""卡码同权: a card tap and an e-code of the same card get the same decision, for every
lifecycle status, online and offline.

The tap is a real read of a virtual card carrying the simulator's card (EF05 through the
`sim` transport); the code is issued by the simulator's own CLI (`sscard central-sim
issue-code`) and judged by the real e-code verifier; both go to the real central
simulator over loopback and through one decision engine configuration.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.client import CentralClient
from sscard_terminal.central.models import CardStatus, Channel
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Decision, DecisionEngine, Denylist, Reason
from sscard_terminal.decision.credentials import PresentedCredential
from sscard_terminal.ecode import (
    SIMULATOR_SHAPES,
    CentralTrustListProvider,
    ECodeVerifier,
    MemoryReplayCache,
    RecognitionProfile,
)
from sscard_terminal.profiles import Profile, load_profile

from .decision_helpers import read_tap

pytestmark = pytest.mark.timeout(300)

# demo card -> the status the central holds for it once the test has set it up
CARDS = {
    "normal": CardStatus.NORMAL,
    "disabled": CardStatus.NORMAL,        # library switched off; disabled + veteran
    "temporary_loss": CardStatus.TEMPORARY_LOSS,
    "formal_loss": CardStatus.FORMAL_LOSS,
    "suspended": CardStatus.SUSPENDED,
    "cancelled": CardStatus.CANCELLED,
    "expired": CardStatus.EXPIRED,
    "spare": CardStatus.REPLACED,
    "spare2": CardStatus.RENEWED,
}


def cli(sim: CentralSim, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "sscard_terminal.cli.main", "central-sim",
                           *args, "--db", str(sim.db)],
                          check=True, capture_output=True, text=True, timeout=60)
    return done.stdout.strip()


def prepare(sim: CentralSim) -> None:
    cli(sim, "set-status", DEMO_CARDS["spare"].card_number, "replaced")
    cli(sim, "set-status", DEMO_CARDS["spare2"].card_number, "renewed")


def fresh_decision(profile: Profile, central: CentralClient | None, denylist: Denylist,
                   credential: PresentedCredential) -> Decision:
    """A fresh engine each time, so anti-passback between the two presentations of one
    card does not hide what the rules say about each."""
    engine = DecisionEngine(profile, central=central, denylist=denylist)
    return engine.decide(credential, deadline=Deadline.after(3.0))


def same(card: Decision, code: Decision) -> tuple[object, ...]:
    return (card.outcome, card.reason, card.central_status, card.concession, card.fare_percent,
            card.card_ref, card.online) == (
            code.outcome, code.reason, code.central_status, code.concession, code.fare_percent,
            code.card_ref, code.online), card, code


@pytest.mark.parametrize("profile_name", ["bus-validator", "library-gate"])
def test_card_and_code_get_the_same_decision_online(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist, profile_name: str
) -> None:
    prepare(central_sim)
    profile = load_profile(profile_name)
    verifier = ECodeVerifier(CentralTrustListProvider(client), MemoryReplayCache(),
                             central=client)
    seen_reasons = set()
    for key, status in CARDS.items():
        card_number = DEMO_CARDS[key].card_number
        tap = read_tap(central_sim.store, card_number)
        code_text = cli(central_sim, "issue-code", card_number)
        verification = verifier.verify(code_text, deadline=Deadline.after(3.0))
        code = PresentedCredential.from_verification(verification)
        assert code.channel is Channel.ECODE and code.card_ref == tap.card_ref, key
        card_decision = fresh_decision(profile, client, denylist, tap)
        code_decision = fresh_decision(profile, client, denylist, code)
        equal, *detail = same(card_decision, code_decision)
        assert equal, (key, detail)
        assert card_decision.online and card_decision.central_status is status, key
        seen_reasons.add(card_decision.reason)
    expected = {Reason.ACCEPTED, Reason.CARD_LOST, Reason.CARD_SUSPENDED, Reason.CARD_VOID,
                Reason.CARD_EXPIRED}
    if profile_name == "library-gate":
        expected.add(Reason.APPLICATION_OFF)
    assert seen_reasons == expected


def test_national_code_gets_the_same_decision_as_the_card(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist
) -> None:
    prepare(central_sim)
    profile = load_profile("bus-validator")
    verifier = ECodeVerifier(CentralTrustListProvider(client), MemoryReplayCache(),
                             central=client,
                             recognition=RecognitionProfile.from_mapping(SIMULATOR_SHAPES))
    for key in ("normal", "disabled", "cancelled", "formal_loss", "spare", "expired"):
        card_number = DEMO_CARDS[key].card_number
        tap = read_tap(central_sim.store, card_number)
        code_text = cli(central_sim, "issue-code", card_number, "--kind", "national")
        code = PresentedCredential.from_verification(
            verifier.verify(code_text, deadline=Deadline.after(3.0)))
        equal, *detail = same(fresh_decision(profile, client, denylist, tap),
                              fresh_decision(profile, client, denylist, code))
        assert equal, (key, detail)


def test_card_and_code_get_the_same_decision_offline(
    central_sim: CentralSim, client: CentralClient, denylist: Denylist
) -> None:
    prepare(central_sim)
    profile = load_profile("bus-validator")
    denylist.refresh(client, deadline=Deadline.after(5.0))
    trust = CentralTrustListProvider(client)
    trust.trust_list(Deadline.after(5.0))              # cached while the central is up
    verifier = ECodeVerifier(trust, MemoryReplayCache(), central=client)
    codes = {key: cli(central_sim, "issue-code", DEMO_CARDS[key].card_number)
             for key in CARDS}
    taps = {key: read_tap(central_sim.store, DEMO_CARDS[key].card_number) for key in CARDS}
    central_sim.set_faults(mode="error")
    try:
        for key, status in CARDS.items():
            verification = verifier.verify(codes[key], deadline=Deadline.after(3.0))
            assert not verification.online, key
            code = PresentedCredential.from_verification(verification)
            card_decision = fresh_decision(profile, client, denylist, taps[key])
            code_decision = fresh_decision(profile, client, denylist, code)
            equal, *detail = same(card_decision, code_decision)
            assert equal, (key, detail)
            assert not card_decision.online
            assert card_decision.accepted is status.usable, key
    finally:
        central_sim.set_faults(mode="none")
