"""The trust list: which key ids may sign e-codes, with which algorithm, and which are revoked.

The central publishes it as a document signed with its pinned key; the central client
(:meth:`CentralClient.trust_list`) verifies that signature and returns
:class:`sscard_terminal.central.models.TrustList`. Here it is turned into the verifier's
form: key ids as the bytes COSE carries (the UTF-8 of the central's text kid), public keys
parsed once so verifying a code does no key parsing, validity as Unix seconds.

:class:`CentralTrustListProvider` keeps the last good list in memory and in a file, so a
terminal that restarts while the central is down still verifies codes offline. The file
holds the central's signed envelope, written atomically, and is checked against the
pinned central key each time it is read.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_der_public_key,
)

from ..central import models
from ..central.wire import read_signed_trust_list
from ..deadline import Deadline
from ..errors import CentralProtocolError, ConfigError, SscardError
from .algorithms import DEFAULT_ALGORITHMS, EDDSA, ES256, SignatureAlgorithm, VerifyKey

__all__ = [
    "CachedTrustListFile",
    "CentralTrustListProvider",
    "SignerKey",
    "StaticTrustListProvider",
    "TrustList",
    "TrustListProvider",
    "TrustListSource",
    "trust_list_from_central",
]

_log = logging.getLogger(__name__)
_ALG_IDS = {"ES256": ES256, "EdDSA": EDDSA}


@dataclass(frozen=True)
class SignerKey:
    """One e-code signing key: raw public key (65-byte P-256 point or 32-byte Ed25519)."""

    kid: bytes
    alg: int
    public_key: bytes
    revoked: bool = False
    not_before: int | None = None
    """Unix seconds; codes issued earlier are refused (None: no bound)."""
    not_after: int | None = None
    """Unix seconds; codes issued later are refused (None: no bound)."""

    def valid_at(self, when: int) -> bool:
        """Whether a code issued at ``when`` falls inside this key's validity."""
        return ((self.not_before is None or when >= self.not_before)
                and (self.not_after is None or when <= self.not_after))


@dataclass(frozen=True)
class TrustList:
    """Signer keys by key id, with their public keys already loaded."""

    issued_at: str
    keys: Mapping[bytes, SignerKey]
    loaded: Mapping[bytes, VerifyKey] = field(repr=False)

    @classmethod
    def build(cls, keys: Iterable[SignerKey], issued_at: str = "",
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
                raise ConfigError(f"trust list key {key.kid!r} is not a valid "
                                  f"{algorithm.name} key") from exc
        return cls(issued_at, by_kid, loaded)


class TrustListProvider(Protocol):
    """Where the verifier gets the current trust list (central, cache file, tests)."""

    def trust_list(self, deadline: Deadline) -> TrustList:
        """The current, verified trust list; raise an ``SscardError`` if there is none."""
        ...


class TrustListSource(Protocol):
    """The part of the central client this module uses."""

    def trust_list(self, deadline: Deadline) -> models.TrustList:
        """The central's trust list, its signature already verified."""
        ...


@dataclass(frozen=True)
class StaticTrustListProvider:
    """A fixed trust list (tests, benchmarks, a terminal provisioned by hand)."""

    fixed: TrustList

    def trust_list(self, deadline: Deadline) -> TrustList:
        return self.fixed


def _unix(date_text: str, *, end_of_day: bool = False) -> int:
    """An RFC 3339 date or date-time as Unix seconds (a bare date means 00:00 UTC, or
    23:59:59 with ``end_of_day``: a key valid "until 2028-11-22" signs all that day)."""
    if end_of_day and "T" not in date_text:
        return _unix(date_text) + 86_399
    parsed = (dt.datetime.fromisoformat(date_text) if "T" in date_text
              else dt.datetime.combine(dt.date.fromisoformat(date_text), dt.time()))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp())


def _raw_public_key(der: bytes) -> bytes:
    try:
        key = load_der_public_key(der)
    except UnsupportedAlgorithm as exc:  # e.g. an SM2-curve key: not a ValueError
        raise ValueError(f"a key cryptography cannot load ({exc})") from exc
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    raise ValueError("neither a P-256 nor an Ed25519 key")


def trust_list_from_central(
    central: models.TrustList,
    algorithms: Mapping[int, SignatureAlgorithm] = DEFAULT_ALGORITHMS,
) -> TrustList:
    """The verifier's form of the central's (already verified) trust list."""
    keys = []
    for key in central.keys:
        try:
            keys.append(SignerKey(
                key.kid.encode("utf-8"), _ALG_IDS.get(key.alg, 0),
                _raw_public_key(key.public_key), key.revoked,
                _unix(key.not_before), _unix(key.not_after, end_of_day=True)))
        except ValueError as exc:
            raise ConfigError(f"trust list key {key.kid!r} cannot be used: {exc}") from exc
    return TrustList.build(keys, central.issued_at, algorithms)


class CachedTrustListFile:
    """The last good trust list on disk, as the central signed it, and a provider that
    reads only it.

    The file holds the central's signed envelope, not our parsed form: loading it checks
    the signature against the pinned central key again, so a file edited on disk (a
    signer key added, a revocation dropped) is refused instead of trusted.
    ``sscard verify --trust-list FILE`` uses it to verify offline on a technician's laptop.
    """

    def __init__(self, path: str | os.PathLike[str], central_key: Ed25519PublicKey | None,
                 algorithms: Mapping[int, SignatureAlgorithm] = DEFAULT_ALGORITHMS) -> None:
        self.path = Path(path)
        self._central_key = central_key
        self._algorithms = algorithms

    def save(self, central: models.TrustList) -> None:
        """Write the central's signed envelope atomically (temporary file, fsync, rename)."""
        if central.envelope is None:
            raise ValueError("only a trust list read from the central's signed envelope "
                             "can be cached")
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".trust-")
        except OSError as exc:
            raise ConfigError(f"cannot write the trust list cache {self.path}: {exc}") from exc
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(central.envelope, out, ensure_ascii=False)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise ConfigError(f"cannot write the trust list cache {self.path}: {exc}") from exc

    def load(self) -> TrustList:
        """The cached list, its signature checked again; :class:`ConfigError` if it is
        missing, damaged, or not signed by the pinned central key."""
        return trust_list_from_central(self.load_signed(), self._algorithms)

    def load_signed(self) -> models.TrustList:
        """The central's list as the file holds it (with its version), checked as
        :meth:`load` checks it."""
        if self._central_key is None:
            raise ConfigError(
                f"the trust list file {self.path} is trusted only with the central's public "
                f"key: give --central CONFIG or --central-key KEY")
        try:
            envelope = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"no trust list at {self.path}: {exc.strerror}") from exc
        except (ValueError, RecursionError) as exc:   # not JSON, or nested beyond reason
            raise ConfigError(f"the trust list file {self.path} is damaged: {exc}") from exc
        try:
            central = read_signed_trust_list(envelope, self._central_key)
        except CentralProtocolError as exc:
            raise ConfigError(
                f"the trust list file {self.path} was refused ({exc}); it is damaged, edited "
                f"or from another central: delete it and let the terminal fetch a fresh one"
            ) from exc
        return central

    def trust_list(self, deadline: Deadline) -> TrustList:
        return self.load()


class CentralTrustListProvider:
    """Fetch from the central every ``refresh_after`` seconds; between fetches, and
    whenever the central cannot be reached, use the last good list (memory, then file).

    Once a list is in hand, a refresh that falls due runs in a thread of its own, one at
    a time, and the scan that found it due goes on with the list it has. Fetched inline,
    the refresh took that scan's budget (up to all of it while the central was slow),
    leaving nothing for the central's verdict on the card, which a reachable central must
    give (卡码同权); and every lane scanning at that moment fetched again. Only the very
    first list, with nothing to fall back on but the file, is fetched by the caller.
    """

    def __init__(self, source: TrustListSource, *, cache: CachedTrustListFile | None = None,
                 refresh_after: float = 300.0, retry_after: float = 30.0,
                 fetch_budget: float = 2.0,
                 algorithms: Mapping[int, SignatureAlgorithm] = DEFAULT_ALGORITHMS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._source = source
        self._cache = cache
        self._refresh_after = refresh_after
        self._retry_after = retry_after
        self._fetch_budget = fetch_budget
        self._algorithms = algorithms
        self._clock = clock
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()    # keeps cache writes in version order
        self._current: TrustList | None = None
        self._version: int | None = None     # of the newest list seen (memory or file)
        self._next_fetch = float("-inf")
        self._idle = threading.Event()        # no background refresh under way
        self._idle.set()

    def trust_list(self, deadline: Deadline) -> TrustList:
        """The list; the central is asked at most once per ``refresh_after`` (once per
        ``retry_after`` while it fails), so a gate does not wait on a dead central."""
        now = self._clock()
        with self._lock:
            current = self._current
            start = current is not None and now >= self._next_fetch and self._idle.is_set()
            if start:
                self._idle.clear()
                # No second trigger while this one runs, nor right after it fails.
                self._next_fetch = now + self._retry_after
        if current is not None:
            if start:
                try:
                    threading.Thread(target=self._refresh_in_background, daemon=True,
                                     name="sscard-trust-list").start()
                except RuntimeError as exc:   # no thread to be had: try again later
                    _log.warning("trust list refresh not started: %s", exc)
                    self._idle.set()
            return current
        return self.refresh(deadline)

    def wait_idle(self, timeout: float) -> bool:
        """True once no background refresh is under way (for shutdown, and tests)."""
        return self._idle.wait(timeout)

    def _refresh_in_background(self) -> None:
        # With a list in hand, refresh() falls back to it rather than raise; whatever
        # escapes is a bug, and must not leave the provider "busy" for ever.
        try:
            self.refresh(Deadline.after(self._fetch_budget))
        except Exception:
            _log.exception("background trust list refresh failed")
        finally:
            self._idle.set()

    def refresh(self, deadline: Deadline) -> TrustList:
        """Ask the central now (within ``deadline`` and ``fetch_budget``) and keep a newer
        list; the list in use afterwards. Falls back as :meth:`trust_list` does; raises
        only when there is no list at all (none in memory, no usable file)."""
        with self._lock:
            current = self._current
        try:
            central = self._source.trust_list(deadline.capped(self._fetch_budget))
            self._refuse_rollback(central)
            fresh = trust_list_from_central(central, self._algorithms)
        except SscardError as exc:
            with self._lock:
                self._next_fetch = self._clock() + self._retry_after
            if current is not None:
                return current
            if self._cache is not None:
                _log.info("central trust list unavailable (%s); using %s", exc,
                          self._cache.path)
                current = self._cache.load()
                with self._lock:
                    self._current = current
                return current
            raise
        with self._lock:
            # Checked again here: another thread may have committed a newer list while
            # this one was fetching and loading (the check above ran before that).
            if self._version is not None and central.version < self._version \
                    and self._current is not None:
                return self._current
            self._current, self._next_fetch = fresh, self._clock() + self._refresh_after
            self._version = central.version
        if self._cache is not None:
            with self._save_lock:
                if central.version == self._version:   # not overtaken by a newer list
                    _save_quietly(self._cache, central)
        return fresh

    def _refuse_rollback(self, central: models.TrustList) -> None:
        """An older list than one already seen (a stale mirror, a replayed answer) would
        undo revocations: refuse it as a bad answer, keeping the newer list."""
        if self._version is None and self._cache is not None:
            try:
                self._version = self._cache.load_signed().version
            except ConfigError:
                self._version = -1          # no usable file: nothing to compare with
        if self._version is not None and central.version < self._version:
            raise CentralProtocolError(
                f"the central sent trust list version {central.version}, older than "
                f"version {self._version} already in use: kept the newer one")


def _save_quietly(cache: CachedTrustListFile, central: models.TrustList) -> None:
    """Save, logging a failure: the list itself is good, and a cache that cannot be
    written (full or read-only disk) must not refuse codes; it only weakens a restart."""
    try:
        cache.save(central)
    except ConfigError as exc:
        _log.warning("trust list not cached: %s", exc)
