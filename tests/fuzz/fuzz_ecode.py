"""Fuzz target for the e-code decoder and verifier.

With atheris installed: ``python tests/fuzz/fuzz_ecode.py [libFuzzer options]``.
Without it, the same target runs a bounded random loop seeded from mutations of a valid
code: ``python tests/fuzz/fuzz_ecode.py --iterations 100000 --seed 7``.

The property: any input yields an :class:`ECodeVerification` (accepted or refused with a
reason), and decoding raises nothing but ``ECodeError``. Anything else is a finding.
"""

from __future__ import annotations

import argparse
import random
import sys
import zlib

from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sscard_terminal.deadline import Deadline
from sscard_terminal.ecode import (
    PREFIX,
    ECodeIssuer,
    ECodePayload,
    ECodeVerifier,
    MemoryReplayCache,
    SignerKey,
    StaticTrustListProvider,
    TrustList,
    b45encode,
    decode_sign1,
    decode_text,
)
from sscard_terminal.ecode.algorithms import EDDSA
from sscard_terminal.errors import ECodeError

_KEY = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_ISSUER = ECodeIssuer(b"fuzz-1", _KEY)
_TRUST = TrustList.build([SignerKey(b"fuzz-1", EDDSA, _KEY.public_key().public_bytes(
    Encoding.Raw, PublicFormat.Raw))])
_NOW = 1_700_000_000
_SEED_CODE = _ISSUER.issue("a" * 24, "330100", now=_NOW, nonce=b"\x01" * 16)


def _verifier() -> ECodeVerifier:
    return ECodeVerifier(StaticTrustListProvider(_TRUST), MemoryReplayCache(1000),
                         clock=lambda: float(_NOW))


def check_one(verifier: ECodeVerifier, data: bytes) -> None:
    """Run one input through every entry point; raise AssertionError on a finding."""
    text = data.decode("latin-1")
    for candidate in (text, PREFIX + text, PREFIX + b45encode(data),
                      PREFIX + b45encode(zlib.compress(data))):
        result = verifier.verify(candidate, deadline=Deadline.never())
        assert result.accepted in (True, False) and result.reason is not None
        try:
            sign1 = decode_sign1(decode_text(candidate))
            ECodePayload.from_cbor(sign1.payload)
        except ECodeError:
            pass


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 8)):
        choice = rng.random()
        if choice < 0.4 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.6 and data:
            del data[rng.randrange(len(data)):][: rng.randint(1, 16)]
        elif choice < 0.8:
            at = rng.randrange(len(data) + 1)
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 300)))
    return bytes(data)


def random_loop(iterations: int, seed: int) -> int:
    """The fallback fuzzer: mutations of a valid code's COSE bytes and of its text."""
    rng = random.Random(seed)
    verifier = _verifier()
    cose = decode_text(_SEED_CODE)
    seeds = [cose, _SEED_CODE.encode(), zlib.compress(cose)]
    for _ in range(iterations):
        check_one(verifier, _mutate(rng, rng.choice(seeds)))
    return iterations


def main(argv: list[str]) -> int:
    try:
        import atheris  # type: ignore[import-not-found]  # noqa: PLC0415 - optional
    except ImportError:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--iterations", type=int, default=20_000)
        parser.add_argument("--seed", type=int, default=1)
        args = parser.parse_args(argv)
        done = random_loop(args.iterations, args.seed)
        print(f"fuzz_ecode: {done} inputs, no finding (atheris not installed: random loop)")
        return 0
    verifier = _verifier()
    atheris.Setup([sys.argv[0], *argv], lambda data: check_one(verifier, data))
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
