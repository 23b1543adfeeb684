"""The lane state machine: legal moves only, every move logged and counted, capped backoff."""

from __future__ import annotations

import logging

import pytest

from sscard_terminal.daemon.lane import (
    RECOVERY_DEADLINE_S,
    TRANSITIONS,
    Backoff,
    IllegalTransitionError,
    LaneKind,
    LaneState,
    LaneStateMachine,
)

S = LaneState


class HandClock:
    def __init__(self) -> None:
        self.t = 50.0

    def __call__(self) -> float:
        return self.t


def test_a_card_tap_walks_the_whole_cycle_and_is_counted() -> None:
    clock = HandClock()
    lane = LaneStateMachine("front", LaneKind.CARD, clock=clock)
    for target in (S.CARD_PRESENT, S.READING, S.DECIDING, S.SHOWING, S.WAITING_FOR_REMOVAL,
                   S.IDLE):
        clock.t += 0.01
        lane.to(target, "test")
    counters = lane.counters()
    assert counters["transition.idle.card_present"] == 1
    assert counters["transition.waiting_for_removal.idle"] == 1
    assert counters["entered.showing"] == 1
    assert lane.state is S.IDLE


def test_a_scanner_lane_skips_card_present_and_removal() -> None:
    lane = LaneStateMachine("scanner", LaneKind.SCANNER)
    for target in (S.READING, S.DECIDING, S.SHOWING, S.IDLE):
        lane.to(target, "code")
    assert lane.counters()["transition.showing.idle"] == 1


@pytest.mark.parametrize("source,target", [
    (S.IDLE, S.DECIDING),               # a decision without a read
    (S.IDLE, S.SHOWING),
    (S.CARD_PRESENT, S.DECIDING),
    (S.READING, S.SHOWING),             # a read never shows without a decision
    (S.LOST, S.IDLE),                   # back only through recovering
    (S.RECOVERING, S.READING),
    (S.WAITING_FOR_REMOVAL, S.READING), # the same card is not read twice
])
def test_illegal_moves_raise_and_change_nothing(source: LaneState, target: LaneState) -> None:
    lane = LaneStateMachine("front", LaneKind.CARD)
    lane._state = source             # place it directly: the path there is not the point
    before = lane.counters()
    with pytest.raises(IllegalTransitionError, match=f"{source.value} -> {target.value}"):
        lane.to(target, "test")
    assert lane.state is source
    assert lane.counters() == before


def test_every_table_entry_is_legal_and_everything_else_illegal() -> None:
    for source in LaneState:
        for target in LaneState:
            lane = LaneStateMachine("x", LaneKind.CARD)
            lane._state = source
            if target in TRANSITIONS[source]:
                lane.to(target, "t")
                assert lane.state is target
            else:
                with pytest.raises(IllegalTransitionError):
                    lane.to(target, "t")


def test_every_working_state_can_be_lost() -> None:
    for source in LaneState:
        if source not in (S.LOST, S.RECOVERING):
            assert S.LOST in TRANSITIONS[source], source


def test_a_quick_swap_is_a_new_card_present() -> None:
    lane = LaneStateMachine("front", LaneKind.CARD)
    for target in (S.CARD_PRESENT, S.READING, S.DECIDING, S.SHOWING, S.WAITING_FOR_REMOVAL,
                   S.CARD_PRESENT):
        lane.to(target, "t")
    assert lane.counters()["entered.card_present"] == 2


def test_moves_are_logged_without_card_data(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sscard_terminal.daemon.lane")
    lane = LaneStateMachine("front", LaneKind.CARD)
    lane.to(S.LOST, "ReaderUnavailableError")
    lane.to(S.RECOVERING, "attempt 1")
    messages = [r.getMessage() for r in caplog.records]
    assert any("lane front: idle -> lost" in m and "ReaderUnavailableError" in m
               for m in messages)
    assert caplog.records[0].levelno == logging.WARNING
    assert any("lost -> recovering" in m for m in messages)


def test_recovery_counts_and_resets_backoff() -> None:
    lane = LaneStateMachine("front", LaneKind.CARD, backoff=Backoff(initial=0.1, cap=0.8))
    lane.to(S.LOST, "gone")
    delays = []
    for _ in range(5):
        lane.to(S.RECOVERING, "attempt")
        delays.append(lane.backoff.next_delay())
        lane.to(S.LOST, "still gone")
    assert delays == [0.1, 0.2, 0.4, 0.8, 0.8]
    lane.to(S.RECOVERING, "attempt")
    lane.to(S.IDLE, "back")
    assert lane.counters()["recovered"] == 1
    assert lane.backoff.next_delay() == 0.1


def test_backoff_cap_keeps_a_lane_within_the_recovery_deadline() -> None:
    backoff = Backoff()
    assert max(backoff.next_delay() for _ in range(50)) < RECOVERY_DEADLINE_S
    with pytest.raises(ValueError, match="past"):
        Backoff(cap=RECOVERY_DEADLINE_S)
    with pytest.raises(ValueError):
        Backoff(initial=0.0)
    with pytest.raises(ValueError):
        Backoff(initial=0.5, cap=0.2)
    with pytest.raises(ValueError):
        Backoff(factor=0.5)


def test_seconds_in_state_follows_the_injected_clock() -> None:
    clock = HandClock()
    lane = LaneStateMachine("front", LaneKind.CARD, clock=clock)
    clock.t += 3.0
    assert lane.seconds_in_state() == 3.0
    lane.to(S.CARD_PRESENT, "t")
    assert lane.seconds_in_state() == 0.0


def test_extra_counts_sit_beside_transitions() -> None:
    lane = LaneStateMachine("front", LaneKind.CARD)
    lane.count("presentations.accept")
    lane.count("presentations.accept")
    assert lane.counters() == {"presentations.accept": 2}
