"""What a read of the social security application yields, as a typed value.

Raw record bytes are decoded here (GB 18030 names, BCD dates, region codes); the
reading itself is in :mod:`.ssse`. ``repr`` and ``str`` mask personal data; only
``to_dict(unmask=True)`` gives it in clear, for a technician's explicit opt-in.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from ..apdu.transport import CardInterface
from ..privacy import mask_card_number, mask_id_number, mask_name, mask_pan
from .atr import decode_atr
from .checksums import CheckResult, check_card_number, check_id_number

__all__ = [
    "ETHNICITY",
    "SEX",
    "CardInfo",
    "CardReadStatus",
    "decode_bcd_date",
    "decode_gb18030",
    "decode_region",
]

SEX = {"0": "unknown", "1": "male", "2": "female", "9": "unstated"}
ETHNICITY = {
    "01": "汉族", "02": "蒙古族", "03": "回族", "04": "藏族", "05": "维吾尔族", "06": "苗族",
    "07": "彝族", "08": "壮族", "09": "布依族", "10": "朝鲜族", "11": "满族", "12": "侗族",
    "13": "瑶族", "14": "白族", "15": "土家族", "16": "哈尼族", "17": "哈萨克族", "18": "傣族",
    "19": "黎族", "20": "傈僳族", "21": "佤族", "22": "畲族", "23": "高山族", "24": "拉祜族",
    "25": "水族", "26": "东乡族", "27": "纳西族", "28": "景颇族", "29": "柯尔克孜族", "30": "土族",
    "31": "达斡尔族", "32": "仫佬族", "33": "羌族", "34": "布朗族", "35": "撒拉族", "36": "毛南族",
    "37": "仡佬族", "38": "锡伯族", "39": "阿昌族", "40": "普米族", "41": "塔吉克族", "42": "怒族",
    "43": "乌孜别克族", "44": "俄罗斯族", "45": "鄂温克族", "46": "德昂族", "47": "保安族",
    "48": "裕固族", "49": "京族", "50": "塔塔尔族", "51": "独龙族", "52": "鄂伦春族",
    "53": "赫哲族",
    "54": "门巴族", "55": "珞巴族", "56": "基诺族", "97": "其他", "98": "外国血统中国籍人士",
}


def decode_gb18030(value: bytes) -> str:
    """A name field: GB 18030 (superset of GBK, so 4-byte rare characters survive),
    padding of 00 or 20 removed. Undecodable bytes become U+FFFD, never an exception."""
    return value.rstrip(b"\x00 ").decode("gb18030", errors="replace").strip()


def decode_bcd_date(value: bytes) -> _dt.date | None:
    """BCD YYYYMMDD; None when the bytes are not a real date (the caller warns)."""
    digits = value.hex()
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def decode_region(value: bytes) -> str:
    """A BCD region code; trailing FF padding dropped. Unknown codes are kept as-is
    (pooling areas such as 639900 are not counties and are never rejected)."""
    return value.hex().upper().rstrip("F")


@dataclass(frozen=True)
class CardReadStatus:
    """The card's status as the central gave it for this read (Hainan §32: a machine read
    is validated online), or plainly unknown when the central could not answer in time.

    ``status`` is a ``CardStatus`` value (``normal``, ``temporary_loss``, ``cancelled``,
    ...) or ``unknown`` with ``online`` False when the central was not reached.
    ``withheld`` says the holder data was removed from this read because of it.
    """

    status: str
    online: bool
    message: str
    withheld: bool = False

    @property
    def usable(self) -> bool:
        """Only a card the central calls normal; an unknown status is not a refusal."""
        return self.status == "normal"

    @property
    def known(self) -> bool:
        return self.online


@dataclass
class CardInfo:
    """Everything read from EF05/EF06 (and optionally the bank PAN).

    ``complete`` is False when items could not be read; ``incomplete_reason`` then
    says why in one line. ``warnings`` lists tolerated oddities (short records,
    lower-case data, bad check digits) that a technician should know about.
    """

    card_identification_code: str = ""
    card_type: str = ""
    spec_version: str = ""
    initialising_institution: str = ""
    issue_date: _dt.date | None = None
    expiry_date: _dt.date | None = None
    card_number: str = ""
    social_security_number: str = ""
    name: str = ""
    sex_code: str = ""
    ethnicity_code: str = ""
    birthplace: str = ""
    birth_date: _dt.date | None = None
    algorithm: int | None = None
    atr: bytes = b""
    interface: CardInterface = CardInterface.UNKNOWN
    reader: str = ""
    pan: str | None = None
    complete: bool = True
    incomplete_reason: str = ""
    authenticated_by: str | None = None
    warnings: list[str] = field(default_factory=list)
    card_status: CardReadStatus | None = None
    """Set when the read was checked with a central (None: no central configured)."""

    @property
    def region(self) -> str:
        """Issuing region: the first 6 characters of the card identification code."""
        return self.card_identification_code[:6]

    @property
    def generation(self) -> int | None:
        """1, 2 or 3, from the first digit of the specification version."""
        head = self.spec_version[:1]
        return int(head) if head.isdigit() else None

    @property
    def sex(self) -> str:
        return SEX.get(self.sex_code, "") if self.sex_code else ""

    @property
    def ethnicity(self) -> str:
        return ETHNICITY.get(self.ethnicity_code, "") if self.ethnicity_code else ""

    def expired(self, today: _dt.date | None = None) -> bool:
        """True when the expiry date has passed (unknown expiry: False)."""
        if self.expiry_date is None:
            return False
        return self.expiry_date < (today or _dt.date.today())

    @property
    def is_expired(self) -> bool:
        return self.expired()

    @property
    def id_number_check(self) -> CheckResult:
        return check_id_number(self.social_security_number)

    @property
    def card_number_check(self) -> CheckResult:
        return check_card_number(self.card_number)

    @property
    def historical_bytes(self) -> bytes:
        try:
            return decode_atr(self.atr).historical
        except ValueError:
            return b""

    def to_dict(self, unmask: bool = False) -> dict[str, Any]:
        """A JSON-ready dict; personal data masked unless ``unmask``.

        Its shape is fixed (docs/card-path.md, "JSON output"): every key is always present,
        and a field the card did not give is ``null``, never an empty string.
        """

        def date(value: _dt.date | None) -> str | None:
            return value.isoformat() if value else None

        data = {
            "reader": self.reader,
            "interface": self.interface.value,
            "atr": self.atr.hex().upper(),
            "generation": self.generation,
            "spec_version": self.spec_version,
            "card_identification_code": self.card_identification_code,
            "region": self.region,
            "card_type": self.card_type,
            "initialising_institution": self.initialising_institution,
            "issue_date": date(self.issue_date),
            "expiry_date": date(self.expiry_date),
            "expired": self.is_expired,
            "card_number": self.card_number if unmask else mask_card_number(self.card_number),
            "card_number_check": _check(self.card_number_check) if self.card_number else None,
            "social_security_number": self.social_security_number if unmask
            else mask_id_number(self.social_security_number),
            "social_security_number_check": _check(self.id_number_check)
            if self.social_security_number else None,
            "name": self.name if unmask else mask_name(self.name),
            "sex": self.sex_code,
            "sex_text": self.sex,
            "ethnicity": self.ethnicity_code,
            "ethnicity_text": self.ethnicity,
            # The masked ID number hides the district and the birth date; printing
            # both in clear beside it would give all 18 digits back.
            "birthplace": self.birthplace if unmask else _mask_region(self.birthplace),
            "birth_date": date(self.birth_date) if unmask or self.birth_date is None
            else f"{self.birth_date.year:04d}-**-**",
            "algorithm": self.algorithm,
            "pan": (self.pan if unmask else mask_pan(self.pan)) if self.pan else None,
            "complete": self.complete,
            "incomplete_reason": self.incomplete_reason,
            "authenticated_by": self.authenticated_by,
            "warnings": list(self.warnings),
            "card_status": None if self.card_status is None else {
                "status": self.card_status.status, "online": self.card_status.online,
                "message": self.card_status.message, "withheld": self.card_status.withheld},
        }
        return {key: None if value == "" else value for key, value in data.items()}

    def __repr__(self) -> str:
        return (
            f"CardInfo(reader={self.reader!r}, generation={self.generation}, "
            f"region={self.region!r}, card_number={mask_card_number(self.card_number)!r}, "
            f"social_security_number={mask_id_number(self.social_security_number)!r}, "
            f"name={mask_name(self.name)!r}, complete={self.complete}, "
            f"authenticated_by={self.authenticated_by!r})"
        )

    __str__ = __repr__


def _mask_region(code: str) -> str:
    """Keep the prefecture (first 4 digits), as :func:`mask_id_number` does."""
    return code[:4] + "*" * (len(code) - 4) if len(code) > 4 else code


def _check(result: CheckResult) -> dict[str, Any]:
    return {"rule": result.rule.name, "valid": result.valid}
