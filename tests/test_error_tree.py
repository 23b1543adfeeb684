"""The exception tree: drawn in errors.py's docstring as it is built, and each error's
codes (the CLI's exit code, the unified interface's return code) by family."""

from __future__ import annotations

import re

import pytest

from sscard_terminal import errors
from sscard_terminal.cards.unified import unified_code_for
from sscard_terminal.cli.exit_codes import ExitCode, exit_code_for
from sscard_terminal.errors import CodeTable

_ERROR_CLASSES = {
    name: cls for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type) and issubclass(cls, BaseException)
}


def _drawn_parents() -> dict[str, str]:
    """Each class named in the docstring's tree, with the class drawn above it."""
    doc = errors.__doc__ or ""
    tree = doc[doc.index("::") + 2:]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in tree.splitlines():
        match = re.match(r"^[\s│]*(?:[├└]── )?([A-Z]\w*Error)\b", line)
        if match is None:
            continue
        depth, name = match.start(1), match.group(1)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_docstring_draws_the_tree_as_it_is() -> None:
    drawn = _drawn_parents()
    built = {name: cls.__bases__[0].__name__ for name, cls in _ERROR_CLASSES.items()
             if cls is not errors.SscardError}
    assert drawn == built


def test_the_families_are_what_failed() -> None:
    families = {cls.__name__ for cls in errors.SscardError.__subclasses__()}
    assert families == {
        "ConfigError", "InputError", "DeviceError", "CardError", "CentralError",
        "StorageError", "ECodeError", "DeadlineExceededError",
    }
    for device in (errors.ReaderError, errors.ScannerUnavailableError,
                   errors.CameraUnavailableError, errors.GateOutputError,
                   errors.DaemonUnavailableError):
        assert issubclass(device, errors.DeviceError)
    for card in (errors.CardCommunicationError, errors.CardRefusedError,
                 errors.CardApplicationError, errors.CardAuthenticationError):
        assert issubclass(card, errors.CardError)
    for storage in (errors.JournalError, errors.DenylistError):
        assert issubclass(storage, errors.StorageError)
    assert set(errors.ECodeError.__subclasses__()) == {
        errors.MalformedECodeError, errors.ECodeRefusedError}


# Every class, one instance each (two for PinError): its CLI exit code, its unified code,
# and its unified code in the HSM two-step. As before the tree was regrouped, except
# CentralProtocolError's unified code: it was -23 (illegal input) because the HIS's own
# malformed key string was raised as one; that is an InputError now, and a central that
# answers garbage is -999 like a central that does not answer.
_CODES: list[tuple[errors.SscardError, ExitCode, int, int]] = [
    (errors.CameraUnavailableError("x"), ExitCode.READER_UNAVAILABLE, -999, -999),
    (errors.DaemonUnavailableError("x"), ExitCode.DAEMON_NOT_RUNNING, -999, -999),
    (errors.GateOutputError("x"), ExitCode.READER_UNAVAILABLE, -999, -999),
    (errors.CardApplicationError("x"), ExitCode.ERROR, -999, -999),
    (errors.CardAuthenticationError("x"), ExitCode.ERROR, -999, -999),
    (errors.CardCommunicationError("x"), ExitCode.CARD_REMOVED, -999, -999),
    (errors.CardError("x"), ExitCode.ERROR, -999, -999),
    (errors.CardRefusedError("x", 0x6A82), ExitCode.CARD_REFUSED, -27266, -27266),
    (errors.CardRemovedError("x"), ExitCode.CARD_REMOVED, -2, -2),
    (errors.CardTimeoutError("x"), ExitCode.CARD_REMOVED, -4, -4),
    (errors.CentralError("x"), ExitCode.CENTRAL_PROTOCOL, -999, -999),
    (errors.CentralProtocolError("x"), ExitCode.CENTRAL_PROTOCOL, -999, -999),
    (errors.CentralRefusedError("x"), ExitCode.CENTRAL_REFUSED, -999, -999),
    (errors.CentralUnreachableError("x"), ExitCode.CENTRAL_UNREACHABLE, -999, -999),
    (errors.ConfigError("x"), ExitCode.CONFIG_ERROR, -999, -999),
    (errors.DeadlineExceededError("x"), ExitCode.ERROR, -4, -4),
    (errors.DenylistError("x"), ExitCode.ERROR, -999, -999),
    (errors.DeviceError("x"), ExitCode.READER_UNAVAILABLE, -999, -999),
    (errors.ECodeError("x"), ExitCode.ECODE_REFUSED, -999, -999),
    (errors.ECodeRefusedError("x", "expired"), ExitCode.ECODE_REFUSED, -999, -999),
    (errors.ForgedCardError("x"), ExitCode.FORGED_CARD, -21, -25),
    (errors.IncompleteCardError("x"), ExitCode.INCOMPLETE_READ, -2201, -2201),
    (errors.InputError("x"), ExitCode.USAGE, -23, -23),
    (errors.JournalCorruptError("x"), ExitCode.JOURNAL_ERROR, -999, -999),
    (errors.JournalError("x"), ExitCode.JOURNAL_ERROR, -999, -999),
    (errors.JournalForeignFileError("x"), ExitCode.JOURNAL_ERROR, -999, -999),
    (errors.JournalFullError("x"), ExitCode.JOURNAL_ERROR, -999, -999),
    (errors.JournalKeyError("x"), ExitCode.JOURNAL_ERROR, -999, -999),
    (errors.JournalNewerSchemaError("x"), ExitCode.JOURNAL_ERROR, -999, -999),
    (errors.JournalStorageError("x"), ExitCode.JOURNAL_ERROR, -999, -999),
    (errors.JournalTamperedError("x"), ExitCode.JOURNAL_ERROR, -999, -999),
    (errors.MalformedECodeError("x"), ExitCode.ECODE_REFUSED, -999, -999),
    (errors.MalformedResponseError("x"), ExitCode.MALFORMED_CARD_DATA, -22, -22),
    (errors.NoCardError("x"), ExitCode.NO_CARD, -2, -2),
    (errors.NoReaderError("x"), ExitCode.NO_READER, -11, -11),
    (errors.NotSocialSecurityCardError("x"), ExitCode.NOT_SOCIAL_SECURITY_CARD, -1, -1),
    (errors.PinError("x", 0x63C2, 2, False), ExitCode.PIN_WRONG, -51, -51),
    (errors.PinError("x", 0x6983, 0, True), ExitCode.PIN_LOCKED, -52, -52),
    (errors.ReaderError("x"), ExitCode.READER_UNAVAILABLE, -11, -11),
    (errors.ReaderUnavailableError("x"), ExitCode.READER_UNAVAILABLE, -11, -11),
    (errors.ScannerUnavailableError("x"), ExitCode.READER_UNAVAILABLE, -999, -999),
    (errors.SecurityModuleError("x"), ExitCode.SECURITY_MODULE, -2201, -2201),
    (errors.SecurityModuleUnavailableError("x", -2202), ExitCode.SECURITY_MODULE, -2202,
     -2202),
    (errors.SecurityStatusNotSatisfiedError("x", 0x6A82), ExitCode.CARD_REFUSED, -27266,
     -27266),
    (errors.SscardError("x"), ExitCode.ERROR, -999, -999),
    (errors.StorageError("x"), ExitCode.ERROR, -999, -999),
]


def test_every_error_class_has_its_codes_pinned() -> None:
    assert {type(error).__name__ for error, *_ in _CODES} == set(_ERROR_CLASSES)


@pytest.mark.parametrize(("error", "exit_code", "unified", "unified_two_step"), _CODES,
                         ids=lambda value: type(value).__name__
                         if isinstance(value, BaseException) else None)
def test_codes_by_family(error: errors.SscardError, exit_code: ExitCode, unified: int,
                         unified_two_step: int) -> None:
    assert exit_code_for(error) == exit_code
    assert unified_code_for(error) == unified
    assert unified_code_for(error, hsm=True) == unified_two_step


def test_a_code_table_refuses_a_row_its_base_hides() -> None:
    with pytest.raises(ValueError, match="NoCardError after ReaderError"):
        CodeTable([(errors.ReaderError, 1), (errors.NoCardError, 2)], default=0)
    table = CodeTable([(errors.NoCardError, 2), (errors.ReaderError, 1)], default=0)
    assert table.code_for(errors.NoCardError("x")) == 2
    assert table.code_for(errors.NoReaderError("x")) == 1
    assert table.code_for(ValueError("x")) == 0
    assert table.replacing(errors.ReaderError, 5).code_for(errors.NoReaderError("x")) == 5
    with pytest.raises(ValueError, match="no row"):
        table.replacing(errors.CardError, 5)
