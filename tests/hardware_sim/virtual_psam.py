"""A virtual PSAM for vpcd slot 1 ("Virtual PCD 00 01") or the in-process ``sim:`` link.

It holds the public test master keys (card_keys.py) and speaks our PSAM conventions:
SELECT DF01, ``80 1A <usage> <alg> 10 <idcode>`` derive, ``80 FA 00 00 10 <block>``
encrypt with the key derived last, READ BINARY by SFI of 0016 (terminal number) and
0015 (serial). Variants model the unified interface's fallbacks: :func:`full_psam`,
:func:`psam_without_read_key` (-2203) and :func:`psam_without_sm4` (-2202).
"""

from __future__ import annotations

from .card_keys import (
    ALGORITHM_3DES,
    ALGORITHM_SM4,
    TEST_MK_EXT,
    TEST_MK_INT,
    diversify,
    encrypt_block,
)

__all__ = ["VirtualPsam", "full_psam", "psam_without_read_key", "psam_without_sm4"]

_OK = b"\x90\x00"
_PSAM_ATR = bytes.fromhex("3B6900008000010000000000")


class VirtualPsam:
    """A PSAM as a :class:`~sscard_hardware_sim.device.VirtualDevice`."""

    def __init__(
        self,
        *,
        has_read_key: bool = True,
        algorithms: frozenset[int] = frozenset({ALGORITHM_SM4, ALGORITHM_3DES}),
        terminal_number: str = "410100813475",
        serial: str = "00000000000000000001",
    ) -> None:
        self.has_read_key = has_read_key
        self.algorithms = algorithms
        self._files = {0x16: bytes.fromhex(terminal_number), 0x15: bytes.fromhex(serial)}
        self._selected = False
        self._key: bytes | None = None
        self._algorithm = ALGORITHM_SM4
        self.commands = 0

    @property
    def atr(self) -> bytes:
        return _PSAM_ATR

    @property
    def interface(self) -> str:
        """A PSAM sits in a contact slot."""
        return "contact"

    def power_on(self) -> None:
        self._selected = False
        self._key = None

    def power_off(self) -> None:
        self.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        self.commands += 1
        if len(apdu) < 4:
            return bytes.fromhex("6700")
        cla, ins, p1, p2 = apdu[:4]
        body = apdu[5:5 + apdu[4]] if len(apdu) > 5 else b""
        if cla == 0x00 and ins == 0xA4:
            if body == bytes.fromhex("DF01"):
                self._selected = True
                self._key = None
                return _OK
            return bytes.fromhex("6A82")
        if cla == 0x00 and ins == 0xB0:
            data = self._files.get(p1 & 0x1F) if p1 & 0x80 else None
            if data is None or not self._selected:
                return bytes.fromhex("6A82")
            return data + _OK
        if cla != 0x80:
            return bytes.fromhex("6E00")
        if ins == 0x1A:
            return self._derive(p1, p2, body)
        if ins == 0xFA:
            if self._key is None:
                return bytes.fromhex("6985")
            if len(body) != 16:
                return bytes.fromhex("6700")
            return encrypt_block(self._key, body, self._algorithm) + _OK
        return bytes.fromhex("6D00")

    def _derive(self, usage: int, p2: int, idcode: bytes) -> bytes:
        if not self._selected:
            return bytes.fromhex("6985")
        algorithm = {0x00: ALGORITHM_SM4, 0x03: ALGORITHM_SM4, 0x01: ALGORITHM_3DES}.get(p2)
        if algorithm is None or algorithm not in self.algorithms:
            return bytes.fromhex("6A81")
        if len(idcode) != 16:
            return bytes.fromhex("6700")
        if usage == 0x01:
            master = TEST_MK_INT
        elif usage == 0x02:
            if not self.has_read_key:
                return bytes.fromhex("6A88")
            master = TEST_MK_EXT
        else:
            return bytes.fromhex("6A86")
        self._key = diversify(master, idcode, algorithm)
        self._algorithm = algorithm
        return _OK


def full_psam() -> VirtualPsam:
    return VirtualPsam()


def psam_without_read_key() -> VirtualPsam:
    """Knows K_int but not the read key RKSSSE: unified code -2203."""
    return VirtualPsam(has_read_key=False)


def psam_without_sm4() -> VirtualPsam:
    """A 3DES-only PSAM: an SM4 card gives unified code -2202."""
    return VirtualPsam(algorithms=frozenset({ALGORITHM_3DES}))
