"""A read authenticator holding the public test master keys, for tests of the read path.

It plays the security module's part in-process (as a PSAM or the central HSM would),
so the generation 3 read flow can be tested before and apart from the real modules.
Never use it outside tests: real master keys live only in PSAMs and the HSM.
"""

from __future__ import annotations

import os

from sscard_terminal.apdu import ApduProcessor, CommandApdu
from sscard_terminal.cards.authentication.context import CardAuthContext
from sscard_terminal.errors import CardRefusedError, ForgedCardError

from . import card_keys

__all__ = ["MasterKeyAuthenticator"]


class MasterKeyAuthenticator:
    """Internal then external authentication with keys diversified from test master keys."""

    name = "test:master-keys"

    def __init__(self, mk_int: bytes = card_keys.TEST_MK_INT,
                 mk_ext: bytes = card_keys.TEST_MK_EXT) -> None:
        self._mk_int = mk_int
        self._mk_ext = mk_ext

    def authenticate(self, processor: ApduProcessor, card: CardAuthContext) -> None:
        k_int = card_keys.diversify(self._mk_int, card.card_identification_code, card.algorithm)
        k_ext = card_keys.diversify(self._mk_ext, card.card_identification_code, card.algorithm)
        challenge = os.urandom(16)
        answer = processor.send(CommandApdu(0x00, 0x88, 0x00, 0x00, challenge, le=0x10))
        if not answer.ok:
            raise CardRefusedError("INTERNAL AUTHENTICATE refused", answer.sw)
        if answer.data != card_keys.encrypt_block(k_int, challenge, card.algorithm):
            raise ForgedCardError("internal authentication mismatch: forged or cloned card")
        got = processor.send(CommandApdu(0x00, 0x84, 0x00, 0x00, le=0x08))
        if not got.ok or len(got.data) != 8:
            raise CardRefusedError("GET CHALLENGE refused", got.sw)
        cryptogram = card_keys.encrypt_block(k_ext, got.data + bytes(8), card.algorithm)
        done = processor.send(CommandApdu(0x00, 0x82, 0x00, 0x0A, cryptogram))
        if not done.ok:
            raise CardRefusedError("EXTERNAL AUTHENTICATE refused", done.sw)
