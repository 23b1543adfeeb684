"""The daemon's runtime: the composition root built from the daemon's configuration, and
the holder that lets presentations share it while a reload replaces it.

:func:`build_runtime` turns a :class:`~.config.DaemonConfig` into the composition root's
:class:`~sscard_terminal.terminal.settings.TerminalSettings` and asks the root for every
part the lanes will need *now* (journal, engine and its state, verifier, security-module
chain, central client), so a part that cannot be built stops the daemon before READY
instead of failing the first tap. Problems a technician must fix (the journal key does not
match, the journal file is foreign, corrupt or newer) become a
:class:`~sscard_terminal.errors.ConfigError` (exit 17: systemd does not retry); others
(a PSAM reader absent, pcscd down, a full disk) stay what they are (exit 1: systemd
retries).

:class:`RuntimeHolder` is a readers-writer gate around the current runtime. Every
presentation holds it shared for its whole length; a reload holds it exclusively, so the
old runtime is closed only once no presentation uses it, and no presentation starts until
the new one is in place. Two roots never write one journal at the same time.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Iterator

from ..drivers.pcsc import list_readers
from ..errors import (
    ConfigError,
    JournalStorageError,
    ReaderError,
    SecurityModuleUnavailableError,
    StorageError,
)
from ..local_api.status import CentralStatus, ListStatus, QueueStatus
from ..terminal.root import TerminalRoot
from ..terminal.settings import KeySource, TerminalSettings
from .background import Background
from .config import SIM_PREFIX, DaemonConfig
from .presenter import Runtime, RuntimeFacts

__all__ = ["RuntimeHolder", "build_runtime", "terminal_settings"]

log = logging.getLogger(__name__)

BACKGROUND_STOP_S = 2.0
"""How long a closing runtime waits for the forwarder to finish its batch."""



def _needs_a_technician(exc: BaseException) -> bool:
    """A configuration or a local store that restarting the daemon would not fix (a key
    that does not match, a foreign, corrupt or newer file); a full disk may pass."""
    return (isinstance(exc, ConfigError | StorageError)
            and not isinstance(exc, JournalStorageError))


def terminal_settings(config: DaemonConfig) -> TerminalSettings:
    """The composition root's settings for this daemon configuration."""
    module = config.security_module
    psam = module.psam_reader
    if psam is not None and module.psam_is_prefix:
        psam = _reader_with_prefix(psam)
    key = KeySource(file=config.journal_key_file, credential=config.journal_key_credential)
    return TerminalSettings(
        terminal_id=config.terminal_id,
        profile=config.profile,
        central=config.terminal_config(),
        lane_readers=tuple(lane.target for lane in config.lanes if lane.reads_cards),
        psam_reader=psam,
        security_modules=psam is not None or (module.central_hsm and config.central is not None),
        central_hsm=module.central_hsm,
        state_dir=config.state_directory,
        journal_key=key,
        central_public_key=config.central.public_key if config.central is not None else None,
    )


def _reader_with_prefix(prefix: str) -> str:
    if prefix.startswith(SIM_PREFIX):
        return prefix
    try:
        names = [info.name for info in list_readers()]
    except ReaderError as exc:
        raise SecurityModuleUnavailableError(
            f"no PSAM: cannot list readers for prefix {prefix!r}: {exc}", code=-2201) from exc
    for name in names:
        if name.startswith(prefix):
            return name
    raise SecurityModuleUnavailableError(
        f"no PSAM: no reader starts with {prefix!r} (found: {', '.join(names) or 'none'})",
        code=-2201)


def build_runtime(config: DaemonConfig) -> Runtime:
    """Build the terminal's parts for ``config``, all of them, now (a worker thread)."""
    root = TerminalRoot(terminal_settings(config))
    try:
        presenter = root.presenter()
    except BaseException as exc:
        root.close()
        if _needs_a_technician(exc):
            raise ConfigError(f"{config.source}: cannot build the terminal: {exc}") from exc
        raise

    central = root.central()
    authenticator = root.module_chain()
    facts = functools.partial(runtime_facts, root)
    link = functools.partial(central_status, root)
    if central is None:
        return Runtime(presenter=presenter,
                       open_card=lambda reader, deadline: root.open_card(deadline, reader),
                       close=root.close, authenticator=authenticator, facts=facts,
                       central_link=link)
    guarded = root.guarded_central()
    background = Background(journal=root.journal(), denylist=root.denylist(), central=central,
                            breaker=guarded.breaker if guarded is not None else None)
    background.start()

    def close() -> None:
        background.stop(BACKGROUND_STOP_S)
        root.close()

    return Runtime(presenter=presenter,
                   open_card=lambda reader, deadline: root.open_card(deadline, reader),
                   close=close, presented=background.presented, authenticator=authenticator,
                   facts=facts, central_link=link)


def central_status(root: TerminalRoot) -> CentralStatus:
    """The central link as the presentations' circuit breaker sees it (no I/O: cheap
    enough for the health check to ask every second)."""
    guarded = root.guarded_central()
    if guarded is None:
        return CentralStatus(link="none", circuit="closed")
    circuit = guarded.breaker.state.value
    successes = guarded.breaker.counters().get("successes", 0)
    link = {"open": "down", "half_open": "unknown"}.get(
        circuit, "up" if successes else "unknown")
    return CentralStatus(link=link, circuit=circuit)


def runtime_facts(root: TerminalRoot) -> RuntimeFacts:
    """The runtime's part of ``status``: the breaker's view of the central link, the
    journal's queue, the denylist's version, size and age, the trust list's age (its
    cached file's age; the file holds no version the terminal reads back)."""
    central = central_status(root)
    journal = root.journal().status()
    queue = QueueStatus(depth=journal.queued,
                        oldest_age_s=(None if journal.oldest_queued_age_s is None
                                      else round(journal.oldest_queued_age_s, 3)),
                        full=bool(journal.alarms))
    denylist = root.denylist()
    state = denylist.state()
    hours = denylist.age_hours()
    deny = ListStatus(version=str(state.version) if state.version else None,
                      age_s=None if hours is None else round(hours * 3600.0, 3),
                      size=state.entries)
    trust = ListStatus(version=None, age_s=None)
    paths = root.settings.state
    if paths is not None:
        with contextlib.suppress(OSError):
            trust = ListStatus(version=None,
                               age_s=round(time.time() - paths.trust_list.stat().st_mtime, 3))
    return RuntimeFacts(central=central, journal=queue, denylist=deny, trust_list=trust)


class RuntimeHolder:
    """The current runtime behind a readers-writer gate (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._runtime: Runtime | None = None
        self._users = 0
        self._writer = False

    @property
    def current(self) -> Runtime | None:
        return self._runtime

    @contextlib.contextmanager
    def use(self) -> Iterator[Runtime]:
        """The runtime, for the length of one presentation."""
        with self._cond:
            while self._writer:
                self._cond.wait()
            runtime = self._runtime
            if runtime is None:
                raise RuntimeError("the daemon has no runtime")
            self._users += 1
        try:
            yield runtime
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """No presentation runs inside this block, and none starts until it ends."""
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._writer = True
            while self._users:
                self._cond.wait()
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()

    def set(self, runtime: Runtime | None) -> None:
        """Install ``runtime`` (call inside :meth:`exclusive`, or before any lane runs)."""
        self._runtime = runtime
