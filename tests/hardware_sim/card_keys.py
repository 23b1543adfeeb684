"""Key diversification and block encryption of the social security card's read
authentication, per ../shared/spec/sscard-card.md ("Third-generation cards").

Only simulators use this module (virtual card, virtual PSAM, central HSM): a real
deployment's master keys live in its PSAMs and HSM, never in the terminal.
"""

from __future__ import annotations

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

__all__ = [
    "ALGORITHM_3DES",
    "ALGORITHM_SM4",
    "TEST_MK_EXT",
    "TEST_MK_INT",
    "diversify",
    "encrypt_block",
]

ALGORITHM_3DES = 0x01
ALGORITHM_SSF33 = 0x02
ALGORITHM_SM4 = 0x03

# Public test master keys from the spec; for simulators and tests only.
TEST_MK_INT = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
TEST_MK_EXT = bytes.fromhex("0F0E0D0C0B0A09080706050403020100")


def encrypt_block(key: bytes, block: bytes, algorithm: int) -> bytes:
    """ECB-encrypt a 16-byte block with a 16-byte key (SM4, or two-key 3DES)."""
    if len(key) != 16 or len(block) != 16:
        raise ValueError("key and block must be 16 bytes")
    if algorithm == ALGORITHM_SM4:
        cipher = Cipher(algorithms.SM4(key), modes.ECB())
    elif algorithm == ALGORITHM_3DES:
        # Two-key 3DES as K1 K2 K1: the same cipher, without the deprecated 16-byte form.
        cipher = Cipher(TripleDES(key + key[:8]), modes.ECB())
    else:
        raise ValueError(f"algorithm {algorithm:02X} is not supported")
    encryptor = cipher.encryptor()
    return encryptor.update(block) + encryptor.finalize()


def diversify(master_key: bytes, card_identification_code: bytes, algorithm: int) -> bytes:
    """``K = ENC(MK, card identification code)``: the card's own key."""
    return encrypt_block(master_key, card_identification_code, algorithm)
