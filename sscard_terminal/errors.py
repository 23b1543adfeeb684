"""The one exception tree of sscard-terminal, grouped by what failed.

Every error the SDK, the CLI or the daemon raises derives from :class:`SscardError`.
No third-party exception (pyscard, pyserial, httpx, sqlite3, cryptography) crosses a
package boundary: adapters translate them here with ``raise ... from exc``.

The families say what failed, not where it was noticed: a device, the card, the central,
local storage, an e-code, the configuration, or the caller's request. A technician must
still tell three card-path cases apart at a glance: the reader or pcscd is down
(:class:`ReaderError`, a device), the card went away or answered garbage
(:class:`CardCommunicationError`), the card refused (:class:`CardRefusedError`).

:class:`DeadlineExceededError` stands alone: the budget of a presentation spans the
card, the central and the journal, and :meth:`Deadline.check` raises it between steps
without knowing which part was slow. Under any one family it would be taken for that
part's failure (an ``except CentralError`` that decides offline would swallow a spent
budget; under :class:`CardError` the CLI would report a removed card).

Codes for errors (the CLI's exit codes, the unified interface's return codes) are each one
:class:`CodeTable`, mapping by family with the most specific class first.

Messages never carry personal data in clear (names, ID numbers, card numbers): build
them with :mod:`sscard_terminal.privacy`.

::

    SscardError
    ├── ConfigError                      a profile, key file, option or path is wrong
    ├── InputError                       a caller's request is malformed (the HIS's HSM key
    │                                    string; local_api's RequestError, with its code)
    ├── DeviceError                      a device cannot be used (gate outputs go here too)
    │   ├── ReaderError                      the card reader or pcscd is down
    │   │   ├── NoReaderError                    no (matching) reader; names what was found
    │   │   ├── ReaderUnavailableError           pcscd not running / reader lost / busy
    │   │   └── NoCardError                      the reader is up but has no card
    │   ├── ScannerUnavailableError          serial scanner port missing, busy or not permitted
    │   ├── CameraUnavailableError           camera/video/RTSP source cannot be opened, no cv2
    │   ├── GateOutputError                  the gate output failed (port gone, relay silent)
    │   └── DaemonUnavailableError           nothing answers on the daemon's local API socket
    ├── CardError                        the card in front of the terminal
    │   ├── CardCommunicationError           removed or garbled mid-transaction
    │   │   ├── CardRemovedError                 card pulled; partial data is never returned
    │   │   ├── CardTimeoutError                 the card stopped answering in time
    │   │   └── MalformedResponseError           bytes that do not parse (which file/record/why)
    │   ├── CardRefusedError                 the card answered a refusing SW (kept in ``sw``)
    │   │   ├── SecurityStatusNotSatisfiedError  69 82: needs read authentication first
    │   │   └── PinError                         63 Cx wrong PIN / 69 83 PIN locked
    │   ├── CardApplicationError             readable, but not our application
    │   │   ├── NotSocialSecurityCardError       no social security application on it
    │   │   └── IncompleteCardError              generation 3 without a security module
    │   └── CardAuthenticationError          read authentication of a generation 3 card
    │       ├── ForgedCardError                  internal authentication mismatch: forged/cloned
    │       └── SecurityModuleError              PSAM/HSM missing, lacks key or algorithm
    │           └── SecurityModuleUnavailableError   its unified ``code``: -2201..-2203
    ├── CentralError                     the central system
    │   ├── CentralUnreachableError          network down / deadline too short: decide offline
    │   ├── CentralRefusedError              auth refused (wrong secret, skewed clock, replay)
    │   └── CentralProtocolError             malformed, oversized or unexpected response
    ├── StorageError                     a local store: journal, denylist, state files
    │   ├── DenylistError                    the local denylist file (decision)
    │   └── JournalError                     the offline journal (offline_queue)
    │       ├── JournalForeignFileError          the file at the journal's path is not a journal
    │       ├── JournalNewerSchemaError          written by a newer version: upgrade, keep the file
    │       ├── JournalCorruptError              truncated or malformed file: restore, keep the file
    │       ├── JournalKeyError                  the key does not match or does not decrypt
    │       ├── JournalFullError                 limits reached and the profile refuses new records
    │       ├── JournalStorageError              disk full or read-only file system; nothing written
    │       └── JournalTamperedError             the hash chain does not verify
    ├── ECodeError                       an e-code was refused (never a device problem)
    │   ├── MalformedECodeError              not a well-formed code: carries ``reason``
    │   └── ECodeRefusedError                well-formed but refused (signature, expiry, replay…)
    └── DeadlineExceededError            the caller's budget ran out before an answer
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

__all__ = [
    "CameraUnavailableError",
    "CardApplicationError",
    "CardAuthenticationError",
    "CardCommunicationError",
    "CardError",
    "CardRefusedError",
    "CardRemovedError",
    "CardTimeoutError",
    "CentralError",
    "CentralProtocolError",
    "CentralRefusedError",
    "CentralUnreachableError",
    "CodeTable",
    "ConfigError",
    "DaemonUnavailableError",
    "DeadlineExceededError",
    "DenylistError",
    "DeviceError",
    "ECodeError",
    "ECodeRefusedError",
    "ForgedCardError",
    "GateOutputError",
    "IncompleteCardError",
    "InputError",
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
    "StorageError",
]


class SscardError(Exception):
    """Root of every error raised by sscard-terminal."""


class ConfigError(SscardError):
    """A profile, key file, option or path is wrong; the message says which and why."""


class InputError(SscardError):
    """A caller asked for something malformed (a key string that does not parse, a
    request the local API cannot read); nothing was done with it."""


class DeadlineExceededError(SscardError):
    """The caller's time budget ran out before the operation could finish.

    Not in a family: the budget spans several parts (see the module docstring)."""


# --- devices: reader or pcscd, scanner, camera ------------------------------------------


class DeviceError(SscardError):
    """A device the terminal drives cannot be used (reader, pcscd, scanner, camera)."""


class ReaderError(DeviceError):
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


class ScannerUnavailableError(DeviceError):
    """The serial scanner's port is missing, busy or not permitted; the message says which."""


class CameraUnavailableError(DeviceError):
    """The camera, video file or RTSP stream cannot be opened, or cv2 is not installed."""


class GateOutputError(DeviceError):
    """The gate output failed (port gone, line refused, relay silent). A lane fault:
    the transaction behind it is journaled all the same."""


class DaemonUnavailableError(DeviceError):
    """Nothing answers on the daemon's local API socket (the daemon is not running, or
    not for this user); the message says which and what to do."""


# --- the card -----------------------------------------------------------------------------


class CardError(SscardError):
    """The card in front of the terminal failed, refused, or is not one we can read."""


# card went away or answered garbage


class CardCommunicationError(CardError):
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


# the card refused


class CardRefusedError(CardError):
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


# not our application


class CardApplicationError(CardError):
    """The card is readable but is not what the operation needs."""


class NotSocialSecurityCardError(CardApplicationError):
    """The card has no social security application (e.g. a plain bank card)."""


class IncompleteCardError(CardApplicationError):
    """Only part of the card could be read; the reason says what is missing and why."""


# generation 3 read authentication


class CardAuthenticationError(CardError):
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


# --- local storage ---------------------------------------------------------------------


class StorageError(SscardError):
    """A local store (the journal, the denylist, a state file) cannot be used; the
    message names the file."""


class DenylistError(StorageError):
    """The local denylist file cannot be opened or updated; the message names the file."""


class JournalError(StorageError):
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


# --- e-codes ---------------------------------------------------------------------------


class ECodeError(SscardError):
    """An e-code was refused: malformed, or well-formed and not valid; subclasses say why.
    A scanner or camera that cannot be used is a :class:`DeviceError`, not this."""


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


# --- codes for errors -------------------------------------------------------------------

_Code = TypeVar("_Code", bound=int)


class CodeTable(Generic[_Code]):
    """Codes for errors by class, most specific first: the first row whose class the
    error is an instance of decides; an error no row matches gets ``default``.

    A row's code may be a function of the error (a refusing status word, a PIN's lock
    state). A row placed after a row of one of its base classes could never match:
    building such a table raises ``ValueError``, so the order cannot rot unnoticed.
    """

    def __init__(
        self,
        rows: Sequence[tuple[type[BaseException], _Code | Callable[[Any], _Code]]],
        *,
        default: _Code,
    ) -> None:
        for index, (cls, _code) in enumerate(rows):
            for earlier, _ in rows[:index]:
                if issubclass(cls, earlier):
                    raise ValueError(
                        f"{cls.__name__} after {earlier.__name__} in a code table: never used"
                    )
        self.rows = tuple(rows)
        self.default = default

    def code_for(self, exc: BaseException) -> _Code:
        """The code of ``exc``."""
        for cls, code in self.rows:
            if isinstance(exc, cls):
                return code(exc) if callable(code) else code
        return self.default

    def replacing(
        self, cls: type[BaseException], code: _Code | Callable[[Any], _Code]
    ) -> CodeTable[_Code]:
        """The same table with ``cls``'s row giving ``code`` instead."""
        if all(row_cls is not cls for row_cls, _ in self.rows):
            raise ValueError(f"{cls.__name__} has no row to replace")
        rows = [(row_cls, code if row_cls is cls else old) for row_cls, old in self.rows]
        return CodeTable(rows, default=self.default)
