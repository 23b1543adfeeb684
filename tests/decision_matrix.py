"""The decision matrix (issue 19.8): every shipped profile x every card status x card and
e-code x online and offline, decided by the real pipeline (the decision engine with the
central simulator over HTTP, the real denylist and the real e-code verifier).

``docs/decision.md`` holds the same matrix as a table between two markers;
``tests/test_decision_matrix.py`` computes it and fails when the two differ, so the docs
cannot drift from the code. After a deliberate change, regenerate the table with
``python -m tests.decision_matrix --write`` and read the diff.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from sscard_hardware_sim import central_lifecycle as life
from sscard_hardware_sim.central_ecodes import issue_code
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS, CentralStore

from sscard_terminal.central.client import CentralClient
from sscard_terminal.central.models import Channel, card_ref
from sscard_terminal.deadline import Deadline
from sscard_terminal.decision import Decision, DecisionEngine, Denylist, PresentedCredential
from sscard_terminal.decision.policy import Authentication
from sscard_terminal.ecode import (
    CentralTrustListProvider,
    ECodeIssuer,
    ECodeVerifier,
    MemoryReplayCache,
)
from sscard_terminal.profiles import BUILTIN_PROFILES, load_profile

DOC = Path(__file__).resolve().parent.parent / "docs" / "decision.md"
BEGIN = "<!-- decision-matrix:begin (generated: python -m tests.decision_matrix --write) -->"
END = "<!-- decision-matrix:end -->"

# status -> the demo card that carries it once prepare() has run (None: a card the
# central does not know)
STATUSES: dict[str, str | None] = {
    "normal": "normal",
    "temporary loss, 15 days": "temporary_loss",
    "temporary loss, open-ended": "disabled",
    "formal loss": "formal_loss",
    "replaced": "spare",
    "renewed": "spare2",
    "cancelled": "cancelled",
    "expired": "expired",
    "suspended": "suspended",
    "unknown": None,
}
COLUMNS = ("card online", "card offline", "code online", "code offline")
UNKNOWN_IDCODE = "330300D156000005" + hashlib.sha256(b"matrix-unknown").hexdigest()[:16].upper()
UNKNOWN_NUMBER = "U00000017"


def prepare(store: CentralStore) -> None:
    """Bring the demo cards to the statuses of the matrix."""
    today = dt.date.today()
    life.report_temporary_loss(store, DEMO_CARDS["disabled"].card_number, today,
                               open_ended=True)
    life.apply_replacement(store, DEMO_CARDS["spare"].card_number, today)
    life.renew(store, DEMO_CARDS["spare2"].card_number, today)


def _cell(decision: Decision) -> str:
    text = f"{decision.outcome.value} {decision.reason.value}"
    if decision.notices:
        text += " (" + ", ".join(decision.notices) + ")"
    return text


def _tap(store: CentralStore, key: str | None) -> PresentedCredential:
    """An authenticated read (generation 3 through a PSAM) of the status's card."""
    if key is None:
        return PresentedCredential.from_card(
            Channel.CONTACT, card_identification_code=UNKNOWN_IDCODE,
            card_number=UNKNOWN_NUMBER, chip_expiry=dt.date.today() + dt.timedelta(days=900),
            authentication=Authentication.PSAM, generation=3)
    row = store.card_by_number(DEMO_CARDS[key].card_number)
    assert row is not None
    return PresentedCredential.from_card(
        Channel.CONTACT, card_identification_code=row.identification_code,
        card_number=row.card_number, chip_expiry=dt.date.fromisoformat(row.expires_on),
        authentication=Authentication.PSAM, generation=3)


def _code(store: CentralStore, key: str | None) -> str:
    if key is not None:
        return issue_code(store, DEMO_CARDS[key].card_number)
    issuer = ECodeIssuer(b"sim-es256-1", store.signer_private_key("sim-es256-1"))
    return issuer.issue(card_ref(bytes.fromhex(UNKNOWN_IDCODE)), UNKNOWN_IDCODE[:6])


def compute(sim: CentralSim, workdir: Path) -> dict[tuple[str, str], tuple[str, ...]]:
    """The matrix, decided for real: (profile, status) -> one cell per column."""
    prepare(sim.store)
    matrix: dict[tuple[str, str], tuple[str, ...]] = {}
    with sim.make_client() as client, Denylist.open(workdir / "denylist.db") as denylist:
        denylist.refresh(client, deadline=Deadline.after(5))
        trust = CentralTrustListProvider(client)
        trust.trust_list(Deadline.after(5))
        for name in BUILTIN_PROFILES:
            profile = load_profile(name)
            for status, key in STATUSES.items():
                cells = []
                for central, channel in ((client, "card"), (None, "card"),
                                         (client, "code"), (None, "code")):
                    credential = _credential(sim.store, key, channel, trust, central)
                    engine = DecisionEngine(profile, central=central, denylist=denylist)
                    cells.append(_cell(engine.decide(credential, deadline=Deadline.after(5))))
                matrix[(name, status)] = tuple(cells)
    return matrix


def _credential(store: CentralStore, key: str | None, channel: str,
                trust: CentralTrustListProvider,
                central: CentralClient | None) -> PresentedCredential:
    if channel == "card":
        return _tap(store, key)
    verifier = ECodeVerifier(trust, MemoryReplayCache(), central=central)
    return PresentedCredential.from_verification(
        verifier.verify(_code(store, key), deadline=Deadline.after(5)))


def render(matrix: dict[tuple[str, str], tuple[str, ...]]) -> str:
    lines = [BEGIN, "", "| profile | card status | " + " | ".join(COLUMNS) + " |",
             "|---|---|" + "---|" * len(COLUMNS)]
    for (profile, status), cells in matrix.items():
        lines.append(f"| {profile} | {status} | " + " | ".join(cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def parse(text: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """The matrix as docs/decision.md states it."""
    if BEGIN not in text or END not in text:
        raise ValueError("docs/decision.md has no decision matrix between its markers")
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    matrix = {}
    for line in body.splitlines():
        if not line.startswith("| ") or line.startswith("| profile |"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        matrix[(cells[0], cells[1])] = tuple(cells[2:])
    return matrix


def write(matrix: dict[tuple[str, str], tuple[str, ...]], doc: Path = DOC) -> None:
    text = doc.read_text(encoding="utf-8")
    table = render(matrix)
    if BEGIN in text:
        head, rest = text.split(BEGIN, 1)
        text = head + table + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    doc.write_text(text, encoding="utf-8")


def run(action: Callable[[dict[tuple[str, str], tuple[str, ...]]], None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sim = CentralSim(Path(tmp) / "central.db")
        try:
            action(compute(sim, Path(tmp)))
        finally:
            sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help="rewrite docs/decision.md")
    args = parser.parse_args(argv)
    run(write if args.write else lambda m: print(render(m)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
