"""Reading the social security application (SSSE): EF05 and EF06, by tag.

Records are read by their tag (record identifier) with the file's SFI, never by
record number: EF06's record numbers differ by generation (generation 1 has no name
extension 4E, so record 3 is the sex only there). Tolerated oddities (short records,
padding, lower case) are read and flagged in ``CardInfo.warnings``; a record that does
not parse raises :class:`MalformedResponseError` naming file and record.

Generation 3 cards give tags 01, 03, 07 freely; the rest needs a security module (see
:mod:`.authentication`). Without one the result is the free items, marked incomplete.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from ..apdu import ApduProcessor, CommandApdu, ResponseApdu, parse_ber, parse_simple
from ..apdu.tlv import find
from ..apdu.transport import CardTransport
from ..errors import (
    CardApplicationError,
    CardRefusedError,
    MalformedResponseError,
    NotSocialSecurityCardError,
    SecurityStatusNotSatisfiedError,
)
from .authentication.context import CardAuthContext, ReadAuthenticator
from .bank import read_pan as read_bank_pan
from .card_info import CardInfo, decode_bcd_date, decode_gb18030, decode_region

__all__ = [
    "EF05_ITEMS",
    "EF06_ITEMS",
    "GEN3_FREE_TAGS",
    "GEN3_NO_MODULE_REASON",
    "SSSE_AID",
    "read_card_info",
    "select_ssse",
]

_log = logging.getLogger(__name__)

SSSE_AID = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")
""""sx1.sh." followed by GBK "社会保障"."""

GEN3_FREE_TAGS = (0x01, 0x03, 0x07)
GEN3_NO_MODULE_REASON = "generation 3 card: holder data needs a PSAM or the central HSM"


@dataclass(frozen=True)
class Item:
    tag: int
    length: int
    name: str


EF05_ITEMS: tuple[Item, ...] = (
    Item(0x01, 16, "card identification code"),
    Item(0x02, 1, "card type"),
    Item(0x03, 4, "specification version"),
    Item(0x04, 12, "initialising institution"),
    Item(0x05, 4, "issue date"),
    Item(0x06, 4, "expiry date"),
    Item(0x07, 9, "card number"),
)
EF06_ITEMS: tuple[Item, ...] = (
    Item(0x08, 18, "social security number"),
    Item(0x09, 30, "name"),
    Item(0x4E, 20, "name extension"),
    Item(0x0A, 1, "sex"),
    Item(0x0B, 1, "ethnicity"),
    Item(0x0C, 3, "birthplace"),
    Item(0x0D, 4, "birth date"),
)
_SFI = {"EF05": 5, "EF06": 6}
_RECORD_WHAT = {file: f"{file} record" for file in _SFI}
# READ RECORD by tag (P1 = tag, P2 = SFI << 3), built once: the same commands every read.
_SELECT_SSSE = CommandApdu(0x00, 0xA4, 0x04, 0x00, SSSE_AID, le=0)
_READ_RECORD = {
    (file, item.tag): CommandApdu(0x00, 0xB2, item.tag, _SFI[file] << 3, le=item.length + 2)
    for file, items in (("EF05", EF05_ITEMS), ("EF06", EF06_ITEMS)) for item in items
}


def select_ssse(processor: ApduProcessor) -> int | None:
    """Select the SSSE directory; return the algorithm from FCI tag 9F0C (or None).

    61 XX answers are fetched by the processor. 6A82 means no social security
    application: :class:`NotSocialSecurityCardError`.
    """
    return _fci_algorithm(_send_select_ssse(processor))


def _send_select_ssse(processor: ApduProcessor) -> ResponseApdu:
    response = processor.send(_SELECT_SSSE)
    if response.sw == 0x6A82:
        raise NotSocialSecurityCardError("the card has no social security application (6A82)")
    if not response.ok:
        raise CardRefusedError("SELECT of the social security application refused", response.sw)
    return response


def _fci_algorithm(response: ResponseApdu) -> int | None:
    if not response.data:
        return None
    try:
        proprietary = find(parse_ber(response.data), 0x9F0C)
    except MalformedResponseError as exc:
        raise MalformedResponseError(exc.reason, file="SSSE FCI") from exc
    if proprietary is None:
        return None
    value = proprietary.value
    # 9F0C carries "86 01 xx" (algorithm identifier); accept a bare byte too.
    if len(value) >= 3 and value[0] == 0x86 and value[1] == 0x01:
        return value[2]
    if len(value) == 1:
        return value[0]
    return None


class _Reader:
    """Reads records by tag, in batches, and records warnings as it goes."""

    def __init__(self, processor: ApduProcessor, info: CardInfo) -> None:
        self.processor = processor
        self.info = info
        self.raw: dict[int, bytes] = {}
        self.decoded: set[int] = set()   # EF05 tags already decoded into ``info``

    def read_all(self, reads: Sequence[tuple[str, Item]]) -> None:
        """Send the READ RECORDs back to back, then check and keep the answers.

        Work done between two exchanges costs several times what it costs after them
        (the process wakes from each exchange with cold caches: bench/card_read.py
        measured it), so the exchanges go first. A refusal still raises, once the batch
        is sent; a card pulled away makes the transport raise at once.
        """
        send = self.processor.send
        answers = [send(_READ_RECORD[file, item.tag]) for file, item in reads]
        for (file, item), response in zip(reads, answers, strict=True):
            self._keep(file, item, response)

    def _keep(self, file: str, item: Item, response: ResponseApdu) -> None:
        if response.sw == 0x6A83 and item.tag == 0x4E:
            # The name extension is optional (a short name has none).
            self.info.warnings.append("EF06 has no name extension (tag 4E)")
            return
        self._check_sw(file, item, response)
        try:
            record = parse_simple(response.data, what=_RECORD_WHAT[file])
        except MalformedResponseError as exc:
            raise MalformedResponseError(exc.reason, file=file, record=item.tag) from exc
        if record.tag != item.tag:
            raise MalformedResponseError(
                f"asked for tag {item.tag:02X}, the card answered tag {record.tag:02X}",
                file=file, record=item.tag)
        if len(record.value) > item.length:
            raise MalformedResponseError(
                f"{item.name} is {len(record.value)} bytes, at most {item.length} expected",
                file=file, record=item.tag)
        if len(record.value) < item.length and item.tag not in (0x09, 0x4E):
            self.info.warnings.append(
                f"{file} tag {item.tag:02X} ({item.name}) is {len(record.value)} bytes, "
                f"the table says {item.length}: read what is there")
        self.raw[item.tag] = record.value

    def _check_sw(self, file: str, item: Item, response: ResponseApdu) -> None:
        if response.ok:
            return
        if response.sw == 0x6982:
            raise SecurityStatusNotSatisfiedError(
                f"{file} tag {item.tag:02X} needs read authentication", response.sw)
        raise CardRefusedError(f"READ RECORD {file} tag {item.tag:02X} refused", response.sw)


def _an(reader: _Reader, value: bytes, what: str) -> str:
    text = value.rstrip(b"\x00 ").decode("ascii", errors="replace").strip()
    if "\ufffd" in text:
        reader.info.warnings.append(f"{what} holds non-ASCII bytes")
    return text


def _decode_ef05(reader: _Reader) -> None:
    """Decode the EF05 items read since the last call (the free items are decoded before
    authentication, the rest after it; each once, so each warning once)."""
    info = reader.info
    raw = reader.raw
    todo = {tag for tag in raw if tag <= 0x07} - reader.decoded
    reader.decoded |= todo
    if 0x01 in todo:
        info.card_identification_code = raw[0x01].hex().upper()
    if 0x02 in todo:
        info.card_type = _an(reader, raw[0x02], "card type")
    if 0x03 in todo:
        info.spec_version = _an(reader, raw[0x03], "specification version")
    if 0x04 in todo:
        info.initialising_institution = raw[0x04].hex().upper()
    for tag, attr, what in ((0x05, "issue_date", "issue date"),
                            (0x06, "expiry_date", "expiry date")):
        if tag in todo:
            value = decode_bcd_date(raw[tag])
            if value is None:
                info.warnings.append(f"EF05 tag {tag:02X} ({what}) is not a BCD date")
            setattr(info, attr, value)
    if 0x07 in todo:
        number = _an(reader, raw[0x07], "card number")
        if number != number.upper():
            info.warnings.append("card number is in lower case")
            number = number.upper()
        info.card_number = number[:9]
        check = info.card_number_check
        if check.valid is False:
            info.warnings.append("card number check character does not match")


def join_name(name: bytes, extension: bytes) -> str:
    """The holder's name from the name field (tag 09) and its extension (tag 4E).

    A name longer than the field continues in the extension byte for byte: an English name
    (Hainan §5, foreign holders) may break at a space, which is content, not padding, so
    the two fields are joined before decoding (also keeping a GB 18030 character whole
    across the break). Padding (00 or 20) is dropped only after the whole name.
    """
    if not extension.rstrip(b"\x00 "):
        return decode_gb18030(name)
    return decode_gb18030(name.rstrip(b"\x00") + extension)


def _decode_ef06(reader: _Reader) -> None:
    info = reader.info
    raw = reader.raw
    if 0x08 in raw:
        number = _an(reader, raw[0x08], "social security number")
        if number != number.upper():
            info.warnings.append("social security number is in lower case")
            number = number.upper()
        info.social_security_number = number
        check = info.id_number_check
        if check.valid is False:
            info.warnings.append("social security number check digit does not match "
                                 f"({check.rule.value})")
    info.name = join_name(raw.get(0x09, b""), raw.get(0x4E, b""))
    if "\ufffd" in info.name:
        info.warnings.append("name holds bytes that are not GB 18030")
    if 0x0A in raw:
        info.sex_code = _an(reader, raw[0x0A], "sex")
    if 0x0B in raw:
        info.ethnicity_code = raw[0x0B].hex().upper()
    if 0x0C in raw:
        info.birthplace = decode_region(raw[0x0C])
    if 0x0D in raw:
        info.birth_date = decode_bcd_date(raw[0x0D])
        if info.birth_date is None:
            info.warnings.append("EF06 tag 0D (birth date) is not a BCD date")


def read_card_info(
    transport: CardTransport,
    *,
    authenticator: ReadAuthenticator | None = None,
    read_pan: bool = False,
) -> CardInfo:
    """Read EF05 and EF06 of the card behind ``transport``.

    Generation 1 and 2: everything, freely. Generation 3: tags 01, 03, 07, then read
    authentication through ``authenticator`` and the rest; without an authenticator
    the free items only, ``complete=False``. A card pulled mid-read raises
    :class:`CardRemovedError` (from the transport); nothing partial is returned as
    complete.
    """
    processor = ApduProcessor(transport)
    info = CardInfo(atr=transport.atr, interface=transport.interface,
                    reader=transport.reader_name)
    selected = _send_select_ssse(processor)
    reader = _Reader(processor, info)
    reader.read_all([("EF05", EF05_ITEMS[tag - 1]) for tag in GEN3_FREE_TAGS])
    info.algorithm = _fci_algorithm(selected)
    _decode_ef05(reader)
    generation = info.generation
    needs_auth = generation is not None and generation >= 3
    if needs_auth:
        if authenticator is None:
            _mark_incomplete(info)
            return _with_pan(transport, info, read_pan)
        _authenticate(processor, info, authenticator)
    try:
        _read_rest(reader, generation)
    except SecurityStatusNotSatisfiedError:
        if needs_auth:
            raise
        # A card below generation 3 that still wants read authentication.
        if authenticator is None:
            _mark_incomplete(info)
            return _with_pan(transport, info, read_pan)
        _authenticate(processor, info, authenticator)
        _read_rest(reader, generation)
    _decode_ef05(reader)
    _decode_ef06(reader)
    return _with_pan(transport, info, read_pan)


def _read_rest(reader: _Reader, generation: int | None) -> None:
    reads = [("EF05", item) for item in EF05_ITEMS if item.tag not in reader.raw]
    # Generation 1 cards have no name extension (tag 4E).
    reads += [("EF06", item) for item in EF06_ITEMS if item.tag != 0x4E or generation != 1]
    reader.read_all(reads)


def _authenticate(processor: ApduProcessor, info: CardInfo,
                  authenticator: ReadAuthenticator) -> None:
    context = CardAuthContext(
        card_identification_code=bytes.fromhex(info.card_identification_code),
        algorithm=info.algorithm if info.algorithm is not None else 0x03,
        atr=info.atr,
        region=info.region,
    )
    authenticator.authenticate(processor, context)
    info.authenticated_by = authenticator.name
    _log.info("card authenticated by %s", authenticator.name)


def _mark_incomplete(info: CardInfo) -> None:
    info.complete = False
    info.incomplete_reason = GEN3_NO_MODULE_REASON


def _with_pan(transport: CardTransport, info: CardInfo, read_pan: bool) -> CardInfo:
    if read_pan:
        try:
            info.pan = read_bank_pan(transport)
        except CardApplicationError:
            info.warnings.append("no bank application on the card")
    info.warnings[:] = list(dict.fromkeys(info.warnings))
    return info
