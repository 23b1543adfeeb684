"""What the composition root builds a terminal from: one plain, validated value.

Every face (the ``sscard`` CLI, ``python -m sscard_terminal.local_api``, the demo and the
daemon) turns its own input (options, a TOML file) into a :class:`TerminalSettings` and
hands it to :class:`~sscard_terminal.terminal.root.TerminalRoot`. None of them builds a
part by hand, so a fix to how a part is built (the journal's durability, the verifier's
policies) reaches all of them at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..central.client import TerminalConfig
from ..ecode import OpaquePolicy
from ..errors import ConfigError
from ..offline_queue.crypto import load_credential, load_key_file
from ..profiles import Profile

__all__ = ["KeySource", "StatePaths", "TerminalSettings"]


@dataclass(frozen=True)
class KeySource:
    """Where the journal's master key comes from: a file only the daemon's user may read,
    or a systemd credential (``LoadCredential=``). Never generated on the fly: a fresh key
    on every start would lock the terminal out of its own journal."""

    file: Path | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        if (self.file is None) == (self.credential is None):
            raise ConfigError("the journal key comes from exactly one of a key file or a "
                              "systemd credential")

    def load(self, environ: Mapping[str, str] | None = None) -> bytes:
        """The 32-byte master key (a :class:`JournalKeyError` names what is wrong)."""
        if self.file is not None:
            return load_key_file(self.file)
        assert self.credential is not None
        return load_credential(self.credential,
                               dict(os.environ if environ is None else environ))


@dataclass(frozen=True)
class StatePaths:
    """The files a terminal keeps in its state directory (``StateDirectory=``)."""

    directory: Path

    @property
    def journal(self) -> Path:
        return self.directory / "journal.db"

    @property
    def denylist(self) -> Path:
        return self.directory / "denylist.db"

    @property
    def replay_cache(self) -> Path:
        return self.directory / "ecode-replay.db"

    @property
    def trust_list(self) -> Path:
        return self.directory / "trust-list.json"

    @property
    def engine_state(self) -> Path:
        return self.directory / "engine-state.db"


@dataclass(frozen=True)
class TerminalSettings:
    """One terminal's parts, as configuration.

    ``central`` None is a terminal with no central (a technician's bench, a desk that only
    reads). ``card_reader`` None takes the first reader with a card (never a PSAM's);
    ``psam_reader`` None looks for a PSAM among the readers other than ``lane_readers``.
    ``state_dir`` None keeps replay memory in RAM and has no journal, denylist or trust-list
    cache: fine for one-shot CLI commands, refused by :meth:`TerminalRoot.journal`.
    """

    terminal_id: str
    profile: Profile | None = None
    central: TerminalConfig | None = None
    card_reader: str | None = None
    lane_readers: tuple[str, ...] = ()
    psam_reader: str | None = None
    security_modules: bool = True
    central_hsm: bool = True
    state_dir: Path | None = None
    journal_key: KeySource | None = None
    trust_list_file: Path | None = None
    central_public_key: str | None = None
    code_shapes: Mapping[str, str] = field(default_factory=dict)
    clock_skew_s: float = 30.0
    opaque_policy: OpaquePolicy | None = None     # None: the profile's opaque_offline

    @property
    def state(self) -> StatePaths | None:
        return StatePaths(self.state_dir) if self.state_dir is not None else None

    @classmethod
    def for_reading(cls, *, central_config: Path | None, card_reader: str | None,
                    psam_reader: str | None, security_modules: bool) -> TerminalSettings:
        """A reading desk's settings from a technician's options (``sscard read``, the
        standalone local API): a card reader, a PSAM, the central whose HSM takes over."""
        central = (TerminalConfig.from_mapping(TerminalConfig.load_json(central_config))
                   if central_config is not None else None)
        return cls(terminal_id=central.terminal_id if central else "", central=central,
                   card_reader=card_reader, psam_reader=psam_reader,
                   security_modules=security_modules)

    def require_profile(self) -> Profile:
        if self.profile is None:
            raise ConfigError("this terminal has no profile: give one (a shipped name or "
                              "a file)")
        return self.profile
