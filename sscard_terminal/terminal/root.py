"""The composition root: every part of a terminal is built here, and only here.

:class:`TerminalRoot` takes one :class:`TerminalSettings` and builds each part the first
time a face asks for it, in the one way the project supports:

- the central client (:meth:`central`), from the terminal's link configuration;
- the security-module chain (:meth:`module_chain`): a PSAM (named, or found among the
  readers that are not the lanes'), with the central HSM two-step as fallback;
- the journal (:meth:`journal`): key from a file or a systemd credential, never a fresh
  random one; the profile's ``synchronous`` and limits; forged cards recorded in it;
- the denylist (:meth:`denylist`), the e-code verifier (:meth:`verifier`: the profile's
  opaque-code policy, a persistent replay cache, the trust-list cache file) and the
  decision engine (:meth:`engine`);
- the presentation pipeline (:meth:`presenter`): read or verify, decide within one
  deadline that starts when the card or code arrived, journal, complete.

A face asks only for what it needs (``sscard read`` never opens a journal), and
:meth:`close` releases whatever was built, in reverse order.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Sequence
from types import TracebackType

from ..apdu.transport import CardTransport
from ..cards.authentication.chain import ModuleChain, find_authenticator
from ..cards.authentication.psam import ForgeryRecord
from ..central.circuit_breaker import CircuitBreaker, GuardedCentral
from ..central.client import CentralClient
from ..central.signed import load_public_key
from ..deadline import Deadline
from ..decision import DecisionEngine, Denylist
from ..decision.state_store import EngineState, SqliteEngineState
from ..ecode import (
    CachedTrustListFile,
    CentralTrustListProvider,
    ECodeVerifier,
    MemoryReplayCache,
    OpaquePolicy,
    RecognitionProfile,
    ReplayCache,
    SqliteReplayCache,
    TrustList,
    TrustListProvider,
)
from ..errors import ConfigError, JournalError
from ..offline_queue.journal import Journal
from ..profiles import OfflinePolicy
from .card_access import open_user_card
from .presentation import Presenter
from .psam_discovery import find_psam
from .settings import TerminalSettings

__all__ = ["NoTrustList", "TerminalRoot"]

_log = logging.getLogger(__name__)


class NoTrustList:
    """A terminal with neither a central nor a cached trust list: every signed code is
    refused with reason ``no_trust_list``, which says exactly what is missing."""

    def trust_list(self, deadline: Deadline) -> TrustList:
        raise ConfigError("none configured; give the terminal a central or a trust-list "
                          "file (sscard: --central CONFIG or --trust-list FILE)")


class TerminalRoot:
    """Builds and owns a terminal's parts (see the module docstring). Thread-safe: the
    daemon's lanes and its local API may ask for parts from several threads."""

    def __init__(self, settings: TerminalSettings) -> None:
        self.settings = settings
        self._lock = threading.RLock()
        self._stack = contextlib.ExitStack()
        self._central: CentralClient | None = None
        self._central_built = False
        self._guarded: GuardedCentral | None = None
        self._chain: ModuleChain | None = None
        self._chain_built = False
        self._journal: Journal | None = None
        self._denylist: Denylist | None = None
        self._verifier: ECodeVerifier | None = None
        self._engine: DecisionEngine | None = None
        self._presenter: Presenter | None = None
        self._closed = False

    # --- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Release every part built so far, the last built first."""
        with self._lock:
            self._closed = True
            self._stack.close()

    def __enter__(self) -> TerminalRoot:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the terminal root is closed")

    # --- parts -------------------------------------------------------------------------

    def central(self) -> CentralClient | None:
        """The central client, or None for a terminal configured without a central."""
        with self._lock:
            self._check_open()
            if not self._central_built:
                config = self.settings.central
                if config is not None:
                    self._central = self._stack.enter_context(CentralClient.from_config(config))
                self._central_built = True
            return self._central

    def guarded_central(self) -> GuardedCentral | None:
        """The central for the calls made on a presentation's budget (card validations,
        e-code checks), behind one circuit breaker: a central that is down but silent is
        remembered, so offline decisions stop waiting out the online budget (issue 17).
        Background work (denylist, trust list, forwarding) uses :meth:`central`."""
        with self._lock:
            central = self.central()
            if central is not None and self._guarded is None:
                self._guarded = GuardedCentral(central, CircuitBreaker())
            return self._guarded

    def module_chain(self) -> ModuleChain | None:
        """PSAM first, then the central HSM; None when there is neither (or the settings
        switch security modules off: generation 3 cards then read their free items)."""
        with self._lock:
            self._check_open()
            if not self._chain_built:
                self._chain = self._build_chain()
                if self._chain is not None:
                    self._stack.enter_context(self._chain)
                    _log.info("security module: %s", self._chain.name)
                self._chain_built = True
            return self._chain

    def _build_chain(self) -> ModuleChain | None:
        settings = self.settings
        if not settings.security_modules:
            return None
        psam = find_psam(psam_reader=settings.psam_reader,
                         exclude_readers=self.user_readers())
        central = self.central() if settings.central_hsm else None
        return find_authenticator(central=central, psam_transport=psam,
                                  recorder=self._record_forgery if self._journal_configured()
                                  else None)

    def user_readers(self) -> tuple[str, ...]:
        """The readers user cards are taken from: never probed for a PSAM."""
        named = (self.settings.card_reader,) if self.settings.card_reader else ()
        return tuple(dict.fromkeys((*named, *self.settings.lane_readers)))

    def open_card(self, deadline: Deadline, reader: str | None = None) -> CardTransport:
        """A connection to the user's card in ``reader`` (default: the configured one, or
        the first reader with a card), never the PSAM's slot."""
        chain = self.module_chain()
        exclude: Sequence[str] = ()
        if chain is not None and chain.psam_reader is not None:
            exclude = (chain.psam_reader,)
        if self.settings.psam_reader is not None:
            exclude = (*exclude, self.settings.psam_reader)
        return open_user_card(reader if reader is not None else self.settings.card_reader,
                              deadline, exclude=exclude)

    def _journal_configured(self) -> bool:
        return self.settings.state_dir is not None and self.settings.journal_key is not None

    def journal(self) -> Journal:
        """The offline journal in the state directory, with the profile's durability and
        limits. A terminal without a state directory or key has none: ConfigError."""
        with self._lock:
            self._check_open()
            if self._journal is None:
                settings = self.settings
                state = settings.state
                if state is None or settings.journal_key is None:
                    raise ConfigError("no journal: the terminal needs a state directory and "
                                      "a journal key (file or systemd credential)")
                profile = settings.require_profile()
                keys = settings.journal_key.load()
                self._journal = self._stack.enter_context(Journal.open(
                    state.journal, terminal_id=settings.terminal_id, keys=keys,
                    synchronous=profile.journal.synchronous, limits=profile.journal.limits(),
                    on_alarm=_log_alarm))
            return self._journal

    def denylist(self) -> Denylist:
        """The local denylist file in the state directory."""
        with self._lock:
            self._check_open()
            if self._denylist is None:
                state = self.settings.state
                if state is None:
                    raise ConfigError("no denylist: the terminal needs a state directory")
                self._denylist = self._stack.enter_context(Denylist.open(state.denylist))
            return self._denylist

    def verifier(self) -> ECodeVerifier:
        """The e-code verifier with the profile's policies, a persistent replay cache (in
        the state directory) and the trust list cached on disk as the central signed it."""
        with self._lock:
            self._check_open()
            if self._verifier is None:
                self._verifier = self._build_verifier()
            return self._verifier

    def _build_verifier(self) -> ECodeVerifier:
        settings = self.settings
        state = settings.state
        replay: ReplayCache
        if state is not None:
            sqlite_cache = SqliteReplayCache(state.replay_cache)
            self._stack.callback(sqlite_cache.close)
            replay = sqlite_cache
        else:
            replay = MemoryReplayCache()
        central = self.central()
        key_text = settings.central_public_key or (
            settings.central.central_public_key if settings.central is not None else None)
        central_key = load_public_key(key_text) if key_text else None
        cache_path = settings.trust_list_file or (state.trust_list if state else None)
        cache = CachedTrustListFile(cache_path, central_key) if cache_path else None
        trust: TrustListProvider
        if central is not None:
            trust = CentralTrustListProvider(central, cache=cache)
        elif cache is not None:
            trust = cache
        else:
            trust = NoTrustList()
        opaque: OpaquePolicy = "refuse"
        if settings.opaque_policy is not None:
            opaque = settings.opaque_policy
        elif (settings.profile is not None
              and settings.profile.opaque_offline is OfflinePolicy.DEFER):
            opaque = "defer"
        return ECodeVerifier(trust, replay, clock_skew=settings.clock_skew_s,
                             central=self.guarded_central(), opaque_policy=opaque,
                             recognition=self.recognition())

    def recognition(self) -> RecognitionProfile:
        """The code shapes this terminal recognises: the profile's ``[[ecode.shapes]]``,
        with any kind the terminal's own ``code_shapes`` configures taken from there
        (both checked alike: a catch-all or broken pattern is a ConfigError)."""
        own = RecognitionProfile.from_mapping(self.settings.code_shapes)
        profile = self.settings.profile
        base = profile.recognition() if profile is not None else RecognitionProfile()
        return base.overridden_by(own)

    def engine(self) -> DecisionEngine:
        """The decision engine for the profile, asking the central and the denylist; its
        memory in the state directory when there is one (in RAM otherwise)."""
        with self._lock:
            self._check_open()
            if self._engine is None:
                profile = self.settings.require_profile()
                state = self.settings.state
                engine_state: EngineState | None = None
                if state is not None:
                    # Anti-passback, torn transactions, learnt entitlements and the offline
                    # run survive a restart (issue 17): kept beside the journal.
                    stored = SqliteEngineState(state.engine_state,
                                               synchronous=profile.journal.synchronous)
                    self._stack.callback(stored.close)
                    engine_state = stored
                self._engine = DecisionEngine(profile, central=self.guarded_central(),
                                              denylist=self.denylist(), state=engine_state)
            return self._engine

    def presenter(self) -> Presenter:
        """The one presentation pipeline (read or verify, decide, journal, complete)."""
        with self._lock:
            self._check_open()
            if self._presenter is None:
                self._presenter = Presenter(
                    profile=self.settings.require_profile(), engine=self.engine(),
                    journal=self.journal(), verifier=self.verifier(),
                    authenticator=self.module_chain())
            return self._presenter

    # --- evidence --------------------------------------------------------------------------

    def _record_forgery(self, record: ForgeryRecord) -> None:
        """A forged card is evidence: journal it (no holder data) so the central learns."""
        try:
            self.journal().enqueue("forged_card", {
                "card_identification_code": record.card_identification_code,
                "region": record.region,
                "algorithm": record.algorithm,
                "module": record.module,
                "detected_at": record.detected_at.isoformat(),
            })
        except (JournalError, ConfigError) as exc:
            _log.error("a forged card could not be journaled: %s", exc)


def _log_alarm(alarms: object, status: object) -> None:
    _log.warning("journal alarm: %s", alarms)
