"""The passenger display's words, in Chinese and English: an interim table.

Issue 19 builds the shared bilingual message table (``sscard_terminal/messages.py``, on
its own branch), from which ``Presentation.event()`` gains a ``display`` field
(``{"zh": ..., "en": ...}``). :func:`display_view` prefers that field when an event carries
it; this table answers until then, and for the display's own lines (headlines, fares,
concessions, the renewal notice). When the shared table lands, its reason texts replace
``REASONS`` here and this module keeps only what is the display's alone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = ["CONCESSIONS", "HEADLINES", "IDLE", "REASONS", "display_view"]

Text = dict[str, str]


def _t(zh: str, en: str) -> Text:
    return {"zh": zh, "en": en}


HEADLINES: Mapping[str, Text] = {
    "accept": _t("请通行", "Go ahead"),
    "refuse": _t("未通过", "Not accepted"),
    "defer": _t("请稍候", "Please wait"),
}
IDLE = _t("请刷卡或扫码", "Tap your card or scan your code")

REASONS: Mapping[str, Text] = {
    "accepted": _t("验证通过", "Accepted"),
    "card_lost": _t("卡已挂失", "Card reported lost"),
    "card_void": _t("此卡已作废，请使用新卡", "This card is void: use your new card"),
    "card_suspended": _t("此卡已暂停使用", "This card is suspended"),
    "card_expired": _t("此卡已过有效期，请换领", "This card has expired: please renew it"),
    "card_unknown": _t("无法识别此卡", "This card is not known"),
    "denylisted": _t("此卡不能使用", "This card cannot be used"),
    "application_off": _t("此卡未开通本项服务", "This service is off for this card"),
    "anti_passback": _t("请勿重复刷卡", "Already used: do not tap twice"),
    "offline_limit": _t("网络中断，暂停脱机使用", "Offline too long: not accepted now"),
    "denylist_stale": _t("网络中断，暂无法核验", "Offline: the card cannot be checked"),
    "offline_not_allowed": _t("网络中断，请稍候", "The network is down: please wait"),
    "ecode_refused": _t("此码无效，请刷新后重试", "Code not valid: refresh and try again"),
    "ecode_kind_not_accepted": _t("本机不受理此类二维码", "This kind of code is not accepted"),
    "online_only_code": _t("此码需联网核验，请刷实体卡", "Needs the network: tap your card"),
    "card_forged": _t("此卡未通过真伪验证", "Card failed the authenticity check"),
    "not_social_security_card": _t("这不是社会保障卡", "This is not a social security card"),
    "card_removed": _t("读卡中断，请重新刷卡", "Card taken away too soon: tap again"),
    "card_unreadable": _t("无法读取此卡", "This card cannot be read"),
    "card_refused": _t("此卡拒绝操作", "The card refused"),
    "security_module_unavailable": _t("安全模块不可用，请稍候", "Please wait: security module"),
    "reader_unavailable": _t("读卡器不可用", "Card reader unavailable"),
    "read_timeout": _t("读卡超时，请重新刷卡", "Reading took too long: tap again"),
    "read_failed": _t("读卡失败，请重新刷卡", "Read failed: tap again"),
    "journal_full": _t("暂停受理", "Not accepting now"),
    "journal_unavailable": _t("暂停受理", "Not accepting now"),
}

CONCESSIONS: Mapping[str, Text] = {
    "senior": _t("老年优待", "Senior"),
    "disabled": _t("残疾人优待", "Disability"),
    "veteran": _t("优抚对象优待", "Veteran"),
    "teacher": _t("教师优待", "Teacher"),
    "volunteer": _t("志愿者优待", "Volunteer"),
    "union_member": _t("工会会员优待", "Union member"),
    "child": _t("儿童优待", "Child"),
}

_MONTHS_EN = ("January", "February", "March", "April", "May", "June", "July", "August",
              "September", "October", "November", "December")
_RENEWAL = re.compile(r"^(\d{4})-(\d{2})$")
_CODE = re.compile(r"^[a-z_]{1,40}$")


def _fare(percent: int) -> Text:
    if percent <= 0:
        return _t("免费", "Free")
    if percent == 50:
        return _t("半价", "Half fare")
    return _t(f"{percent / 10:g}折", f"{percent}% fare")


def _reason(event: Mapping[str, Any]) -> Text | None:
    shared = event.get("display")
    if isinstance(shared, Mapping) and isinstance(shared.get("zh"), str) \
            and isinstance(shared.get("en"), str):
        return {"zh": shared["zh"], "en": shared["en"]}
    code = event.get("reason")
    if code == "accepted":
        return None  # the headline says it; the shared table's text adds notices
    code = code if isinstance(code, str) and _CODE.match(code) else ""
    return dict(REASONS.get(code, _t("请咨询工作人员", "Please ask the staff")))


def _renewal(value: object) -> Text | None:
    match = _RENEWAL.match(value) if isinstance(value, str) else None
    if match is None or not 1 <= int(match.group(2)) <= 12:
        return None
    year, month = match.group(1), int(match.group(2))
    return _t(f"社保卡将于{year}年{month}月到期，请及时换领",
              f"Your card expires in {_MONTHS_EN[month - 1]} {year}: please renew it")


def display_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """What the passenger display shows for one presentation event: the outcome, the
    headline and the reason in both languages, the concession, the renewal notice, the
    online flag and at most the masked name the daemon chose to show (``display_name``,
    set only when the profile allows). Nothing else of the event reaches the page: not
    ``holder``, not the transaction id."""
    given = event.get("outcome")
    outcome = given if isinstance(given, str) and given in HEADLINES else "refuse"
    if outcome == "accept" and event.get("journaled") is False:
        # Never shown as accepted before it is journaled (issue 17): the pipeline does not
        # produce this, and the display does not believe it if something else does.
        outcome, event = "refuse", {**event, "reason": "journal_unavailable", "display": None}
    concession = None
    fare = event.get("fare_percent")
    code = event.get("concession")
    if outcome == "accept" and isinstance(code, str) and code in CONCESSIONS:
        label = CONCESSIONS[code]
        fare_text = _fare(fare) if isinstance(fare, int) and not isinstance(fare, bool) \
            else _t("", "")
        concession = {lang: f"{label[lang]} {fare_text[lang]}".strip() for lang in label}
    name = event.get("display_name")
    return {
        "type": "presentation",
        "seq": event.get("seq"),
        "lane": event.get("lane") if isinstance(event.get("lane"), str) else "",
        "outcome": outcome,
        "headline": dict(HEADLINES[outcome]),
        "reason": _reason(event),
        "concession": concession,
        "renewal": _renewal(event.get("renewal_due")),
        "online": event.get("online") is True,
        "name": name if isinstance(name, str) and "*" in name and len(name) <= 8 else None,
    }
