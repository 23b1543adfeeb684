"""Hostile cards: whatever bytes a card answers, the read path raises only our own
errors (or reads), never IndexError, UnicodeError or a hang."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sscard_hardware_sim.virtual_card import VirtualCard

from sscard_terminal.cards.ssse import read_card_info
from sscard_terminal.drivers.sim import SimTransport
from sscard_terminal.errors import MalformedResponseError, SscardError


class _Hostile:
    """The genuine gen-2 card, except that chosen answers are replaced by garbage."""

    def __init__(self, garbage: list[bytes], every: int) -> None:
        self.card = VirtualCard.from_holder("gen2-adult")
        self.garbage = garbage
        self.every = every
        self.count = 0

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def power_on(self) -> None:
        self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def transmit(self, apdu: bytes) -> bytes:
        self.count += 1
        answer = self.card.transmit(apdu)
        if self.garbage and self.count % self.every == 0:
            return self.garbage[self.count % len(self.garbage)]
        return answer


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=5), st.integers(1, 16))
def test_garbage_answers_raise_only_our_errors(garbage: list[bytes], every: int) -> None:
    with SimTransport(_Hostile(garbage, every)) as transport:
        try:
            info = read_card_info(transport)
        except SscardError:
            return
    # If it read, it read something we can still present without crashing.
    assert isinstance(repr(info), str) and isinstance(info.to_dict(), dict)


def test_64_kib_of_garbage_is_malformed() -> None:
    with SimTransport(_Hostile([b"\x09\xff" + b"\xa5" * 65536 + b"\x90\x00"], 3)) as transport:
        try:
            read_card_info(transport)
        except MalformedResponseError:
            return
    raise AssertionError("64 KiB of garbage was accepted")
