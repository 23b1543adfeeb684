"""Synthetic card holders for the virtual cards (made-up people, valid check digits).

Run ``python -m sscard_hardware_sim.holders`` to regenerate ``data/*.json``. Every
ID number is built from a real region code and a real date with a correct GB 11643
check digit, but belongs to nobody; names are invented.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import card_keys

__all__ = ["HOLDERS", "build_all", "card_number_check", "id_check_digit"]

DATA_DIR = Path(__file__).parent / "data"

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CARD_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def id_check_digit(first17: str) -> str:
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def card_number_check(first8: str) -> str:
    total = sum(int(c, 36) * w for c, w in zip(first8, _CARD_WEIGHTS, strict=True))
    r = 11 - total % 11
    return "X" if r == 10 else "0" if r == 11 else str(r)


def _an(text: str, length: int) -> str:
    return text.encode("ascii").ljust(length, b" ")[:length].hex().upper()


def _gbk(text: str, length: int, pad: bytes) -> str:
    raw = text.encode("gb18030")
    return (raw + pad * (length - len(raw))).hex().upper()


def _holder(
    *,
    region: str,
    issuer: str,
    version: str,
    card8: str,
    id17: str,
    name: str,
    sex: str,
    ethnicity: str,
    birthplace: str,
    birth: str,
    issued: str,
    expires: str,
    algorithm: int = card_keys.ALGORITHM_SM4,
    interface: str = "contact",
    name_pad: bytes = b"\x00",
    name_ext: str = "",
    id_lower: bool = False,
    short_birthplace: bool = False,
    foreign_number: str = "",
) -> dict[str, Any]:
    ident = region + "D156000005" + issuer
    card_number = card8 + card_number_check(card8)
    id_number = foreign_number or id17 + id_check_digit(id17)
    if id_lower:
        id_number = id_number.lower()
    generation = int(version[0])
    ef05 = [
        ["01", ident],
        ["02", _an("3", 1)],
        ["03", _an(version, 4)],
        ["04", "0" * 22 + "01"],
        ["05", issued],
        ["06", expires],
        ["07", _an(card_number, 9)],
    ]
    ef06 = [["08", _an(id_number, 18)], ["09", _gbk(name, 30, name_pad)]]
    if generation >= 2:
        ef06.append(["4E", _gbk(name_ext, 20, name_pad)])
    ef06 += [
        ["0A", _an(sex, 1)],
        ["0B", ethnicity],
        ["0C", birthplace[:4] if short_birthplace else birthplace],
        ["0D", birth],
    ]
    hist = "00814E4323869715" + region[:4] + issuer[:6]
    if interface == "contact":
        atr = "3B6D0000" + hist
    else:
        body = "8" + format(len(hist) // 2, "X") + "8001" + hist
        tck = 0
        for byte in bytes.fromhex(body):
            tck ^= byte
        atr = "3B" + body + format(tck, "02X")
    return {
        "atr": atr,
        "interface": interface,
        "algorithm": algorithm,
        "ssse": True,
        "read_auth": generation >= 3,
        "ef05": ef05,
        "ef06": ef06,
        "pin": "123456",
    }


HOLDERS: dict[str, dict[str, Any]] = {
    "gen3-adult": _holder(
        region="330300", issuer="00A1B2C3D4E5F601", version="3.00", card8="W0000001",
        id17="33030219850612003", name="林晓明", sex="1", ethnicity="01",
        birthplace="330302", birth="19850612", issued="20220301", expires="20320301",
    ),
    "gen3-3des": _holder(
        region="330100", issuer="0011223344556677", version="3.00", card8="H1234567",
        id17="33010619900101002", name="陈雨桐", sex="2", ethnicity="01",
        birthplace="330106", birth="19900101", issued="20230515", expires="20330515",
        algorithm=card_keys.ALGORITHM_3DES, interface="contactless",
    ),
    "gen3-child": _holder(
        region="330300", issuer="00A1B2C3D4E5F602", version="3.00", card8="W0000002",
        id17="33030220210907004", name="周可可", sex="2", ethnicity="01",
        birthplace="330302", birth="20210907", issued="20220110", expires="20320110",
    ),
    "gen3-rare-name": _holder(
        region="330300", issuer="00A1B2C3D4E5F603", version="3.00", card8="W0000003",
        id17="33030219771203005", name="王𠮷䶮", sex="1", ethnicity="02",
        birthplace="330302", birth="19771203", issued="20211111", expires="20311111",
        name_pad=b" ",
    ),
    "other-province": _holder(
        region="639900", issuer="7F3C2A1B0C0D0E0F", version="3.00", card8="Q0000021",
        id17="63010219690218001", name="马卓玛", sex="2", ethnicity="04",
        birthplace="630102", birth="19690218", issued="20210601", expires="20310601",
    ),
    "expired": _holder(
        region="330300", issuer="00A1B2C3D4E5F604", version="2.00", card8="W0000004",
        id17="33030219600101006", name="张国强", sex="1", ethnicity="01",
        birthplace="330302", birth="19600101", issued="20090801", expires="20190801",
    ),
    "gen2-adult": _holder(
        region="330300", issuer="00A1B2C3D4E5F605", version="2.00", card8="W0000005",
        id17="33030219751120007", name="刘思远", sex="1", ethnicity="01",
        birthplace="330302", birth="19751120", issued="20180420", expires="20280420",
    ),
    "gen1-adult": _holder(
        region="330300", issuer="00A1B2C3D4E5F606", version="1.00", card8="W0000006",
        id17="33030219550309006", name="黄秀英", sex="2", ethnicity="01",
        birthplace="330302", birth="19550309", issued="20100310", expires="20300310",
        name_pad=b" ", id_lower=True, short_birthplace=True,
    ),
    "gen3-cloned": _holder(
        region="330300", issuer="00A1B2C3D4E5F607", version="3.00", card8="W0000007",
        id17="33030219880808009", name="吴一凡", sex="1", ethnicity="01",
        birthplace="330302", birth="19880808", issued="20230101", expires="20330101",
    ),
    # A foreign holder (Hainan §5): the name in English where there is none in Chinese, 38
    # characters split across the name field (30 bytes, ending in a space) and its
    # extension; a social security number under the national rule for foreigners (15
    # characters, country letters then digits), not an 18-digit citizen ID number.
    "foreign-holder": _holder(
        region="330300", issuer="00A1B2C3D4E5F608", version="3.00", card8="W0000008",
        id17="", name="ALEXANDER JONATHAN SMITHERSON ", name_ext="WILLIAMS", sex="1",
        ethnicity="97", birthplace="330302", birth="19850612", issued="20240301",
        expires="20340301", foreign_number="GBR330385061201",
    ),
}
HOLDERS["gen3-cloned"]["keys"] = {
    "internal": "DEADBEEF00112233445566778899AABB",
    "external": "BBAA99887766554433221100EFBEADDE",
}
# Social security cards are usually bank cards too.
HOLDERS["gen2-adult"]["pan"] = "6217000010000001234"
HOLDERS["bank-only"] = {
    "atr": "3B8880010000000000718100F9",
    "interface": "contactless",
    "ssse": False,
    "pan": "6217000010000000003",
    "aid": "A000000333010101",
}


def build_all() -> None:
    DATA_DIR.mkdir(exist_ok=True)
    for name, data in HOLDERS.items():
        text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
        (DATA_DIR / f"{name}.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    build_all()
