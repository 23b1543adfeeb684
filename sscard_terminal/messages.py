"""One table of short messages, in Chinese and in English, for every stable code a holder,
an operator or a desk's software sees: the decision's reasons, the presentation's
refusals, the notices, the e-code verifier's reasons and the card statuses.

The display (``Presentation.event()``), the CLI and the local API all take their words from
here, so a reason reads the same wherever it shows. The codes stay the stable interface;
these messages may be reworded. ``tests/test_messages.py`` fails when a code of any of
those enums has no message in either language.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

__all__ = ["MESSAGES", "Lang", "MessageKind", "bilingual", "message"]


class Lang(enum.StrEnum):
    ZH = "zh"
    EN = "en"


class MessageKind(enum.StrEnum):
    REASON = "reason"        # decision.rules.Reason
    REFUSAL = "refusal"      # terminal.presentation.PresentationRefusal
    NOTICE = "notice"        # decision.policy.Notice
    ECODE = "ecode"          # ecode.reasons.Reason
    STATUS = "status"        # central.models.CardStatus (a desk read's card_status)


MESSAGES: Mapping[MessageKind, Mapping[str, tuple[str, str]]] = {
    MessageKind.REASON: {
        "accepted": ("通过", "Accepted"),
        "card_lost": ("此卡已挂失", "This card is reported lost"),
        "card_void": ("此卡已作废，请使用新卡或电子社保卡",
                      "This card is void: use the new card or the e-card"),
        "card_suspended": ("此卡应用已中止，请咨询社保卡服务网点",
                           "This card is suspended: ask the card office"),
        "card_expired": ("此卡已过有效期，请换领新卡", "This card has expired: please renew it"),
        "card_unknown": ("无法识别此卡", "This card is not known"),
        "denylisted": ("此卡不能使用", "This card cannot be used"),
        "application_off": ("此卡未开通本项应用", "This service is switched off for this card"),
        "anti_passback": ("请勿重复刷卡", "Already used: please do not tap twice"),
        "offline_limit": ("网络中断，暂停脱机使用", "Offline too long: card not accepted now"),
        "denylist_stale": ("网络中断，暂无法核验",
                           "Offline and out of date: cannot check the card"),
        "offline_not_allowed": ("网络中断，请稍候", "The central cannot be reached: please wait"),
        "ecode_refused": ("此码无效，请刷新后重试",
                          "This code is not valid: refresh it and try again"),
        "ecode_kind_not_accepted": ("本机不受理此类二维码",
                                    "This kind of code is not accepted here"),
        "online_only_code": ("此码需联网核验，请刷实体卡或联网后再扫",
                             "Needs the network: tap your card, or scan again when online"),
        "card_not_authenticated": ("此卡未通过安全认证", "This card could not be authenticated"),
        "card_from_elsewhere": ("本服务仅限本地社保卡", "This service is for local cards only"),
        "identity_offline_not_allowed": ("网络中断，暂不能核验身份",
                                         "Offline: identity cannot be checked now"),
        "identity_not_authenticated": ("身份核验须经安全认证读卡",
                                       "Identity needs an authenticated card read"),
    },
    MessageKind.REFUSAL: {
        "card_forged": ("此卡未通过真伪验证", "This card failed the authenticity check"),
        "not_social_security_card": ("这不是社会保障卡", "This is not a social security card"),
        "card_removed": ("读卡中断，请重新刷卡", "The card was taken away: tap again"),
        "card_unreadable": ("无法读取此卡", "This card cannot be read"),
        "card_refused": ("此卡拒绝操作", "The card refused the operation"),
        "security_module_unavailable": ("安全模块不可用，请稍候",
                                        "Security module unavailable: please wait"),
        "reader_unavailable": ("读卡器不可用", "The card reader is unavailable"),
        "read_timeout": ("读卡超时，请重新刷卡", "Reading took too long: tap again"),
        "read_failed": ("读卡失败，请重新刷卡", "The read failed: tap again"),
        "journal_full": ("记录已满，暂停受理", "Records full: not accepting now"),
        "journal_unavailable": ("无法记录，暂停受理", "Cannot record: not accepting now"),
    },
    MessageKind.NOTICE: {
        "from_elsewhere": ("异地卡，按全价", "Card from elsewhere: full fare"),
        "renewal_due": ("此卡将于三个月内到期，请及时换领",
                        "This card expires within 3 months: please renew it"),
        "expired_accepted": ("此卡已过期，本次受理，请尽快换领",
                             "This card has expired: accepted this time, please renew it"),
        "status_unknown": ("网络中断，卡状态未核验", "Offline: the card's status was not checked"),
        "concession_by_age": ("按年龄享受优惠", "Concession by age"),
        "identity_released": ("已向本机业务系统提供身份信息",
                              "Identity given to this desk's system"),
    },
    MessageKind.ECODE: {
        "accepted": ("二维码有效", "The code is valid"),
        "malformed": ("二维码无法识别", "The code cannot be read"),
        "bad_payload": ("二维码内容无效", "The code's content is not valid"),
        "unsupported_algorithm": ("二维码签名算法不受支持",
                                  "The code's signature algorithm is not supported"),
        "unknown_kid": ("二维码签发密钥未知", "The code's signing key is not known"),
        "revoked_kid": ("二维码签发密钥已吊销", "The code's signing key is revoked"),
        "key_out_of_validity": ("二维码签发密钥已失效",
                                "The code's signing key was not valid then"),
        "bad_signature": ("二维码签名无效", "The code's signature is not valid"),
        "not_yet_valid": ("二维码尚未生效，请检查时间",
                          "The code is not valid yet: check the time"),
        "expired": ("二维码已过期，请刷新", "The code has expired: refresh it"),
        "replayed": ("二维码已使用，请刷新", "The code was already used: refresh it"),
        "replay_check_failed": ("无法核验二维码，请稍候", "The code cannot be checked now"),
        "unknown_kind": ("无法识别此类二维码", "This kind of code is not recognised"),
        "no_trust_list": ("暂无法核验二维码，请刷实体卡",
                          "Codes cannot be checked now: tap your card"),
        "central_unreachable": ("此码需联网核验，请刷实体卡",
                                "This code needs the network: tap your card"),
        "deferred": ("此码需联网核验，请稍候", "This code needs the network: please wait"),
        "card_not_usable": ("此码对应的卡不能使用", "The card behind this code cannot be used"),
        "central_refused": ("二维码未通过核验", "The code was refused"),
    },
    MessageKind.STATUS: {
        "normal": ("正常", "Normal"),
        "temporary_loss": ("临时挂失", "Temporarily reported lost"),
        "formal_loss": ("正式挂失", "Reported lost"),
        "replaced": ("已补领新卡，原卡作废", "Replaced: this card is void"),
        "renewed": ("已换领新卡，原卡作废", "Renewed: this card is void"),
        "cancelled": ("已注销", "Cancelled"),
        "expired": ("已过有效期", "Expired"),
        "suspended": ("应用已中止", "Suspended"),
        "unknown": ("状态未知", "Status unknown"),
    },
}


def message(kind: MessageKind, code: str, lang: Lang = Lang.ZH) -> str:
    """The short message for ``code``; the code itself when the table has none (a newer
    code than this table: shown as is rather than hidden)."""
    pair = MESSAGES[kind].get(code)
    if pair is None:
        return code
    return pair[0] if lang is Lang.ZH else pair[1]


def bilingual(kind: MessageKind, code: str) -> dict[str, str]:
    """``{"zh": ..., "en": ...}`` for a display or an API answer."""
    return {lang.value: message(kind, code, lang) for lang in Lang}
