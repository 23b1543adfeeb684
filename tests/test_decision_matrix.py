"""The decision matrix (issue 19.8): every shipped profile x every card status (normal,
temporary loss 15 days and open-ended, formal loss, replaced, renewed, cancelled, expired,
suspended, unknown) x card and e-code x online and offline, decided by the real pipeline,
must equal the table in docs/decision.md; and the table itself must say what the
regulations ask (a void or lost card refused everywhere, online and offline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_harness import CentralSim

from sscard_terminal.profiles import BUILTIN_PROFILES

from . import decision_matrix as dm

pytestmark = pytest.mark.timeout(300)

Matrix = dict[tuple[str, str], tuple[str, ...]]


@pytest.fixture(scope="module")
def actual(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    workdir = tmp_path_factory.mktemp("matrix")
    sim = CentralSim(workdir / "central.db")
    try:
        yield dm.compute(sim, workdir)
    finally:
        sim.stop()


def test_the_docs_table_is_what_the_pipeline_decides(actual: Matrix) -> None:
    documented = dm.parse(dm.DOC.read_text(encoding="utf-8"))
    assert set(documented) == set(actual), "profiles or statuses differ: regenerate"
    differing = {cell: (documented[cell], actual[cell]) for cell in actual
                 if documented[cell] != actual[cell]}
    assert not differing, ("docs/decision.md differs from the code "
                           f"(python -m tests.decision_matrix --write): {differing}")


def test_the_matrix_covers_every_profile_status_channel_and_mode(actual: Matrix) -> None:
    assert {profile for profile, _ in actual} == set(BUILTIN_PROFILES)
    assert {status for _, status in actual} == set(dm.STATUSES)
    assert all(len(cells) == len(dm.COLUMNS) == 4 for cells in actual.values())


@pytest.mark.parametrize(("status", "reason"), [
    ("temporary loss, 15 days", "card_lost"), ("temporary loss, open-ended", "card_lost"),
    ("formal loss", "card_lost"), ("replaced", "card_void"), ("renewed", "card_void"),
    ("cancelled", "card_void"), ("suspended", "card_suspended")])
def test_a_lost_void_or_suspended_card_is_refused_everywhere_card_and_code_alike(
        actual: Matrix, status: str, reason: str) -> None:
    for profile in BUILTIN_PROFILES:
        assert actual[(profile, status)] == (f"refuse {reason}",) * 4, profile


def test_a_normal_card_passes_online_everywhere_and_card_and_code_agree(
        actual: Matrix) -> None:
    for (profile, status), (card_on, card_off, code_on, code_off) in actual.items():
        assert (card_on, card_off) == (code_on, code_off), (profile, status)  # 卡码同权
        if status == "normal":
            assert card_on == "accept accepted", profile


def test_the_check_fails_when_the_docs_say_otherwise(actual: Matrix, tmp_path: Path) -> None:
    doc = tmp_path / "decision.md"
    doc.write_text("# x\n", encoding="utf-8")
    tampered = dict(actual)
    tampered[("bus-validator", "cancelled")] = ("accept accepted",) * 4
    dm.write(tampered, doc)
    assert dm.parse(doc.read_text(encoding="utf-8")) != actual
    dm.write(actual, doc)
    assert dm.parse(doc.read_text(encoding="utf-8")) == actual
