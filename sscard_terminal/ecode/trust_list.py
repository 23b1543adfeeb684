"""The trust list: which key ids may sign e-codes, with which algorithm, and which are revoked.

The central publishes it as a COSE_Sign1 signed by a root key the terminal is configured
with, so a cached copy on disk can be trusted offline. Its payload is CBOR::

    {1: version (1), 2: issued_at (Unix s),
     3: [[kid: bstr, alg: int, key: bstr, revoked: bool], ...]}

Keys are parsed once, when the list is loaded, so verifying a code does no key parsing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import cbor2

from ..deadline import Deadline
from ..errors import ConfigError, MalformedECodeError
from .algorithms import DEFAULT_ALGORITHMS, SignatureAlgorithm, VerifyKey
from .cose import decode_sign1, encode_sign1, strict_cbor_loads

__all__ = [
    "FileTrustListProvider",
    "SignerKey",
    "StaticTrustListProvider",
    "TrustList",
    "TrustListProvider",
    "encode_trust_list",
    "load_signed_trust_list",
]

_MAX_TRUST_LIST_BYTES = 1 << 20


@dataclass(frozen=True)
class SignerKey:
    """One e-code signing key as the trust list publishes it."""

    kid: bytes
    alg: int
    public_key: bytes
    revoked: bool = False


@dataclass(frozen=True)
class TrustList:
    """Signer keys by key id, with their public keys already loaded."""

    issued_at: int
    keys: Mapping[bytes, SignerKey]
    loaded: Mapping[bytes, VerifyKey] = field(repr=False)

    @classmethod
    def build(cls, keys: Iterable[SignerKey], issued_at: int = 0,
              algorithms: Mapping[int, SignatureAlgorithm] = DEFAULT_ALGORITHMS) -> TrustList:
        """Load every key whose algorithm is known; keys of unknown algorithms are kept
        (so the refusal can say "unsupported algorithm") but not loaded."""
        by_kid: dict[bytes, SignerKey] = {}
        loaded: dict[bytes, VerifyKey] = {}
        for key in keys:
            by_kid[key.kid] = key
            algorithm = algorithms.get(key.alg)
            if algorithm is None:
                continue
            try:
                loaded[key.kid] = algorithm.load_public_key(key.public_key)
            except ValueError as exc:
                raise ConfigError(f"trust list key {key.kid.hex()} is not a valid "
                                  f"{algorithm.name} key") from exc
        return cls(issued_at, by_kid, loaded)


class TrustListProvider(Protocol):
    """Where the verifier gets the current trust list (a central client, a file, a test)."""

    def trust_list(self, deadline: Deadline) -> TrustList:
        """The current, verified trust list; raise an ``SscardError`` if there is none."""
        ...


@dataclass(frozen=True)
class StaticTrustListProvider:
    """A fixed trust list (tests, benchmarks, a terminal provisioned by hand)."""

    fixed: TrustList

    def trust_list(self, deadline: Deadline) -> TrustList:
        return self.fixed


def encode_trust_list(keys: Iterable[SignerKey], issued_at: int, root_kid: bytes,
                      root_alg: int, sign: Callable[[bytes], bytes]) -> bytes:
    """The signed trust list document (central side and simulator)."""
    entries = [[k.kid, k.alg, k.public_key, k.revoked] for k in keys]
    payload = cbor2.dumps({1: 1, 2: issued_at, 3: entries})
    return encode_sign1(root_alg, root_kid, payload, sign)


def load_signed_trust_list(
    document: bytes, root_keys: Mapping[bytes, tuple[int, bytes]],
    algorithms: Mapping[int, SignatureAlgorithm] = DEFAULT_ALGORITHMS,
) -> TrustList:
    """Verify a signed trust list against the configured root keys and load it.

    ``root_keys`` maps a root key id to ``(alg, raw public key)``. Raise
    :class:`ConfigError` when the document is not signed by one of them or is malformed.
    """
    if len(document) > _MAX_TRUST_LIST_BYTES:
        raise ConfigError("the trust list is too large")
    try:
        sign1 = decode_sign1(document)
        root = root_keys.get(sign1.kid)
        algorithm = algorithms.get(sign1.alg)
        if root is None or algorithm is None or root[0] != sign1.alg:
            raise ConfigError(f"the trust list is signed by an unknown root key "
                              f"{sign1.kid.hex()}")
        if not algorithm.verify(algorithm.load_public_key(root[1]), sign1.signature,
                                sign1.to_be_signed()):
            raise ConfigError("the trust list signature does not verify")
        body = strict_cbor_loads(sign1.payload, "the trust list")
        if not isinstance(body, dict) or body.get(1) != 1 or type(body.get(2)) is not int:
            raise ConfigError("the trust list has an unknown structure")
        entries = body.get(3)
        if not isinstance(entries, list):
            raise ConfigError("the trust list has no key array")
        keys = []
        for entry in entries:
            if (not isinstance(entry, list) or len(entry) != 4 or type(entry[0]) is not bytes
                    or type(entry[1]) is not int or type(entry[2]) is not bytes
                    or type(entry[3]) is not bool):
                raise ConfigError("a trust list entry has the wrong shape")
            keys.append(SignerKey(entry[0], entry[1], entry[2], entry[3]))
    except MalformedECodeError as exc:
        raise ConfigError(f"the trust list is malformed: {exc}") from exc
    except ValueError as exc:
        raise ConfigError("a trust list root key is not a valid public key") from exc
    return TrustList.build(keys, body[2], algorithms)


class FileTrustListProvider:
    """A signed trust list cached on disk; re-read (and re-verified) when the file changes.

    Whoever fetches the list from the central writes it here atomically (write a
    temporary file, then rename); this provider only reads.
    """

    def __init__(self, path: str | os.PathLike[str],
                 root_keys: Mapping[bytes, tuple[int, bytes]],
                 algorithms: Mapping[int, SignatureAlgorithm] = DEFAULT_ALGORITHMS) -> None:
        self._path = Path(path)
        self._root_keys = dict(root_keys)
        self._algorithms = algorithms
        self._lock = threading.Lock()
        self._cached: tuple[tuple[int, int], TrustList] | None = None

    def trust_list(self, deadline: Deadline) -> TrustList:
        try:
            st = self._path.stat()
        except OSError as exc:
            raise ConfigError(f"no trust list at {self._path}: {exc.strerror}") from exc
        stamp = (st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._cached is not None and self._cached[0] == stamp:
                return self._cached[1]
        try:
            document = self._path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read the trust list {self._path}: {exc.strerror}") from exc
        loaded = load_signed_trust_list(document, self._root_keys, self._algorithms)
        with self._lock:
            self._cached = (stamp, loaded)
        return loaded
