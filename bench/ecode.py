"""E-code verification throughput: our verifier vs a bare ``cryptography`` verify.

Both sides verify the same signatures in the same run: the baseline calls
``public_key.verify`` on precomputed Sig_structure bytes; ours takes the full code text
(prefix, base45, CBOR, COSE, payload checks, validity window, replay cache). The ratio is
ours/baseline in verifications per second (goal >= 0.7) for the slower of the two
algorithms. D1's camera decode figures (``bench._camera_decode.run``) are printed too.

``python -m bench ecode [--codes N] [--rounds R] [--images N | --no-camera]``
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from bench import _camera_decode  # D1's camera decode numbers (task D1)
from sscard_terminal.central.models import card_ref
from sscard_terminal.deadline import Deadline
from sscard_terminal.ecode import (
    ECodeIssuer,
    ECodeVerifier,
    MemoryReplayCache,
    SignerKey,
    StaticTrustListProvider,
    TrustList,
    decode_sign1,
    decode_text,
)
from sscard_terminal.ecode.algorithms import EDDSA, ES256

_NOW = 1_700_000_000


def _issuers() -> list[ECodeIssuer]:
    seed = hashlib.sha256(b"bench").digest()
    return [ECodeIssuer(b"bench-es256", ec.derive_private_key(
                int.from_bytes(seed, "big") >> 8, ec.SECP256R1())),
            ECodeIssuer(b"bench-eddsa", ed25519.Ed25519PrivateKey.from_private_bytes(seed))]


def _signer(issuer: ECodeIssuer) -> SignerKey:
    public = issuer.private_key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        return SignerKey(issuer.kid, ES256, public.public_bytes(
            Encoding.X962, PublicFormat.UncompressedPoint))
    return SignerKey(issuer.kid, EDDSA, public.public_bytes(Encoding.Raw, PublicFormat.Raw))


def _baseline(issuer: ECodeIssuer, codes: list[str]) -> Callable[[], None]:
    """Bare cryptography: the same signatures over the same bytes, nothing else."""
    public = issuer.private_key.public_key()
    items = []
    for text in codes:
        sign1 = decode_sign1(decode_text(text))
        sig = sign1.signature
        if isinstance(public, ec.EllipticCurvePublicKey):
            sig = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                                       int.from_bytes(sig[32:], "big"))
        items.append((sig, sign1.to_be_signed()))

    if isinstance(public, ec.EllipticCurvePublicKey):
        ec_key, algorithm = public, ec.ECDSA(hashes.SHA256())

        def run() -> None:
            for sig, message in items:
                ec_key.verify(sig, message, algorithm)
        return run
    assert isinstance(public, ed25519.Ed25519PublicKey)
    ed_key = public

    def run_ed() -> None:
        for sig, message in items:
            ed_key.verify(sig, message)
    return run_ed


def _ours(trust: TrustList, codes: list[str]) -> Callable[[], None]:
    deadline = Deadline.never()

    def run() -> None:
        # A fresh replay cache per round: every code is new to it, as at a real gate.
        verifier = ECodeVerifier(StaticTrustListProvider(trust), MemoryReplayCache(),
                                 clock=lambda: float(_NOW))
        for text in codes:
            if not verifier.verify(text, deadline=deadline).accepted:
                raise RuntimeError("a benchmark code was refused")
    return run


def _best_rates(base: Callable[[], None], ours: Callable[[], None], count: int,
                rounds: int) -> tuple[float, float]:
    """Best-of-``rounds`` rates, the two sides interleaved round by round so that load
    from other processes on the machine falls on both alike."""
    best = [float("inf"), float("inf")]
    for _ in range(rounds):
        for side, run in enumerate((base, ours)):
            start = time.perf_counter()
            run()
            best[side] = min(best[side], time.perf_counter() - start)
    return count / best[0], count / best[1]


def main(argv: list[str]) -> float:
    parser = argparse.ArgumentParser(prog="python -m bench ecode")
    parser.add_argument("--codes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--no-camera", action="store_true")
    args = parser.parse_args(argv)

    issuers = _issuers()
    trust = TrustList.build([_signer(i) for i in issuers])
    ratios = []
    for issuer in issuers:
        codes = [issuer.issue(card_ref(i.to_bytes(16, "big")), "330100", now=_NOW)
                 for i in range(args.codes)]
        base, ours = _best_rates(_baseline(issuer, codes), _ours(trust, codes), len(codes),
                                 args.rounds)
        name = "ES256" if issuer.alg == ES256 else "EdDSA"
        ratios.append(ours / base)
        print(f"{name}: bare cryptography verify {base:9.0f}/s, our verifier "
              f"{ours:9.0f}/s (full decode + checks + replay cache), ratio {ours / base:.3f}")

    if args.no_camera:
        print("camera decode: skipped (--no-camera)")
    else:
        result = _camera_decode.run(images=args.images)
        for line in _camera_decode.format_report(result):
            print(line)
    return min(ratios)
