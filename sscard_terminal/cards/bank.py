"""The bank application's primary account number (PAN, tag 5A), masked unless asked.

Contactless cards list their applications in the PPSE (``2PAY.SYS.DDF01``), contact
cards in the PSE (``1PAY.SYS.DDF01``). We take the AID from that directory (or try the
UnionPay debit and credit AIDs) and read the first records of SFI 1 for tag 5A.
"""

from __future__ import annotations

from ..apdu import ApduProcessor, CommandApdu, parse_ber
from ..apdu.tlv import find
from ..apdu.transport import CardInterface, CardTransport
from ..errors import CardApplicationError, MalformedResponseError

__all__ = ["PPSE", "PSE", "UNIONPAY_CREDIT", "UNIONPAY_DEBIT", "read_pan"]

PSE = b"1PAY.SYS.DDF01"
PPSE = b"2PAY.SYS.DDF01"
UNIONPAY_DEBIT = bytes.fromhex("A000000333010101")
UNIONPAY_CREDIT = bytes.fromhex("A000000333010102")
_MAX_RECORDS = 4


def _select(processor: ApduProcessor, name: bytes) -> bytes | None:
    response = processor.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, name, le=0))
    return response.data if response.ok else None


def read_pan(transport: CardTransport) -> str:
    """The PAN in clear; callers mask it (``privacy.mask_pan``) unless told otherwise."""
    processor = ApduProcessor(transport)
    order = (PPSE, PSE) if transport.interface is CardInterface.CONTACTLESS else (PSE, PPSE)
    aids: list[bytes] = []
    for directory in order:
        fci = _select(processor, directory)
        if fci is None:
            continue
        try:
            aids = [t.value for obj in parse_ber(fci) for t in obj.walk() if t.tag == 0x4F]
        except MalformedResponseError as exc:
            raise MalformedResponseError(exc.reason, file=directory.decode()) from exc
        break
    for aid in [*aids, UNIONPAY_DEBIT, UNIONPAY_CREDIT]:
        if _select(processor, aid) is None:
            continue
        for number in range(1, _MAX_RECORDS + 1):
            response = processor.send(CommandApdu(0x00, 0xB2, number, (1 << 3) | 4, le=0))
            if not response.ok:
                break
            try:
                pan = find(parse_ber(response.data), 0x5A)
            except MalformedResponseError as exc:
                raise MalformedResponseError(exc.reason, file="bank SFI 1",
                                             record=number) from exc
            if pan is not None:
                digits = pan.value.hex().upper().rstrip("F")
                if not digits.isdigit():
                    raise MalformedResponseError("PAN is not BCD digits", file="bank SFI 1",
                                                 record=number)
                return digits
        break
    raise CardApplicationError("the card has no readable bank application (PSE/PPSE, AID)")
