"""``iReadCard``: named items, asked for and answered in the DLL's file-address shape.

The request names an application and file, then tags, ``|`` after each, ``$`` closing
the file: ``SSSEEF05|01|07|$SSSEEF06|08|09|$`` (``3F00EF06|...`` is seen too). The
answer repeats the shape with each tag replaced by its value:
``SSSEEF05|<card identification code>|<card number>|$SSSEEF06|<number>|<name>|$``.

Values are those of the iReadCardBas string where they overlap: hex for 01, YYYYMMDD
for dates, the name as tags 09 and 4E joined (so 4E itself is not offered: ask 09).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..cards.card_info import CardInfo
from ..cards.ssse import GEN3_FREE_TAGS
from ..cards.unified import UnifiedCode, unified_date
from .protocol import RequestError

__all__ = ["ItemFile", "format_items", "needs_authentication", "parse_items"]


_VALUES: dict[str, dict[int, Callable[[CardInfo], str]]] = {
    "EF05": {
        0x01: lambda i: i.card_identification_code,
        0x02: lambda i: i.card_type,
        0x03: lambda i: i.spec_version,
        0x04: lambda i: i.initialising_institution,
        0x05: lambda i: unified_date(i.issue_date),
        0x06: lambda i: unified_date(i.expiry_date),
        0x07: lambda i: i.card_number,
    },
    "EF06": {
        0x08: lambda i: i.social_security_number,
        0x09: lambda i: i.name.strip(),
        0x0A: lambda i: i.sex_code,
        0x0B: lambda i: i.ethnicity_code,
        0x0C: lambda i: i.birthplace,
        0x0D: lambda i: unified_date(i.birth_date),
    },
}
_APPLICATIONS = ("SSSE", "3F00")
_MAX_ITEMS = 64


@dataclass(frozen=True)
class ItemFile:
    """One ``<application><file>|tag|tag|$`` group of the request."""

    address: str
    file: str
    tags: tuple[int, ...]


def _bad(message: str) -> RequestError:
    return RequestError(UnifiedCode.BAD_COMMAND_PARAMETERS, message)


def parse_items(text: str) -> tuple[ItemFile, ...]:
    """The files and tags asked for; raises :class:`RequestError` (-14) naming the
    first group or tag that is not understood."""
    groups = [group for group in text.split("$") if group.strip()]
    if not groups or not text.rstrip().endswith("$"):
        raise _bad('items look like "SSSEEF05|01|07|$SSSEEF06|08|09|$"')
    files: list[ItemFile] = []
    count = 0
    for group in groups:
        fields = group.strip().split("|")
        if fields[-1] != "":
            raise _bad(f"group {group[:20]!r} must end with '|' before '$'")
        address, tags_text = fields[0].upper(), fields[1:-1]
        file = address[4:]
        if address[:4] not in _APPLICATIONS or file not in _VALUES:
            raise _bad(f"unknown file {address[:12]!r}: SSSEEF05 or SSSEEF06")
        tags: list[int] = []
        for tag_text in tags_text:
            tag = int(tag_text, 16) if len(tag_text) == 2 and all(
                c in "0123456789abcdefABCDEF" for c in tag_text) else -1
            if tag not in _VALUES[file]:
                raise _bad(f"tag {tag_text[:4]!r} is not an item of {file}"
                           + (" (ask 09: it is the whole name)" if tag == 0x4E else ""))
            tags.append(tag)
        count += len(tags)
        if not tags or count > _MAX_ITEMS:
            raise _bad(f"{file}: between 1 and {_MAX_ITEMS} tags")
        files.append(ItemFile(address, file, tuple(tags)))
    return tuple(files)


def needs_authentication(files: tuple[ItemFile, ...]) -> bool:
    """Whether any item asked for is closed on a generation 3 card until read
    authentication (anything but 01, 03, 07)."""
    return any(tag not in GEN3_FREE_TAGS for item in files for tag in item.tags)


def format_items(files: tuple[ItemFile, ...], info: CardInfo) -> str:
    """The answer: the request's shape with values in place of tags (``|`` removed from
    values, so positions hold). Personal data in clear, as the DLL: never log it."""
    return "".join(
        item.address + "|"
        + "".join(_VALUES[item.file][tag](info).replace("|", "") + "|" for tag in item.tags)
        + "$"
        for item in files)
