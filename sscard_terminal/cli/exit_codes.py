"""Exit codes of the ``sscard`` CLI, one per situation a script may branch on.

The table is documented in the README (section "Exit codes"); a test keeps the two in
step.
"""

from __future__ import annotations

import enum

from .. import errors

__all__ = ["ExitCode", "exit_code_for"]


class ExitCode(enum.IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NO_READER = 3
    NO_CARD = 4
    NOT_SOCIAL_SECURITY_CARD = 5
    CARD_REMOVED = 6
    CARD_REFUSED = 7
    MALFORMED_CARD_DATA = 8
    FORGED_CARD = 9
    INCOMPLETE_READ = 10
    PIN_WRONG = 11
    PIN_LOCKED = 12
    CENTRAL_UNREACHABLE = 13
    CENTRAL_REFUSED = 14
    JOURNAL_ERROR = 15
    ECODE_REFUSED = 16
    CONFIG_ERROR = 17
    READER_UNAVAILABLE = 18
    SECURITY_MODULE = 19
    CENTRAL_PROTOCOL = 20
    CARD_NOT_USABLE = 21


# Most specific first: the first matching class decides.
_BY_ERROR: tuple[tuple[type[BaseException], ExitCode], ...] = (
    (errors.NoReaderError, ExitCode.NO_READER),
    (errors.NoCardError, ExitCode.NO_CARD),
    (errors.ReaderError, ExitCode.READER_UNAVAILABLE),
    # A scanner or camera that is missing or busy is a device problem, not a refusal.
    (errors.ScannerUnavailableError, ExitCode.READER_UNAVAILABLE),
    (errors.CameraUnavailableError, ExitCode.READER_UNAVAILABLE),
    (errors.NotSocialSecurityCardError, ExitCode.NOT_SOCIAL_SECURITY_CARD),
    (errors.IncompleteCardError, ExitCode.INCOMPLETE_READ),
    (errors.CardRemovedError, ExitCode.CARD_REMOVED),
    (errors.MalformedResponseError, ExitCode.MALFORMED_CARD_DATA),
    (errors.CardCommunicationError, ExitCode.CARD_REMOVED),
    (errors.PinError, ExitCode.PIN_WRONG),
    (errors.CardRefusedError, ExitCode.CARD_REFUSED),
    (errors.ForgedCardError, ExitCode.FORGED_CARD),
    (errors.SecurityModuleError, ExitCode.SECURITY_MODULE),
    (errors.CentralUnreachableError, ExitCode.CENTRAL_UNREACHABLE),
    (errors.CentralRefusedError, ExitCode.CENTRAL_REFUSED),
    (errors.CentralError, ExitCode.CENTRAL_PROTOCOL),
    (errors.JournalError, ExitCode.JOURNAL_ERROR),
    (errors.ECodeError, ExitCode.ECODE_REFUSED),
    (errors.ConfigError, ExitCode.CONFIG_ERROR),
)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for an error raised by a command."""
    if isinstance(exc, errors.PinError) and exc.locked:
        return ExitCode.PIN_LOCKED
    for cls, code in _BY_ERROR:
        if isinstance(exc, cls):
            return code
    return ExitCode.ERROR
