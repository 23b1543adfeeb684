"""ISO 7816-4 status words as an IntEnum, with meanings a technician can read."""

from __future__ import annotations

import enum

__all__ = ["SW", "describe_sw"]


class SW(enum.IntEnum):
    """Status words the terminal branches on (the full table is in :func:`describe_sw`)."""

    OK = 0x9000
    WARNING_NV_UNCHANGED = 0x6200
    END_OF_FILE = 0x6282
    SELECTED_FILE_INVALIDATED = 0x6283
    WRONG_FCI = 0x6284
    WARNING_NV_CHANGED = 0x6300
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    COMMAND_INCOMPATIBLE = 0x6981
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    COMMAND_NOT_ALLOWED_NO_EF = 0x6986
    SM_DATA_MISSING = 0x6987
    SM_DATA_INCORRECT = 0x6988
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00
    APPLICATION_BLOCKED = 0x9303


_EXACT: dict[int, str] = {
    0x9000: "success",
    0x6200: "warning: non-volatile memory unchanged",
    0x6281: "warning: part of the returned data may be corrupted",
    0x6282: "warning: end of file or record reached before reading Le bytes",
    0x6283: "warning: selected file invalidated",
    0x6284: "warning: FCI not formatted per ISO 7816-4",
    0x6300: "warning: non-volatile memory changed (authentication failed)",
    0x6581: "memory failure",
    0x6700: "wrong length (Lc or Le)",
    0x6881: "logical channel not supported",
    0x6882: "secure messaging not supported",
    0x6981: "command incompatible with file structure",
    0x6982: "security status not satisfied (authenticate first)",
    0x6983: "authentication method blocked (PIN or key locked)",
    0x6984: "reference data not usable",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6987: "expected secure messaging data objects missing",
    0x6988: "incorrect secure messaging data objects",
    0x6A80: "incorrect parameters in the data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A84: "not enough memory space in the file",
    0x6A86: "incorrect parameters P1-P2",
    0x6A88: "referenced data (key) not found",
    0x6B00: "wrong parameters P1-P2",
    0x6D00: "instruction code not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
    0x9303: "application permanently blocked",
}


def describe_sw(sw: int) -> str:
    """A one-line meaning of any status word, including the parametrised ones."""
    if sw in _EXACT:
        return _EXACT[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more response bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le: re-send with Le={sw2:02X}"
    if sw1 == 0x63 and sw2 & 0xF0 == 0xC0:
        return f"verification failed, {sw2 & 0x0F} tries left"
    if sw1 == 0x62:
        return "warning: state of non-volatile memory unchanged"
    if sw1 == 0x63:
        return "warning: state of non-volatile memory changed"
    if sw1 == 0x64:
        return "execution error: non-volatile memory unchanged"
    if sw1 == 0x65:
        return "execution error: non-volatile memory changed"
    if sw1 == 0x67:
        return "wrong length"
    if sw1 == 0x68:
        return "functions in CLA not supported"
    if sw1 == 0x69:
        return "command not allowed"
    if sw1 == 0x6A:
        return "wrong parameters P1-P2"
    return "unknown status word"
