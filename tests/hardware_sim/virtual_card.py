"""A virtual social security card that serves its file system from a JSON data file.

It follows ../shared/spec/sscard-card.md: SELECT by name (SSSE, PSE/PPSE, bank AID) and
by FID (EF05/EF06), READ RECORD in all three forms, GET RESPONSE, generation 3 access
conditions (69 82 on non-free items until INTERNAL AUTHENTICATE + GET CHALLENGE +
EXTERNAL AUTHENTICATE), PIN VERIFY and CHANGE PIN. Unknown instructions answer 6D00,
unknown classes 6E00: never a silent 9000.

:class:`Faults` injects what real cards and readers do wrong: pulled after N APDUs,
T=0 answers (61 XX), slowness, wrong status words, truncated and oversized records.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sscard_terminal.errors import CardRemovedError

from . import card_keys

__all__ = ["DATA_DIR", "CardPulledError", "Faults", "VirtualCard", "holder_names", "load_holder"]

DATA_DIR = Path(__file__).parent / "data"

SSSE_NAME = bytes.fromhex("7378312E73682EC9E7BBE1B1A3D5CF")
PSE_NAME = b"1PAY.SYS.DDF01"
PPSE_NAME = b"2PAY.SYS.DDF01"
FREE_TAGS_GEN3 = frozenset({0x01, 0x03, 0x07})

_OK = b"\x90\x00"


class CardPulledError(CardRemovedError):
    """The simulated card left the field: the vpcd link closes; the ``sim:`` transport
    passes it on as the product's own :class:`CardRemovedError`, which is the plug-in
    protocol (sscard_terminal.plugins) for a card leaving the field."""


@dataclass
class Faults:
    """What to get wrong, on purpose."""

    pull_after: int | None = None
    """Leave the field when the (pull_after + 1)-th APDU arrives."""
    t0: bool = False
    """Answer data-bearing commands with 61 XX and hand data out via GET RESPONSE."""
    t0_chunk: int | None = None
    """With ``t0``: hand out at most this many bytes per GET RESPONSE (and never more
    than its Le), answering ``61 YY`` while more waits, as a card with a small I/O buffer
    does; the terminal must join every round. None: everything in one GET RESPONSE."""
    delay: float = 0.0
    """Seconds to sleep before each answer (a slow card)."""
    wrong_sw: dict[int, int] = field(default_factory=dict)
    """INS -> status word to answer instead (e.g. {0xB2: 0x6F00})."""
    truncated_tag: int | None = None
    """This record claims more bytes than it carries."""
    oversized_tag: int | None = None
    """This record carries 250 bytes of garbage."""


def holder_names() -> list[str]:
    """Names of the synthetic holders in data/ (``gen3-adult``, ...)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.json"))


def load_holder(name: str) -> dict[str, Any]:
    path = DATA_DIR / f"{name}.json"
    if not path.is_file():
        raise KeyError(f"no virtual holder {name!r}; known: {', '.join(holder_names())}")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _records(items: list[list[str]]) -> list[tuple[int, bytes]]:
    return [(int(tag, 16), bytes.fromhex(value)) for tag, value in items]


class VirtualCard:
    """One card; ``VirtualCard.from_holder("gen3-adult")`` loads data/gen3-adult.json."""

    def __init__(self, data: dict[str, Any], faults: Faults | None = None) -> None:
        self.data = data
        self.faults = faults or Faults()
        self._atr = bytes.fromhex(data["atr"])
        self.algorithm: int = data.get("algorithm", card_keys.ALGORITHM_SM4)
        self.ef05 = _records(data.get("ef05", []))
        self.ef06 = _records(data.get("ef06", []))
        self.has_ssse: bool = bool(data.get("ssse", True))
        self.read_auth: bool = bool(data.get("read_auth", False))
        self.pan: str | None = data.get("pan")
        ident = dict(self.ef05).get(0x01, b"\x00" * 16)
        keys = data.get("keys")
        if keys:
            self.k_int = bytes.fromhex(keys["internal"])
            self.k_ext = bytes.fromhex(keys["external"])
        else:
            self.k_int = card_keys.diversify(card_keys.TEST_MK_INT, ident, self.algorithm)
            self.k_ext = card_keys.diversify(card_keys.TEST_MK_EXT, ident, self.algorithm)
        self.pin: str = data.get("pin", "123456")
        self.pin_tries = 3
        self.ext_tries = 3
        self.apdu_count = 0
        self._lock = threading.Lock()
        self.power_on()

    @classmethod
    def from_holder(cls, name: str, faults: Faults | None = None) -> VirtualCard:
        return cls(load_holder(name), faults)

    @property
    def atr(self) -> bytes:
        return self._atr

    @property
    def interface(self) -> str:
        return str(self.data.get("interface", "contact"))

    def power_on(self) -> None:
        self._df: str | None = None  # "SSSE", "PSE", "PPSE", "BANK"
        self._ef: int | None = None
        self._authenticated = False
        self._challenge: bytes | None = None
        self._pending = b""

    def power_off(self) -> None:
        self.power_on()

    # --- dispatch --------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        with self._lock:
            self.apdu_count += 1
            if self.faults.pull_after is not None and self.apdu_count > self.faults.pull_after:
                raise CardPulledError(f"pulled after {self.faults.pull_after} APDUs")
            if self.faults.delay:
                time.sleep(self.faults.delay)
            if len(apdu) < 4:
                return b"\x67\x00"
            ins = apdu[1]
            if ins in self.faults.wrong_sw:
                return self.faults.wrong_sw[ins].to_bytes(2, "big")
            answer = self._dispatch(apdu)
            return self._t0(apdu, answer)

    def _t0(self, apdu: bytes, answer: bytes) -> bytes:
        """In T=0 mode, data of case-4 commands waits for GET RESPONSE."""
        if not self.faults.t0 or len(answer) <= 2 or apdu[1] == 0xC0 or len(apdu) <= 5:
            return answer
        self._pending = answer[:-2]
        return self._more_waiting()

    def _more_waiting(self) -> bytes:
        """``61 XX`` for what waits: XX is the next round's size (00 means 256)."""
        size = len(self._pending)
        if self.faults.t0_chunk is not None:
            size = min(size, self.faults.t0_chunk)
        return bytes((0x61, size & 0xFF))

    def _get_response(self, le: int | None) -> bytes:
        pending, self._pending = self._pending, b""
        if not pending:
            return b"\x69\x85"
        if self.faults.t0_chunk is None:
            return pending + _OK
        size = min(self.faults.t0_chunk, le or 256)
        chunk, self._pending = pending[:size], pending[size:]
        return chunk + (self._more_waiting() if self._pending else _OK)

    def _dispatch(self, apdu: bytes) -> bytes:
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        body = apdu[4:]
        lc = body[0] if len(body) > 1 else 0
        data = body[1 : 1 + lc] if lc else b""
        le = body[-1] if len(body) in (1, 2 + lc) and body else None
        if cla not in (0x00, 0x80, 0x84):
            return b"\x6e\x00"
        if ins == 0xA4:
            return self._select(p1, data)
        if ins == 0xB2:
            return self._read_record(p1, p2, le)
        if ins == 0xC0:
            return self._get_response(le)
        if ins == 0x88 and cla == 0x00:
            if len(data) != 16:
                return b"\x67\x00"
            return card_keys.encrypt_block(self.k_int, data, self.algorithm) + _OK
        if ins == 0x84:
            self._challenge = os.urandom(8)
            return self._challenge + _OK
        if ins == 0x82:
            return self._external_auth(p2, data)
        if ins == 0x20:
            return self._verify_pin(data)
        if ins == 0x24:
            return self._change_pin(data)
        return b"\x6d\x00"

    # --- files -----------------------------------------------------------------------

    def _select(self, p1: int, name: bytes) -> bytes:
        if p1 == 0x04:
            if name == SSSE_NAME and self.has_ssse:
                self._df, self._ef = "SSSE", None
                fci = bytes.fromhex("8407") + SSSE_NAME[:7] + bytes.fromhex("A5")
                prop = bytes.fromhex("9F0C03") + bytes((0x86, 0x01, self.algorithm))
                fci = bytes.fromhex("6F") + bytes((2 + 7 + 2 + len(prop),)) + \
                    fci + bytes((len(prop),)) + prop
                return fci + _OK
            if name in (PSE_NAME, PPSE_NAME) and self.pan:
                self._df, self._ef = "PPSE" if name == PPSE_NAME else "PSE", None
                aid = bytes.fromhex(self.data.get("aid", "A000000333010101"))
                entry = b"\x4f" + bytes((len(aid),)) + aid + b"\x87\x01\x01"
                app = b"\x61" + bytes((len(entry),)) + entry
                dir_ = b"\xbf\x0c" + bytes((len(app),)) + app
                prop = b"\xa5" + bytes((len(dir_),)) + dir_
                head = b"\x84" + bytes((len(name),)) + name
                return b"\x6f" + bytes((len(head) + len(prop),)) + head + prop + _OK
            if self.pan and name == bytes.fromhex(self.data.get("aid", "A000000333010101")):
                self._df, self._ef = "BANK", None
                head = b"\x84" + bytes((len(name),)) + name
                prop = b"\xa5\x03\x50\x01\x55"
                return b"\x6f" + bytes((len(head) + len(prop),)) + head + prop + _OK
            return b"\x6a\x82"
        if p1 in (0x00, 0x02) and len(name) == 2:
            fid = int.from_bytes(name, "big")
            if self._df == "SSSE" and fid in (0xEF05, 0xEF06):
                self._ef = fid & 0xFF
                return _OK
            if fid == 0x3F00:
                self._df, self._ef = None, None
                return _OK
            return b"\x6a\x82"
        return b"\x6a\x86"

    def _file(self, sfi: int) -> list[tuple[int, bytes]] | None:
        if self._df != "SSSE":
            return None
        return {5: self.ef05, 6: self.ef06}.get(sfi)

    def _read_record(self, p1: int, p2: int, le: int | None) -> bytes:
        sfi = p2 >> 3
        mode = p2 & 0x07
        if self._df == "BANK" and sfi == 1 and mode == 4:
            return self._bank_record(p1, le)
        if sfi == 0:
            if self._ef is None:
                return b"\x69\x86"
            sfi = self._ef
        records = self._file(sfi)
        if records is None:
            return b"\x6a\x82"
        if mode == 0:
            found = [r for r in records if r[0] == p1]
        elif mode == 4:
            found = [records[p1 - 1]] if 1 <= p1 <= len(records) else []
        else:
            return b"\x6a\x86"
        if not found:
            return b"\x6a\x83"
        tag, value = found[0]
        if self.read_auth and tag not in FREE_TAGS_GEN3 and not self._authenticated:
            return b"\x69\x82"
        record = bytes((tag, len(value))) + value
        if tag == self.faults.truncated_tag:
            record = bytes((tag, len(value) + 5)) + value
        if tag == self.faults.oversized_tag:
            record = bytes((tag, 250)) + b"\xa5" * 250
        if le != len(record) & 0xFF:
            return bytes((0x6C, len(record) & 0xFF))
        return record + _OK

    def _bank_record(self, number: int, le: int | None) -> bytes:
        if number != 1 or self.pan is None:
            return b"\x6a\x83"
        digits = self.pan + ("F" if len(self.pan) % 2 else "")
        pan = bytes.fromhex(digits)
        inner = b"\x5a" + bytes((len(pan),)) + pan + b"\x5f\x24\x03\x30\x12\x31"
        record = b"\x70" + bytes((len(inner),)) + inner
        if le != len(record):
            return bytes((0x6C, len(record)))
        return record + _OK

    # --- authentication and PIN -----------------------------------------------------

    def _external_auth(self, key_id: int, data: bytes) -> bytes:
        if key_id != 0x0A:
            return b"\x6a\x88"
        if self.ext_tries == 0:
            return b"\x69\x83"
        if self._challenge is None or len(data) != 16:
            return b"\x69\x85"
        expected = card_keys.encrypt_block(self.k_ext, self._challenge + b"\x00" * 8,
                                           self.algorithm)
        self._challenge = None
        if data != expected:
            self.ext_tries -= 1
            return b"\x69\x83" if self.ext_tries == 0 else bytes((0x63, 0xC0 | self.ext_tries))
        self.ext_tries = 3
        self._authenticated = True
        return _OK

    def _verify_pin(self, data: bytes) -> bytes:
        if self.pin_tries == 0:
            return b"\x69\x83"
        if len(data) != 3:
            return b"\x67\x00"
        if data.hex() != self.pin:
            self.pin_tries -= 1
            return b"\x69\x83" if self.pin_tries == 0 else bytes((0x63, 0xC0 | self.pin_tries))
        self.pin_tries = 3
        return _OK

    def _change_pin(self, data: bytes) -> bytes:
        if len(data) != 6:
            return b"\x67\x00"
        answer = self._verify_pin(data[:3])
        if answer != _OK:
            return answer
        self.pin = data[3:].hex()
        return _OK
