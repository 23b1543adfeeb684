"""The masks themselves, asserted whole: a mask one character wider or narrower, or a
kept part that moved, must fail here (issue 23: several tests checked only a prefix)."""

from __future__ import annotations

import pytest

from sscard_terminal.privacy import (
    mask_card_number,
    mask_id_number,
    mask_name,
    mask_pan,
    mask_text,
)


@pytest.mark.parametrize(("name", "masked"), [
    ("张三丰", "张**"), ("刘思远", "刘**"), ("欧阳娜娜", "欧***"), ("李四", "李*"),
    ("王", "*"), ("", ""), ("Zhang San", "Z********"),
])
def test_mask_name_keeps_the_first_character_only(name: str, masked: str) -> None:
    assert mask_name(name) == masked


@pytest.mark.parametrize(("number", "masked"), [
    ("330302196001010037", "3303**********0037"),
    ("33030219751120007X", "3303**********007X"),
    ("330302199001011234", "3303**********1234"),
    # Shorter numbers (a foreign holder's social security number, Hainan §5) show no more
    # than a third of their characters, as an ID number does (issue 22, point 5).
    ("123456789", "12******9"),
    ("12345678", "1******8"),
    ("1234", "1***"), ("", ""),
])
def test_mask_id_number_keeps_the_region_and_the_last_four(number: str, masked: str) -> None:
    assert mask_id_number(number) == masked


@pytest.mark.parametrize(("number", "masked"), [
    ("W00000054", "W*******4"), ("D00000013", "D*******3"),
    ("123", "1*3"), ("12", "**"), ("1", "*"), ("", ""),
])
def test_mask_card_number_keeps_the_first_and_the_last(number: str, masked: str) -> None:
    assert mask_card_number(number) == masked


@pytest.mark.parametrize(("pan", "masked"), [
    ("6217000010000001234", "621700*********1234"),
    ("62170000100", "621700*0100"),        # eleven digits: one masked
    ("6217000010", "**********"),          # ten or fewer: all masked
    ("", ""),
])
def test_mask_pan_keeps_the_issuer_and_the_last_four(pan: str, masked: str) -> None:
    assert mask_pan(pan) == masked


@pytest.mark.parametrize("value", ["", "x", "张三丰", "330302196001010037"])
def test_mask_text_keeps_only_the_length(value: str) -> None:
    assert mask_text(value) == "*" * len(value)
