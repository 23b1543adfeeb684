"""Electronic social security card codes: format, recognition and verification.

Our open format (``SC1:`` + base45 of a COSE_Sign1 over a CBOR payload, see
``docs/ecode.md``) verifies offline; national e-card and e-voucher codes are opaque and
go to the central. :class:`ECodeVerifier` judges all of them.
"""

from __future__ import annotations

from .algorithms import (
    DEFAULT_ALGORITHMS,
    EDDSA,
    ES256,
    Ed25519Algorithm,
    Es256Algorithm,
    SignatureAlgorithm,
)
from .base45 import b45decode, b45encode
from .cose import CoseSign1, decode_sign1, encode_sign1
from .format import PREFIX, decode_text, encode_text
from .issuer import ECodeIssuer
from .payload import ECodePayload
from .reasons import Reason
from .recognise import SIMULATOR_SHAPES, CodeKind, CodeShape, RecognitionProfile
from .replay_cache import MemoryReplayCache, ReplayCache, SqliteReplayCache
from .trust_list import (
    CachedTrustListFile,
    CentralTrustListProvider,
    SignerKey,
    StaticTrustListProvider,
    TrustList,
    TrustListProvider,
    TrustListSource,
    trust_list_from_central,
)
from .verifier import (
    ECodeCentral,
    ECodeVerification,
    ECodeVerifier,
    OpaquePolicy,
)

__all__ = [
    "DEFAULT_ALGORITHMS",
    "EDDSA",
    "ES256",
    "PREFIX",
    "SIMULATOR_SHAPES",
    "CachedTrustListFile",
    "CentralTrustListProvider",
    "CodeKind",
    "CodeShape",
    "CoseSign1",
    "ECodeCentral",
    "ECodeIssuer",
    "ECodePayload",
    "ECodeVerification",
    "ECodeVerifier",
    "Ed25519Algorithm",
    "Es256Algorithm",
    "MemoryReplayCache",
    "OpaquePolicy",
    "Reason",
    "RecognitionProfile",
    "ReplayCache",
    "SignatureAlgorithm",
    "SignerKey",
    "SqliteReplayCache",
    "StaticTrustListProvider",
    "TrustList",
    "TrustListProvider",
    "TrustListSource",
    "b45decode",
    "b45encode",
    "decode_sign1",
    "decode_text",
    "encode_sign1",
    "encode_text",
    "trust_list_from_central",
]
