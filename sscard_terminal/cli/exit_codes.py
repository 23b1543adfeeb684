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
    DAEMON_NOT_RUNNING = 22


# One table, by family (errors.py draws the tree); most specific first, which CodeTable
# checks. A family without a row of its own falls through to ERROR.
_TABLE: errors.CodeTable[ExitCode] = errors.CodeTable([
    # DeviceError: the reader or pcscd, the QR scanner, the camera
    (errors.NoReaderError, ExitCode.NO_READER),
    (errors.NoCardError, ExitCode.NO_CARD),
    (errors.DaemonUnavailableError, ExitCode.DAEMON_NOT_RUNNING),
    (errors.DeviceError, ExitCode.READER_UNAVAILABLE),
    # CardError: went away or garbled, refused, not our application, not genuine
    (errors.CardRemovedError, ExitCode.CARD_REMOVED),
    (errors.MalformedResponseError, ExitCode.MALFORMED_CARD_DATA),
    (errors.CardCommunicationError, ExitCode.CARD_REMOVED),
    (errors.PinError, lambda exc: ExitCode.PIN_LOCKED if exc.locked else ExitCode.PIN_WRONG),
    (errors.CardRefusedError, ExitCode.CARD_REFUSED),
    (errors.NotSocialSecurityCardError, ExitCode.NOT_SOCIAL_SECURITY_CARD),
    (errors.IncompleteCardError, ExitCode.INCOMPLETE_READ),
    (errors.ForgedCardError, ExitCode.FORGED_CARD),
    (errors.SecurityModuleError, ExitCode.SECURITY_MODULE),
    # CentralError
    (errors.CentralUnreachableError, ExitCode.CENTRAL_UNREACHABLE),
    (errors.CentralRefusedError, ExitCode.CENTRAL_REFUSED),
    (errors.CentralError, ExitCode.CENTRAL_PROTOCOL),
    # StorageError: the journal has its code; the denylist has none yet (ERROR)
    (errors.JournalError, ExitCode.JOURNAL_ERROR),
    # ECodeError: refusals only (a scanner or camera problem is a DeviceError above)
    (errors.ECodeError, ExitCode.ECODE_REFUSED),
    (errors.ConfigError, ExitCode.CONFIG_ERROR),
    (errors.InputError, ExitCode.USAGE),
], default=ExitCode.ERROR)


def exit_code_for(exc: BaseException) -> ExitCode:
    """The exit code for an error raised by a command."""
    return _TABLE.code_for(exc)
