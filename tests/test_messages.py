"""Two languages (issue 19.6): every reason code, refusal, notice, e-code reason and card
status has a short message in Chinese and in English in one table, which the display, the
CLI and the local API share. A code without a message fails here."""

from __future__ import annotations

import enum

import pytest

from sscard_terminal.central.models import CardStatus
from sscard_terminal.cli.ecode_commands import describe
from sscard_terminal.decision.policy import Notice
from sscard_terminal.decision.rules import Outcome, Reason
from sscard_terminal.ecode import CodeKind, ECodeVerification
from sscard_terminal.ecode.reasons import Reason as ECodeReason
from sscard_terminal.local_api.desk import ecode_answer
from sscard_terminal.messages import MESSAGES, Lang, MessageKind, bilingual, message
from sscard_terminal.terminal.presentation import Presentation, PresentationRefusal

SOURCES: dict[MessageKind, type[enum.Enum]] = {
    MessageKind.REASON: Reason,
    MessageKind.REFUSAL: PresentationRefusal,
    MessageKind.NOTICE: Notice,
    MessageKind.ECODE: ECodeReason,
    MessageKind.STATUS: CardStatus,
}


def missing_messages(table: object = MESSAGES) -> list[str]:
    missing = []
    assert isinstance(table, dict)
    for kind, source in SOURCES.items():
        for member in source:
            pair = table.get(kind, {}).get(str(member.value))
            if pair is None or not all(pair):
                missing.append(f"{kind.value}:{member.value}")
    return missing


def test_every_code_has_a_message_in_both_languages() -> None:
    assert missing_messages() == []


def test_the_check_fails_on_a_missing_message() -> None:
    broken = {kind: dict(entries) for kind, entries in MESSAGES.items()}
    del broken[MessageKind.REASON]["card_lost"]
    broken[MessageKind.NOTICE]["renewal_due"] = ("", "renew")
    assert missing_messages(broken) == ["reason:card_lost", "notice:renewal_due"]


def test_the_table_holds_no_message_for_a_code_that_no_longer_exists() -> None:
    for kind, source in SOURCES.items():
        codes = {str(m.value) for m in source}
        assert set(MESSAGES[kind]) <= codes, kind


@pytest.mark.parametrize("kind", list(MessageKind))
def test_chinese_is_chinese_and_english_is_ascii(kind: MessageKind) -> None:
    for code, (zh, en) in MESSAGES[kind].items():
        assert any("\u4e00" <= c <= "\u9fff" for c in zh), code
        assert en.isascii() and en[0].isupper(), code


def test_an_unknown_code_is_shown_as_itself() -> None:
    assert message(MessageKind.REASON, "from_the_future") == "from_the_future"


def test_the_display_the_cli_and_the_local_api_share_the_table() -> None:
    shown = Presentation(channel="card", outcome=Outcome.REFUSE, reason="card_forged",
                         message="x", transaction_id="t", online=False, elapsed_ms=1.0)
    assert shown.event()["display"] == bilingual(MessageKind.REFUSAL, "card_forged")
    verification = ECodeVerification(False, ECodeReason.EXPIRED, "expired", CodeKind.OURS)
    assert f"  {message(MessageKind.ECODE, 'expired', Lang.ZH)} / " \
           f"{message(MessageKind.ECODE, 'expired', Lang.EN)}" in describe(verification)
    _, _, fields = ecode_answer(verification)
    assert fields["message_zh"] == MESSAGES[MessageKind.ECODE]["expired"][0]
    assert fields["message_en"] == MESSAGES[MessageKind.ECODE]["expired"][1]
