"""The daemon's configuration file (TOML), validated strictly into frozen dataclasses.

A wrong configuration is a gate that opens for nobody or for everybody, found at the
first tap instead of at start-up. So every key is checked when the file is read: an
unknown key (a typo), a missing one, a wrong type, a file or a systemd credential that
is not there. Each problem raises one :class:`~sscard_terminal.errors.ConfigError` in
one line that names the file, the key and what is wrong, e.g.::

    /etc/sscard/terminal.toml: key 'lanes.front.reader_prefix': must be str, got int

Layout (``systemd/examples/*.toml`` has one complete file per shipped profile)::

    [terminal]        id, profile (shipped name or path), state_directory
    [central]         url, secret_file | secret_credential, public_key | public_key_file,
                      ca_file, client_cert, client_key           (absent: offline only)
    [journal]         key_file | key_credential
    [security_module] psam_reader | psam_reader_prefix, central_hsm
    [local_api]       socket, lane
    [http]            port, token_file, display, metrics, allow_origins  (127.0.0.1 only)
    [metrics]         textfile                 (node exporter's textfile collector)
    [lanes.<name>]    reader | reader_prefix | scanner | camera, baudrate, [gate]
    [lanes.<name>.gate] kind = "sim" | "serial" | "gpio"; serial: device, open_frame,
                        close_frame (hex), baudrate; gpio: chip, line, active_low

Paths relative to systemd's directories: with no ``state_directory`` the daemon uses
``$STATE_DIRECTORY`` (set by ``StateDirectory=``); a relative ``local_api.socket`` lives in
``$RUNTIME_DIRECTORY`` (``RuntimeDirectory=``); credentials are read from
``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``). Outside systemd the defaults are
``/var/lib/sscard-terminald`` and ``/run/sscard-terminald``.

What is *hardware* rather than configuration is not checked here: a reader or scanner
that is unplugged at start-up is a lane that starts lost and recovers when it appears
(the lane says so in one line), not a configuration the daemon refuses.
"""

from __future__ import annotations

import enum
import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..central.client import TerminalConfig
from ..central.signed import load_public_key
from ..drivers.gate_serial import parse_frame
from ..errors import ConfigError, JournalKeyError
from ..offline_queue.crypto import load_credential, load_key_file
from ..profiles import BUILTIN_PROFILES, Profile, load_profile

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_RUNTIME_DIRECTORY",
    "DEFAULT_STATE_DIRECTORY",
    "CentralLink",
    "DaemonConfig",
    "GateKind",
    "GateOutput",
    "HttpConfig",
    "LaneConfig",
    "LaneInput",
    "LocalApiConfig",
    "SecurityModuleConfig",
    "load_config",
    "parse_config",
]

DEFAULT_CONFIG_PATH = Path("/etc/sscard/terminal.toml")
DEFAULT_STATE_DIRECTORY = Path("/var/lib/sscard-terminald")
DEFAULT_RUNTIME_DIRECTORY = Path("/run/sscard-terminald")
SIM_PREFIX = "sim:"
BY_ID = "/dev/serial/by-id/"
_MAX_SECRET_BYTES = 4096

log = logging.getLogger(__name__)


class LaneInput(enum.Enum):
    """What a lane listens to."""

    READER = "reader"                  # a PC/SC reader by exact name, or a sim: reader
    READER_PREFIX = "reader_prefix"    # the PC/SC reader whose name starts with this
    SCANNER = "scanner"                # a serial (CDC) QR scanner by device path
    CAMERA = "camera"                  # a camera device, video file or stream URL


class GateKind(enum.Enum):
    SIM = "sim"          # a simulated gate (tests, demo)
    SERIAL = "serial"    # a relay board on a serial port
    GPIO = "gpio"        # a GPIO line through the character device


@dataclass(frozen=True)
class GateOutput:
    """Where a lane opens its gate (the driver is a later issue; the model is checked now)."""

    kind: GateKind
    device: str | None = None       # serial: the port
    baudrate: int | None = None     # serial
    chip: str | None = None         # gpio: /dev/gpiochipN
    line: int | None = None         # gpio: line offset
    open_frame: bytes | None = None     # serial: the board's frame that energises the relay
    close_frame: bytes | None = None    # serial: the frame that releases it
    active_low: bool = False            # gpio: the line is active low

    def driver_config(self) -> dict[str, object]:
        """This output as :func:`~sscard_terminal.drivers.gate.gate_from_config` reads it."""
        if self.kind is GateKind.SERIAL:
            assert self.open_frame is not None and self.close_frame is not None
            return {"driver": "serial", "port": self.device,
                    "open_frame": self.open_frame.hex(), "close_frame": self.close_frame.hex(),
                    "baudrate": self.baudrate or 9600}
        if self.kind is GateKind.GPIO:
            return {"driver": "gpio", "chip": self.chip, "line": self.line,
                    "active_low": self.active_low}
        return {"driver": "sim"}


@dataclass(frozen=True)
class LaneConfig:
    name: str
    input: LaneInput
    target: str                      # reader name/prefix, device path or camera source
    baudrate: int | None = None      # scanners only
    gate: GateOutput | None = None

    @property
    def is_sim(self) -> bool:
        return self.input is LaneInput.READER and self.target.startswith(SIM_PREFIX)

    @property
    def reads_cards(self) -> bool:
        return self.input in (LaneInput.READER, LaneInput.READER_PREFIX)


@dataclass(frozen=True)
class CentralLink:
    url: str
    secret: str = field(repr=False)
    secret_source: str              # "file /etc/..." or "credential central-secret"
    public_key: str | None
    ca_file: str | None = None
    client_cert: str | None = None
    client_key: str | None = None


@dataclass(frozen=True)
class SecurityModuleConfig:
    psam_reader: str | None = None
    psam_is_prefix: bool = False
    central_hsm: bool = True         # fall back to the central's HSM when no PSAM can


@dataclass(frozen=True)
class LocalApiConfig:
    socket: Path
    lane: str                 # the card lane whose reader the local API reads (shares its lock)


@dataclass(frozen=True)
class HttpConfig:
    """The loopback HTTP/WebSocket bridge (127.0.0.1 only): the local API behind its
    bearer token, and, opt-in, the passenger display and ``/metrics``."""

    port: int
    token: str = field(repr=False)
    display: bool = False
    metrics: bool = False
    allow_origins: tuple[str, ...] = ()


@dataclass(frozen=True)
class DaemonConfig:
    """One validated configuration. Built only by :func:`load_config` / :func:`parse_config`."""

    source: str
    terminal_id: str
    profile: Profile
    state_directory: Path
    central: CentralLink | None
    journal_key: bytes = field(repr=False)
    journal_key_source: str          # "file /etc/..." or "credential journal-key"
    journal_key_file: Path | None
    journal_key_credential: str | None
    security_module: SecurityModuleConfig
    local_api: LocalApiConfig | None
    lanes: tuple[LaneConfig, ...]
    http: HttpConfig | None = None
    metrics_textfile: Path | None = None     # node exporter's textfile collector (*.prom)

    def terminal_config(self) -> TerminalConfig | None:
        """The central client's configuration, or None for an offline-only terminal."""
        if self.central is None:
            return None
        return TerminalConfig(base_url=self.central.url, terminal_id=self.terminal_id,
                              secret=self.central.secret,
                              central_public_key=self.central.public_key,
                              ca_file=self.central.ca_file, client_cert=self.central.client_cert,
                              client_key=self.central.client_key)


def load_config(path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH, *,
                environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """Read and validate the configuration at ``path``."""
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{source}: no such configuration file "
                          f"(pass --config FILE)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the configuration: {exc}") from exc
    return parse_config(text, source=source, environ=environ)


def parse_config(text: str, *, source: str,
                 environ: Mapping[str, str] | None = None) -> DaemonConfig:
    """Validate TOML text; ``source`` names the file in every error, ``environ`` stands in
    for the process environment (systemd's directories and credentials)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    env = os.environ if environ is None else environ
    return _Reader(source, data, env).config()


_T = TypeVar("_T")


class _Reader:
    """Walks the tables, checking each key once and naming it in errors."""

    _TOP: Mapping[str, frozenset[str]] = {
        "terminal": frozenset({"id", "profile", "state_directory"}),
        "central": frozenset({"url", "secret_file", "secret_credential", "public_key",
                              "public_key_file", "ca_file", "client_cert", "client_key"}),
        "journal": frozenset({"key_file", "key_credential"}),
        "http": frozenset({"port", "token_file", "display", "metrics", "allow_origins"}),
        "metrics": frozenset({"textfile"}),
        "security_module": frozenset({"psam_reader", "psam_reader_prefix", "central_hsm"}),
        "local_api": frozenset({"socket", "lane"}),
        "lanes": frozenset(),          # any lane name
    }
    _REQUIRED = ("terminal", "journal", "lanes")
    _LANE_KEYS = frozenset({"reader", "reader_prefix", "scanner", "camera", "baudrate", "gate"})
    _GATE_KEYS: Mapping[GateKind, frozenset[str]] = {
        GateKind.SIM: frozenset({"kind"}),
        GateKind.SERIAL: frozenset({"kind", "device", "baudrate", "open_frame", "close_frame"}),
        GateKind.GPIO: frozenset({"kind", "chip", "line", "active_low"}),
    }

    def __init__(self, source: str, data: Mapping[str, Any], env: Mapping[str, str]) -> None:
        self.source = source
        self.data = data
        self.env = env

    # --- primitives --------------------------------------------------------------------

    def fail(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"{self.source}: key {key!r}: {why}")

    def table(self, name: str, *, required: bool) -> Mapping[str, Any] | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise self.fail(name, "missing table")
            return None
        if not isinstance(value, dict):
            raise self.fail(name, "must be a table")
        allowed = self._TOP[name]
        if allowed:
            self.only(name, value, allowed)
        return value

    def only(self, where: str, table: Mapping[str, Any], allowed: frozenset[str]) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(f"{where}.{key}",
                                f"unknown key (allowed: {', '.join(sorted(allowed))})")

    def typed(self, where: str, value: object, kind: type[_T]) -> _T:
        # bool is an int in Python; `line = true` is a mistake, not line 1.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.fail(where, f"must be {kind.__name__}, got {type(value).__name__}")
        return value

    def text(self, table: Mapping[str, Any], where: str, key: str, *,
             required: bool = False) -> str | None:
        value = table.get(key)
        if value is None:
            if required:
                raise self.fail(f"{where}.{key}", "missing")
            return None
        text = self.typed(f"{where}.{key}", value, str)
        if not text.strip():
            raise self.fail(f"{where}.{key}", "must not be empty")
        return text

    def one_of(self, table: Mapping[str, Any], where: str, keys: tuple[str, ...], *,
               required: bool) -> tuple[str, str] | None:
        present = [k for k in keys if k in table]
        if len(present) > 1:
            raise self.fail(f"{where}.{present[1]}",
                            f"give only one of {', '.join(keys)} (also {present[0]!r} given)")
        if not present:
            if required:
                raise self.fail(f"{where}.{keys[0]}",
                                f"missing (give one of {', '.join(keys)})")
            return None
        key = present[0]
        value = self.text(table, where, key, required=True)
        assert value is not None
        return key, value

    def existing_file(self, where: str, raw: str) -> Path:
        path = Path(raw)
        if not path.is_absolute():
            raise self.fail(where, f"{raw!r} must be an absolute path")
        if not path.exists():
            raise self.fail(where, f"{raw} does not exist")
        if not path.is_file():
            raise self.fail(where, f"{raw} is not a regular file")
        if not os.access(path, os.R_OK):
            raise self.fail(where, f"{raw} is not readable by this user (uid {os.geteuid()})")
        return path

    def credential_path(self, where: str, name: str) -> Path:
        if "/" in name or name in (".", ".."):
            raise self.fail(where, f"{name!r} is not a credential name (no slashes)")
        directory = self.env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise self.fail(where, f"systemd credential {name!r} asked for but "
                                   f"$CREDENTIALS_DIRECTORY is unset (add LoadCredential="
                                   f"{name}:/path to the unit, or use a file)")
        path = Path(directory) / name
        if not path.is_file():
            raise self.fail(where, f"systemd credential {name!r} is not in {directory} "
                                   f"(LoadCredential={name}:... missing from the unit?)")
        return path

    # --- tables ------------------------------------------------------------------------

    def config(self) -> DaemonConfig:
        for name in self.data:
            if name not in self._TOP:
                raise self.fail(name, f"unknown table (allowed: {', '.join(sorted(self._TOP))})")
        terminal = self.table("terminal", required=True)
        assert terminal is not None
        terminal_id = self.text(terminal, "terminal", "id", required=True)
        assert terminal_id is not None
        if not (terminal_id.isascii() and terminal_id.isprintable()) or len(terminal_id) > 64:
            raise self.fail("terminal.id", "must be printable ASCII, at most 64 characters")
        profile = self.profile(terminal)
        state_directory = self.state_directory(terminal)
        key, key_source = self.journal_key()
        security = self.security_module()
        lanes = self.lanes()
        self.check_psam_apart(security, lanes)
        local_api = self.local_api(lanes)
        return DaemonConfig(
            source=self.source,
            terminal_id=terminal_id,
            profile=profile,
            state_directory=state_directory,
            central=self.central(),
            journal_key=key,
            journal_key_source=key_source,
            journal_key_file=(Path(key_source[len("file "):])
                              if key_source.startswith("file ") else None),
            journal_key_credential=(key_source[len("credential "):]
                                    if key_source.startswith("credential ") else None),
            security_module=security,
            local_api=local_api,
            lanes=lanes,
            http=self.http(local_api),
            metrics_textfile=self.metrics_textfile(),
        )

    def http(self, local_api: LocalApiConfig | None) -> HttpConfig | None:
        table = self.table("http", required=False)
        if table is None:
            return None
        if local_api is None:
            raise self.fail("http", "needs [local_api]: the bridge serves the same API "
                                    "(and its card lane) over HTTP and WebSocket")
        if "port" not in table:
            raise self.fail("http.port", "missing")
        port = self.typed("http.port", table["port"], int)
        if not 1 <= port <= 65535:
            raise self.fail("http.port", f"{port} is outside 1..65535")
        raw = self.text(table, "http", "token_file", required=True)
        assert raw is not None
        path = self.existing_file("http.token_file", raw)
        if path.stat().st_mode & stat.S_IROTH:
            raise self.fail("http.token_file", f"{path} is readable by every user: chmod o-r")
        token = path.read_text(encoding="utf-8").strip()
        if len(token) < 16:
            raise self.fail("http.token_file", "the token must be at least 16 characters")
        origins = table.get("allow_origins", [])
        if not isinstance(origins, list) or not all(
                isinstance(o, str) and o.startswith(("http://", "https://")) and
                o.count("/") == 2 for o in origins):
            raise self.fail("http.allow_origins", "a list of exact origins "
                                                  "(scheme://host[:port])")
        return HttpConfig(port=port, token=token,
                          display=self.typed("http.display", table.get("display", False), bool),
                          metrics=self.typed("http.metrics", table.get("metrics", False), bool),
                          allow_origins=tuple(origins))

    def metrics_textfile(self) -> Path | None:
        table = self.table("metrics", required=False)
        if table is None:
            return None
        raw = self.text(table, "metrics", "textfile", required=True)
        assert raw is not None
        path = Path(raw)
        if not path.is_absolute() or path.suffix != ".prom":
            raise self.fail("metrics.textfile", f"{raw!r} must be an absolute path ending "
                                                f"in .prom (the collector reads only those)")
        if not path.parent.is_dir():
            raise self.fail("metrics.textfile", f"{path.parent} is not an existing directory")
        return path

    def profile(self, terminal: Mapping[str, Any]) -> Profile:
        name = self.text(terminal, "terminal", "profile", required=True)
        assert name is not None
        target: str | Path = name
        if name not in BUILTIN_PROFILES and not Path(name).is_absolute():
            # A profile file next to the configuration, wherever the daemon was started.
            target = Path(self.source).parent / name
        try:
            return load_profile(target)
        except ConfigError as exc:
            raise self.fail("terminal.profile", str(exc)) from exc

    def state_directory(self, terminal: Mapping[str, Any]) -> Path:
        raw = self.text(terminal, "terminal", "state_directory")
        where = "terminal.state_directory"
        if raw is None:
            # StateDirectory= may list several, separated by colons; ours is the first.
            from_env = self.env.get("STATE_DIRECTORY", "").split(":")[0]
            raw = from_env or str(DEFAULT_STATE_DIRECTORY)
            where += " (not set: $STATE_DIRECTORY or the default)"
        path = Path(raw)
        if not path.is_absolute():
            raise self.fail(where, f"{raw!r} must be an absolute path")
        if not path.is_dir():
            raise self.fail(where, f"{raw} is not an existing directory "
                                   f"(StateDirectory= in the unit creates it)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise self.fail(where, f"{raw} is not writable by this user (uid {os.geteuid()})")
        return path

    def journal_key(self) -> tuple[bytes, str]:
        journal = self.table("journal", required=True)
        assert journal is not None
        chosen = self.one_of(journal, "journal", ("key_file", "key_credential"), required=True)
        assert chosen is not None
        key, value = chosen
        where = f"journal.{key}"
        try:
            if key == "key_file":
                return load_key_file(self.existing_file(where, value)), f"file {value}"
            self.credential_path(where, value)
            return (load_credential(value, dict(self.env)), f"credential {value}")
        except JournalKeyError as exc:
            raise self.fail(where, str(exc)) from exc

    def central(self) -> CentralLink | None:
        central = self.table("central", required=False)
        if central is None:
            return None
        url = self.text(central, "central", "url", required=True)
        assert url is not None
        try:
            parts = urlsplit(url)
        except ValueError as exc:
            raise self.fail("central.url", f"{url!r} is not a URL: {exc}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self.fail("central.url", f"{url!r} is not an http(s) URL with a host")
        chosen = self.one_of(central, "central", ("secret_file", "secret_credential"),
                             required=True)
        assert chosen is not None
        key, value = chosen
        where = f"central.{key}"
        path = (self.existing_file(where, value) if key == "secret_file"
                else self.credential_path(where, value))
        try:
            raw = path.read_bytes()[: _MAX_SECRET_BYTES + 1]
        except OSError as exc:
            raise self.fail(where, f"cannot read {path}: {exc.strerror}") from exc
        try:
            secret = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise self.fail(where, f"{path} is not UTF-8 text") from None
        if not secret or len(raw) > _MAX_SECRET_BYTES:
            raise self.fail(where, f"{path} holds no secret (empty or over "
                                   f"{_MAX_SECRET_BYTES} bytes)")
        return CentralLink(
            url=url, secret=secret,
            secret_source=("file " if key == "secret_file" else "credential ") + value,
            public_key=self.public_key(central),
            ca_file=self.optional_file(central, "ca_file"),
            client_cert=self.optional_file(central, "client_cert"),
            client_key=self.optional_file(central, "client_key"),
        )

    def public_key(self, central: Mapping[str, Any]) -> str | None:
        chosen = self.one_of(central, "central", ("public_key", "public_key_file"),
                             required=False)
        if chosen is None:
            return None
        key, value = chosen
        where = f"central.{key}"
        if key == "public_key_file":
            try:
                value = self.existing_file(where, value).read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise self.fail(where, f"cannot read the key: {exc}") from exc
        try:
            load_public_key(value)
        except ConfigError as exc:
            raise self.fail(where, str(exc)) from exc
        return value

    def optional_file(self, central: Mapping[str, Any], key: str) -> str | None:
        raw = self.text(central, "central", key)
        if raw is None:
            return None
        return str(self.existing_file(f"central.{key}", raw))

    def security_module(self) -> SecurityModuleConfig:
        table = self.table("security_module", required=False)
        if table is None:
            return SecurityModuleConfig()
        chosen = self.one_of(table, "security_module", ("psam_reader", "psam_reader_prefix"),
                             required=False)
        hsm = table.get("central_hsm", True)
        self.typed("security_module.central_hsm", hsm, bool)
        if chosen is None:
            return SecurityModuleConfig(central_hsm=hsm)
        key, value = chosen
        return SecurityModuleConfig(psam_reader=value, psam_is_prefix=key.endswith("prefix"),
                                    central_hsm=hsm)

    def local_api(self, lanes: tuple[LaneConfig, ...]) -> LocalApiConfig | None:
        table = self.table("local_api", required=False)
        if table is None:
            return None
        raw = self.text(table, "local_api", "socket", required=True)
        assert raw is not None
        path = Path(raw)
        if not path.is_absolute():
            runtime = self.env.get("RUNTIME_DIRECTORY", "").split(":")[0]
            path = Path(runtime or DEFAULT_RUNTIME_DIRECTORY) / path
        if not path.parent.is_dir():
            raise self.fail("local_api.socket", f"{path.parent} is not an existing directory "
                                                f"(RuntimeDirectory= in the unit creates it)")
        card_lanes = [lane.name for lane in lanes if lane.reads_cards]
        lane = self.text(table, "local_api", "lane")
        if lane is None:
            if len(card_lanes) != 1:
                raise self.fail("local_api.lane", "missing: name the card lane whose reader "
                                f"the local API reads (card lanes: "
                                f"{', '.join(card_lanes) or 'none'})")
            lane = card_lanes[0]
        elif lane not in card_lanes:
            raise self.fail("local_api.lane", f"{lane!r} is not a card lane (card lanes: "
                                              f"{', '.join(card_lanes) or 'none'})")
        return LocalApiConfig(socket=path, lane=lane)

    def lanes(self) -> tuple[LaneConfig, ...]:
        table = self.table("lanes", required=True)
        assert table is not None
        if not table:
            raise self.fail("lanes", "no lane configured: add at least one [lanes.NAME]")
        lanes: list[LaneConfig] = []
        seen: dict[tuple[LaneInput, str], str] = {}
        for name, body in table.items():
            where = f"lanes.{name}"
            if not (name.isascii() and name.replace("-", "").replace("_", "").isalnum()):
                raise self.fail(where, "a lane name is letters, digits, '-' and '_'")
            if not isinstance(body, dict):
                raise self.fail(where, "must be a table")
            lane = self.lane(name, where, body)
            clash = seen.get((lane.input, lane.target))
            if clash is not None:
                raise self.fail(f"{where}.{lane.input.value}",
                                f"{lane.target!r} is already lane {clash!r}")
            seen[(lane.input, lane.target)] = name
            lanes.append(lane)
        return tuple(lanes)

    def lane(self, name: str, where: str, body: Mapping[str, Any]) -> LaneConfig:
        self.only(where, body, self._LANE_KEYS)
        chosen = self.one_of(body, where, ("reader", "reader_prefix", "scanner", "camera"),
                             required=True)
        assert chosen is not None
        key, target = chosen
        kind = LaneInput(key)
        if kind is LaneInput.READER and target.startswith(SIM_PREFIX) \
                and not target[len(SIM_PREFIX):].strip():
            raise self.fail(f"{where}.reader", "a sim: reader needs a name after 'sim:'")
        if kind is LaneInput.SCANNER:
            if not target.startswith("/"):
                raise self.fail(f"{where}.scanner", f"{target!r} is not an absolute device "
                                                    f"path; use the /dev/serial/by-id/... name")
            if not target.startswith(BY_ID):
                # ttyACM numbers change when a scanner is replugged; by-id names do not.
                log.warning("%s: key '%s.scanner': %s may be renumbered after an unplug; "
                            "the %s... name survives it", self.source, where, target, BY_ID)
        baudrate = body.get("baudrate")
        if baudrate is not None:
            if kind is not LaneInput.SCANNER:
                raise self.fail(f"{where}.baudrate", "only a scanner lane has a baud rate")
            baudrate = self.baudrate(f"{where}.baudrate", baudrate)
        gate = None
        if "gate" in body:
            gate = self.gate(f"{where}.gate", body["gate"])
        return LaneConfig(name=name, input=kind, target=target, baudrate=baudrate, gate=gate)

    def baudrate(self, where: str, value: object) -> int:
        rate = self.typed(where, value, int)
        if rate not in (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200):
            raise self.fail(where, f"{rate} is not a standard baud rate")
        return rate

    def gate(self, where: str, body: object) -> GateOutput:
        if not isinstance(body, dict):
            raise self.fail(where, "must be a table")
        raw_kind = self.text(body, where, "kind", required=True)
        try:
            kind = GateKind(raw_kind)
        except ValueError:
            raise self.fail(f"{where}.kind", f"{raw_kind!r} is not one of "
                            f"{', '.join(k.value for k in GateKind)}") from None
        self.only(where, body, self._GATE_KEYS[kind])
        if kind is GateKind.SERIAL:
            device = self.text(body, where, "device", required=True)
            assert device is not None
            if not device.startswith("/dev/"):
                raise self.fail(f"{where}.device", f"{device!r} is not a device path")
            rate = body.get("baudrate")
            return GateOutput(kind, device=device,
                              baudrate=None if rate is None else
                              self.baudrate(f"{where}.baudrate", rate),
                              open_frame=self.frame(where, body, "open_frame"),
                              close_frame=self.frame(where, body, "close_frame"))
        if kind is GateKind.GPIO:
            chip = self.text(body, where, "chip", required=True)
            assert chip is not None
            if not chip.startswith("/dev/gpiochip"):
                raise self.fail(f"{where}.chip", f"{chip!r} is not a /dev/gpiochipN device")
            if "line" not in body:
                raise self.fail(f"{where}.line", "missing")
            line = self.typed(f"{where}.line", body["line"], int)
            if not 0 <= line <= 1023:
                raise self.fail(f"{where}.line", f"{line} is outside 0..1023")
            active_low = self.typed(f"{where}.active_low", body.get("active_low", False), bool)
            return GateOutput(kind, chip=chip, line=line, active_low=active_low)
        return GateOutput(kind)

    def frame(self, where: str, body: Mapping[str, Any], key: str) -> bytes:
        """A relay board's frame in hex (``"A0 01 01 A2"``): boards differ, so there is
        no default that could open the wrong relay or none."""
        if key not in body:
            raise self.fail(f"{where}.{key}", "missing: the relay board's frame in hex, "
                                              "such as \"A0 01 01 A2\"")
        try:
            return parse_frame(body[key], where=f"{where}.{key}")
        except ConfigError as exc:
            raise self.fail(f"{where}.{key}", str(exc).split(": ", 1)[-1]) from None

    def check_psam_apart(self, security: SecurityModuleConfig,
                         lanes: tuple[LaneConfig, ...]) -> None:
        """The PSAM's reader is never a lane's reader: a lane would read the PSAM as a
        card, and the PSAM search would probe the lane's card."""
        psam = security.psam_reader
        if psam is None:
            return
        key = "security_module.psam_reader" + ("_prefix" if security.psam_is_prefix else "")
        for lane in lanes:
            if not lane.reads_cards:
                continue
            overlap = (lane.target == psam
                       or (security.psam_is_prefix and lane.target.startswith(psam))
                       or (lane.input is LaneInput.READER_PREFIX
                           and psam.startswith(lane.target)))
            if overlap:
                raise self.fail(key, f"{psam!r} overlaps lane {lane.name!r} "
                                     f"({lane.target!r}); the PSAM needs a reader of its own")
