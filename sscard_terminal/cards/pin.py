"""Verify and change the card holder's PIN.

``00 20 00 00 03 <PIN as 3 BCD bytes>`` verifies, ``00 24 00 00 06 <old><new>`` changes
(../shared/spec/sscard-card.md, "PIN"); ``63 Cx`` means x tries left, ``69 83`` locked.

A PIN is a secret of the holder: it is never logged (the APDUs go straight to the
transport, around the processor's hex trace), never put in an exception message, and
kept only in bytearrays that are overwritten before the call returns. Python's ``str``
cannot be wiped, so callers that care pass a ``bytearray`` (the CLI does); such a
bytearray is consumed: it is zeroed as soon as the PIN has been encoded.
"""

from __future__ import annotations

from ..apdu.processors import ApduProcessor
from ..apdu.transport import CardTransport
from ..errors import ConfigError, MalformedResponseError, PinError
from .ssse import select_ssse

__all__ = ["PIN_LENGTH", "change_pin", "verify_pin"]

PIN_LENGTH = 6

PinInput = str | bytes | bytearray


def _wipe(buffer: bytearray) -> None:
    for index in range(len(buffer)):
        buffer[index] = 0


def _consume(pin: PinInput) -> None:
    """A PIN passed as a bytearray is the caller's copy: it is wiped once encoded."""
    if isinstance(pin, bytearray):
        _wipe(pin)


def _encode(pin: PinInput, which: str) -> bytearray:
    """The PIN as 3 BCD bytes; raise ConfigError (without the PIN) unless 6 digits."""
    digits = bytearray(pin.encode("ascii", "replace") if isinstance(pin, str) else pin)
    try:
        if len(digits) != PIN_LENGTH:
            raise ConfigError(f"{which} must be {PIN_LENGTH} digits, got {len(digits)} characters")
        if any(not 0x30 <= d <= 0x39 for d in digits):
            raise ConfigError(f"{which} must be digits only")
        bcd = bytearray(PIN_LENGTH // 2)
        for index in range(0, PIN_LENGTH, 2):
            bcd[index // 2] = ((digits[index] - 0x30) << 4) | (digits[index + 1] - 0x30)
        return bcd
    finally:
        _wipe(digits)


def _select(transport: CardTransport, *secrets: bytearray) -> None:
    """Select SSSE; wipe the already encoded PINs if that fails."""
    try:
        select_ssse(ApduProcessor(transport))
    except BaseException:
        for secret in secrets:
            _wipe(secret)
        raise


def _send(transport: CardTransport, apdu: bytearray, what: str) -> None:
    try:
        answer = transport.transmit(bytes(apdu))
    finally:
        _wipe(apdu)
    if len(answer) < 2:
        raise MalformedResponseError(f"{what} answered {len(answer)} bytes")
    sw = int.from_bytes(answer[-2:], "big")
    if sw == 0x9000:
        return
    if sw & 0xFFF0 == 0x63C0:
        tries = sw & 0x0F
        raise PinError(f"{what}: wrong PIN, {tries} tries left", sw, tries, locked=tries == 0)
    if sw == 0x6983:
        raise PinError(f"{what}: the PIN is locked", sw, 0, locked=True)
    raise PinError(f"{what}: the card refused", sw, None, locked=False)


def verify_pin(
    transport: CardTransport, pin: PinInput, *, select_application: bool = True
) -> None:
    """Verify ``pin`` with the card behind ``transport``.

    The social security application is selected first unless ``select_application``
    is False (the caller already selected it in this session).

    Raises :class:`PinError` (``tries_left``, ``locked``) when the card refuses,
    :class:`ConfigError` when the PIN is not 6 digits (nothing is sent then).
    """
    try:
        bcd = _encode(pin, "PIN")
    finally:
        _consume(pin)
    if select_application:
        _select(transport, bcd)
    try:
        apdu = bytearray(b"\x00\x20\x00\x00\x03") + bcd
    finally:
        _wipe(bcd)
    _send(transport, apdu, "VERIFY PIN")


def change_pin(
    transport: CardTransport,
    old_pin: PinInput,
    new_pin: PinInput,
    *,
    select_application: bool = True,
) -> None:
    """Change the PIN from ``old_pin`` to ``new_pin``; errors as :func:`verify_pin`."""
    try:
        old = _encode(old_pin, "current PIN")
    except BaseException:
        _consume(new_pin)
        raise
    finally:
        _consume(old_pin)
    try:
        try:
            new = _encode(new_pin, "new PIN")
        finally:
            _consume(new_pin)
        try:
            if select_application:
                _select(transport, old, new)
            apdu = bytearray(b"\x00\x24\x00\x00\x06") + old + new
        finally:
            _wipe(new)
    finally:
        _wipe(old)
    _send(transport, apdu, "CHANGE PIN")
