"""The one exception tree of sscard-terminal.

Every error the SDK, the CLI or the daemon raises derives from :class:`SscardError`.
No third-party exception (pyscard, pyserial, httpx, sqlite3, cryptography) crosses a
package boundary: adapters translate them here with ``raise ... from exc``.

A technician must be able to tell three things apart at a glance: the reader or pcscd
is down, the card went away or answered garbage, the card refused. Those are the three
card-path families; the other parts have one family each.

Messages never carry personal data in clear (names, ID numbers, card numbers): build
them with :mod:`sscard_terminal.privacy`.

::

    SscardError
    ├── ConfigError                      a profile, key file or option is wrong
    ├── ReaderError                      family 1: the reader or pcscd is down
    │   ├── NoReaderError                    no (matching) reader; names what was found
    │   ├── ReaderUnavailableError           pcscd not running / reader lost / busy
    │   └── NoCardError                      the reader is up but has no card
    ├── CardCommunicationError           family 2: removed or garbled mid-transaction
    │   ├── CardRemovedError                 card pulled; partial data is never returned
    │   ├── CardTimeoutError                 the card stopped answering in time
    │   └── MalformedResponseError           bytes that do not parse (says which file/record/why)
    ├── CardRefusedError                 family 3: the card answered with a refusing SW
    │   ├── SecurityStatusNotSatisfiedError  69 82: needs read authentication first
    │   └── PinError                         63 Cx wrong PIN / 69 83 PIN locked
    ├── CardApplicationError             the card is readable but not what we need
    │   ├── NotSocialSecurityCardError       no social security application on it
    │   └── IncompleteCardError              generation 3 without a security module
    ├── CardAuthenticationError          read authentication of a generation 3 card
    │   ├── ForgedCardError                  internal authentication mismatch: forged/cloned
    │   └── SecurityModuleError              PSAM/HSM missing, lacks key or algorithm
    │       └── SecurityModuleUnavailableError   carries the unified ``code`` (-2201/-2202/-2203)
    ├── CentralError                     the central system
    │   ├── CentralUnreachableError          network down / deadline too short: decide offline
    │   ├── CentralRefusedError              auth refused (wrong secret, skewed clock, replay)
    │   └── CentralProtocolError             malformed, oversized or unexpected response
    ├── DenylistError                    the local denylist file (decision)
    ├── JournalError                     the offline journal (offline_queue)
    │   ├── JournalForeignFileError          the file at the journal's path is not a journal
    │   ├── JournalNewerSchemaError          written by a newer version: upgrade, keep the file
    │   ├── JournalCorruptError              truncated or malformed file: restore, keep the file
    │   ├── JournalKeyError                  the key does not match or does not decrypt
    │   ├── JournalFullError                 limits reached and the profile refuses new records
    │   ├── JournalStorageError              disk full or read-only file system; nothing written
    │   └── JournalTamperedError             the hash chain does not verify
    ├── ECodeError                       e-codes: scanner, camera, code format, verification
    │   ├── ScannerUnavailableError          serial scanner port missing, busy or not permitted
    │   ├── CameraUnavailableError           camera/video/RTSP source cannot be opened, no cv2
    │   ├── MalformedECodeError              not a well-formed code: carries ``reason``
    │   └── ECodeRefusedError                well-formed but refused (signature, expiry, replay…)
    └── DeadlineExceededError            the caller's budget ran out before an answer
"""

from __future__ import annotations

__all__ = [
    "CameraUnavailableError",
    "CardApplicationError",
    "CardAuthenticationError",
    "CardCommunicationError",
    "CardRefusedError",
    "CardRemovedError",
    "CardTimeoutError",
    "CentralError",
    "CentralProtocolError",
    "CentralRefusedError",
    "CentralUnreachableError",
    "ConfigError",
    "DeadlineExceededError",
    "DenylistError",
    "ECodeError",
    "ECodeRefusedError",
    "ForgedCardError",
    "IncompleteCardError",
    "JournalCorruptError",
    "JournalError",
    "JournalForeignFileError",
    "JournalFullError",
    "JournalKeyError",
    "JournalNewerSchemaError",
    "JournalStorageError",
    "JournalTamperedError",
    "MalformedECodeError",
    "MalformedResponseError",
    "NoCardError",
    "NoReaderError",
    "NotSocialSecurityCardError",
    "PinError",
    "ReaderError",
    "ReaderUnavailableError",
    "ScannerUnavailableError",
    "SecurityModuleError",
    "SecurityModuleUnavailableError",
    "SecurityStatusNotSatisfiedError",
    "SscardError",
]


class SscardError(Exception):
    """Root of every error raised by sscard-terminal."""


class ConfigError(SscardError):
    """A profile, key file, option or path is wrong; the message says which and why."""


class DeadlineExceededError(SscardError):
    """The caller's time budget ran out before the operation could finish."""


# --- card path, family 1: reader or pcscd -------------------------------------------


class ReaderError(SscardError):
    """The reader or the PC/SC service cannot be used."""


class NoReaderError(ReaderError):
    """No reader, or none matching the name asked for; the message lists what was found."""

    def __init__(self, message: str, found: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.found = found


class ReaderUnavailableError(ReaderError):
    """pcscd is not running, was restarted, or the reader was unplugged or is busy."""


class NoCardError(ReaderError):
    """The reader works but no card is present (or none arrived within the timeout)."""


# --- card path, family 2: card went away or answered garbage ------------------------


class CardCommunicationError(SscardError):
    """The card went away or answered something unusable in the middle of a transaction."""


class CardRemovedError(CardCommunicationError):
    """The card was removed (or reset) during a transaction; nothing partial is returned."""


class CardTimeoutError(CardCommunicationError):
    """The card stopped answering within the allowed time."""


class MalformedResponseError(CardCommunicationError):
    """A response that does not parse: which file, which record, and why."""

    def __init__(
        self, reason: str, *, file: str | None = None, record: int | None = None
    ) -> None:
        where = []
        if file is not None:
            where.append(f"file {file}")
        if record is not None:
            where.append(f"record {record:02X}")
        prefix = f"malformed data in {', '.join(where)}: " if where else "malformed data: "
        super().__init__(prefix + reason)
        self.reason = reason
        self.file = file
        self.record = record


# --- card path, family 3: the card refused -------------------------------------------


class CardRefusedError(SscardError):
    """The card answered a command with a refusing status word (kept in ``sw``)."""

    def __init__(self, message: str, sw: int) -> None:
        super().__init__(f"{message} (SW {sw:04X})")
        self.sw = sw


class SecurityStatusNotSatisfiedError(CardRefusedError):
    """69 82: the item needs read authentication (generation 3) before it can be read."""


class PinError(CardRefusedError):
    """Wrong PIN (``tries_left`` from 63 Cx) or locked PIN (69 83, ``tries_left`` 0)."""

    def __init__(self, message: str, sw: int, tries_left: int | None, locked: bool) -> None:
        super().__init__(message, sw)
        self.tries_left = tries_left
        self.locked = locked


# --- what kind of card -----------------------------------------------------------------


class CardApplicationError(SscardError):
    """The card is readable but is not what the operation needs."""


class NotSocialSecurityCardError(CardApplicationError):
    """The card has no social security application (e.g. a plain bank card)."""


class IncompleteCardError(CardApplicationError):
    """Only part of the card could be read; the reason says what is missing and why."""


# --- generation 3 read authentication --------------------------------------------------


class CardAuthenticationError(SscardError):
    """Read authentication between card, terminal and security module failed."""


class ForgedCardError(CardAuthenticationError):
    """Internal authentication mismatch: the card is forged or cloned. Refuse and record."""


class SecurityModuleError(CardAuthenticationError):
    """No PSAM or HSM, or the module lacks the key or algorithm the card needs."""


class SecurityModuleUnavailableError(SecurityModuleError):
    """This module cannot serve the card; ``code`` is the unified interface's code
    (-2201 no PSAM, -2202 no algorithm, -2203 no read key), which decides the fallback
    to the central HSM."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# --- central system ---------------------------------------------------------------------


class CentralError(SscardError):
    """Talking to the central system failed."""


class CentralUnreachableError(CentralError):
    """The central system could not answer within the budget: decide offline."""


class CentralRefusedError(CentralError):
    """The central refused this terminal (credentials, clock skew, replay); reason attached."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class CentralProtocolError(CentralError):
    """The central answered something malformed, oversized or unexpected."""


# --- other parts -----------------------------------------------------------------------


class DenylistError(SscardError):
    """The local denylist file cannot be opened or updated; the message names the file."""


class JournalError(SscardError):
    """The offline journal cannot do what was asked; the message names the file and the fix."""


class JournalForeignFileError(JournalError):
    """The file at the journal's path is not an sscard journal; it is left untouched."""


class JournalNewerSchemaError(JournalError):
    """The journal was written by a newer schema version; upgrade the software, keep the file."""


class JournalCorruptError(JournalError):
    """The journal file is truncated or malformed; it is left untouched as evidence."""


class JournalKeyError(JournalError):
    """The journal key is missing, unreadable, too open, or does not match the journal."""


class JournalFullError(JournalError):
    """A journal limit is reached and the profile refuses new offline transactions."""


class JournalStorageError(JournalError):
    """The disk is full or the file system is read-only; the enqueue was not recorded."""


class JournalTamperedError(JournalError):
    """The hash chain does not verify: a record was deleted, reordered or edited."""


class ECodeError(SscardError):
    """An e-code could not be read or verified; subclasses say why."""


class ScannerUnavailableError(ECodeError):
    """The serial scanner's port is missing, busy or not permitted; the message says which."""


class CameraUnavailableError(ECodeError):
    """The camera, video file or RTSP stream cannot be opened, or cv2 is not installed."""


class MalformedECodeError(ECodeError):
    """The text is not a well-formed e-code (length, base45, zlib, CBOR, COSE, payload).

    ``reason`` is a stable machine-readable code (see :class:`sscard_terminal.ecode.Reason`).
    """

    def __init__(self, message: str, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class ECodeRefusedError(ECodeError):
    """A well-formed e-code was refused (bad signature, expired, replayed, unknown or
    revoked key, unknown kind, central unreachable); ``reason`` says which."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
