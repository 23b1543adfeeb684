"""The national unified reader interface's basic-information string and return codes.

``iReadCardBas`` answers a pipe-separated string with FIXED field positions (HIS code
indexes by position; a shift breaks it) and a trailing pipe::

    区划代码|社会保障号码|卡号|卡识别码|姓名|卡复位信息|规范版本|发卡日期|卡有效期|终端机编号|终端设备号|

and an integer return code: 0 on success, negative on failure, a refusing status
word as in :func:`code_for_sw`. The whole table is :class:`UnifiedCode`, documented in
docs/card-path.md.
"""

from __future__ import annotations

import datetime as _dt
import enum

from ... import errors
from ..card_info import CardInfo

__all__ = [
    "BASIC_INFO_FIELDS",
    "UnifiedCode",
    "code_for_sw",
    "format_basic_info",
    "unified_code_for",
    "unified_date",
]

BASIC_INFO_FIELDS = (
    "发卡地区行政区划代码", "社会保障号码", "卡号", "卡识别码", "姓名", "卡复位信息",
    "规范版本", "发卡日期", "卡有效期", "终端机编号", "终端设备号",
)


class UnifiedCode(enum.IntEnum):
    """Return codes of the unified interface.

    A refusing status word maps to its value negated, with a few words of their own
    (:func:`code_for_sw`); 63C2/63C1/63C0 after EXTERNAL AUTHENTICATE are the three
    ``EXTERNAL_AUTH_FAILED_*`` codes below.
    """

    OK = 0
    WRONG_CARD_TYPE = -1
    NO_CARD = -2
    CARD_NOT_POWERED = -3
    CARD_DOES_NOT_ANSWER = -4
    LIBRARY_LOAD_ERROR = -5
    READER_CONNECTION_ERROR = -11
    NO_CONNECTION = -12
    COMMAND_NOT_SUPPORTED = -13
    BAD_COMMAND_PARAMETERS = -14
    CHECKSUM_ERROR = -15
    BAD_CARD_IDENTIFICATION_CODE = -20
    INTERNAL_AUTH_FAILED = -21
    DATA_DOES_NOT_MATCH_CARD = -22
    ILLEGAL_INPUT = -23
    PSAM_KEY_LEVEL_TOO_LOW = -24
    HSM_MISMATCH = -25
    PIN_ENTRY_CANCELLED = -31
    PIN_ENTRY_TIMEOUT = -32
    PIN_WRONG_LENGTH = -33
    NEW_PINS_DIFFER = -34
    INITIAL_PIN_MAY_NOT_TRANSACT = -35
    MAY_NOT_CHANGE_TO_INITIAL_PIN = -36
    ILLEGAL_CHARACTERS = -41
    WRONG_DATA_LENGTH = -42
    PIN_WRONG = -51
    PIN_LOCKED = -52
    NO_PSAM = -2201
    PSAM_LACKS_ALGORITHM = -2202
    PSAM_NO_READ_KEY = -2203
    NO_HSM_AUTH_NEEDED = -2204
    EXTERNAL_AUTH_FAILED_2_LEFT = -25536
    EXTERNAL_AUTH_FAILED_1_LEFT = -25537
    EXTERNAL_AUTH_FAILED_0_LEFT = -25538
    UNKNOWN = -999


def unified_date(value: _dt.date | None) -> str:
    """A date as the unified interface writes it: ``YYYYMMDD``, empty when unknown."""
    return value.strftime("%Y%m%d") if value else ""


def format_basic_info(
    info: CardInfo,
    *,
    terminal_number: str = "",
    device_number: str = "",
    extra_fields: tuple[str, ...] = (),
    encoding: str | None = None,
) -> str | bytes:
    """The ``iReadCardBas`` string of ``info`` (UTF-8 text, or bytes in ``encoding``,
    e.g. ``"gbk"`` for DLL-world callers; GB 18030 is used for names GBK cannot hold).

    This string carries personal data in clear, as HIS software expects: callers
    must not log it. ``extra_fields`` are appended after 终端设备号 (regional
    variants append; nobody may reorder).
    """
    fields = [
        info.region,
        info.social_security_number,
        info.card_number[:9],
        info.card_identification_code,
        info.name.strip(),
        info.historical_bytes.hex().upper(),
        info.spec_version,
        unified_date(info.issue_date),
        unified_date(info.expiry_date),
        terminal_number,
        device_number,
        *extra_fields,
    ]
    text = "".join(f"{field.replace('|', '')}|" for field in fields)
    if encoding is None:
        return text
    try:
        return text.encode(encoding)
    except UnicodeEncodeError:
        # Rare characters beyond GBK survive in GB 18030, GBK's superset.
        return text.encode("gb18030")


# Status words whose codes in the deployed table are not the plain -SW (see
# docs/card-path.md, "Return codes": the spec's examples, kept as HIS software sees them).
_SW_EXCEPTIONS = {
    0x6C00: -26368,
    0x6700: -26369,
    0x6A86: -26370,
    0x6E00: -26371,
    0x6986: -26881,
    0x63C2: int(UnifiedCode.EXTERNAL_AUTH_FAILED_2_LEFT),
    0x63C1: int(UnifiedCode.EXTERNAL_AUTH_FAILED_1_LEFT),
    0x63C0: int(UnifiedCode.EXTERNAL_AUTH_FAILED_0_LEFT),
}


def code_for_sw(sw: int) -> int:
    """The return code of a refusing status word.

    The spec words the rule as "SW - 65536", but every example it gives (6A82 ->
    -27266, 6982 -> -27010, 9303 -> -37635) is the SW's value negated, five words
    have codes of their own (6C00, 6700, 6A86, 6E00, 6986) and 63C2/63C1/63C0 after
    EXTERNAL AUTHENTICATE are -25536/-25537/-25538 (2/1/0 tries left); the examples
    are what HIS software branches on, so they win.
    """
    if sw in _SW_EXCEPTIONS:
        return _SW_EXCEPTIONS[sw]
    return -sw


# One table, by family (errors.py draws the tree); most specific first, which CodeTable
# checks. Anything else, a central's failure included, is UNKNOWN.
_TABLE: errors.CodeTable[int] = errors.CodeTable([
    # InputError: the caller's own request (a malformed HSM key string)
    (errors.InputError, UnifiedCode.ILLEGAL_INPUT),
    # DeviceError: only the card reader reaches this interface
    (errors.NoCardError, UnifiedCode.NO_CARD),
    (errors.ReaderError, UnifiedCode.READER_CONNECTION_ERROR),
    # CardError: went away or garbled, refused, not our application, not genuine
    (errors.CardRemovedError, UnifiedCode.NO_CARD),
    (errors.CardTimeoutError, UnifiedCode.CARD_DOES_NOT_ANSWER),
    (errors.MalformedResponseError, UnifiedCode.DATA_DOES_NOT_MATCH_CARD),
    (errors.PinError,
     lambda exc: UnifiedCode.PIN_LOCKED if exc.locked else UnifiedCode.PIN_WRONG),
    (errors.CardRefusedError, lambda exc: code_for_sw(exc.sw)),
    (errors.NotSocialSecurityCardError, UnifiedCode.WRONG_CARD_TYPE),
    (errors.IncompleteCardError, UnifiedCode.NO_PSAM),
    (errors.ForgedCardError, UnifiedCode.INTERNAL_AUTH_FAILED),
    (errors.SecurityModuleUnavailableError, lambda exc: exc.code),
    (errors.SecurityModuleError, UnifiedCode.NO_PSAM),
    # the caller's budget ran out (typically waiting for the card)
    (errors.DeadlineExceededError, UnifiedCode.CARD_DOES_NOT_ANSWER),
], default=int(UnifiedCode.UNKNOWN))

# The HSM two-step: an internal authentication that disagrees with the HSM is -25.
_TWO_STEP_TABLE = _TABLE.replacing(errors.ForgedCardError, UnifiedCode.HSM_MISMATCH)


def unified_code_for(exc: BaseException, *, hsm: bool = False) -> int:
    """The unified return code for an error of ours: the one table for the card path
    and read authentication (:mod:`.hsm_steps` uses it too).

    A refusing status word maps as :func:`code_for_sw` (its value negated, or the
    spec's own codes: 63C2/63C1/63C0 -> -25536/-25537/-25538). A security module that
    cannot serve the card carries its own code (-2201/-2202/-2203, -999 when the central
    HSM is unreachable). A malformed request of the caller (:class:`InputError`) is -23.
    ``hsm`` says the error came from the HSM two-step, where an internal authentication
    that disagrees is -25 rather than -21.
    """
    return int((_TWO_STEP_TABLE if hsm else _TABLE).code_for(exc))
