"""Code shapes are data (issue 22.1): a profile's ``[[ecode.shapes]]`` (and, over them, the
terminal's ``code_shapes``) decide which opaque codes a terminal recognises; a broken or
catch-all shape is refused at load naming its key; offline, a recognised online-only code
gets the profile's answer with a reason a display can explain, never "unknown code"."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sscard_hardware_sim.central_ecodes import issue_opaque_code
from sscard_hardware_sim.central_harness import CentralSim
from sscard_hardware_sim.central_store import DEMO_CARDS

from sscard_terminal.central.client import TerminalConfig
from sscard_terminal.ecode import CodeKind
from sscard_terminal.errors import ConfigError
from sscard_terminal.profiles import load_profile, parse_profile
from sscard_terminal.terminal.root import TerminalRoot
from sscard_terminal.terminal.settings import KeySource, TerminalSettings

PROFILE_DIR = Path(__file__).resolve().parent.parent / "profiles"
SHAPES = '''
[[ecode.shapes]]
kind = "national"
pattern = "ESSC[0-9A-F]{32,128}"
max_length = 160
verifier = "central"

[[ecode.shapes]]
kind = "evoucher"
pattern = "NHSA[0-9A-F]{32,128}"
'''


def _profile_text(name: str, shapes: str = SHAPES) -> str:
    text = (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8")
    return text.replace("\n[journal]", shapes + "\n[journal]", 1)


def _settings(tmp_path: Path, profile_name: str, sim: CentralSim | None,
              **changes: object) -> TerminalSettings:
    key = tmp_path / "journal.key"
    if not key.exists():
        key.write_bytes(secrets.token_bytes(32))
        key.chmod(0o600)
    central = None if sim is None else TerminalConfig(
        sim.base_url, sim.terminal_id, sim.secret, central_public_key=sim.central_public_key)
    values: dict[str, object] = {
        "terminal_id": sim.terminal_id if sim else "T-TEST-0001",
        "profile": parse_profile(_profile_text(profile_name), source=f"{profile_name}.toml"),
        "central": central, "state_dir": tmp_path, "journal_key": KeySource(file=key)}
    values.update(changes)
    return TerminalSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[CentralSim]:
    central = CentralSim(tmp_path / "central.db")
    yield central
    central.stop()


def test_a_profiles_shapes_are_parsed_and_recognised() -> None:
    profile = parse_profile(_profile_text("bus-validator"), source="bus.toml")
    recognition = profile.recognition()
    assert recognition.recognise("ESSC" + "0A" * 20) is CodeKind.NATIONAL
    assert recognition.recognise("NHSA" + "0A" * 20) is CodeKind.EVOUCHER
    assert recognition.recognise("ESSC" + "0A" * 100) is CodeKind.UNKNOWN   # over max_length
    assert recognition.recognise("hello") is CodeKind.UNKNOWN
    assert profile.code_shapes[0].verifier == "central"


@pytest.mark.parametrize(
    ("shape", "key", "why"),
    [
        ('kind = "national"\npattern = "ESSC[0-9"', "ecode.shapes[0]", "not a valid regular"),
        ('kind = "national"\npattern = ".*"', "ecode.shapes[0]", "empty string"),
        ('kind = "national"\npattern = "(?s).+"', "ecode.shapes[0]", "every string"),
        ('kind = "national"\npattern = ".+"', "ecode.shapes[0]", "every string"),
        ('kind = "national"\npattern = ""', "ecode.shapes[0]", "non-empty"),
        ('kind = "ours"\npattern = "SC1:.*"', "ecode.shapes[0]", "not an opaque"),
        ('kind = "barcode"\npattern = "X[0-9]+"', "ecode.shapes[0].kind", "not national"),
        ('kind = "national"\npattern = "X[0-9]+"\nmax_length = 0', "ecode.shapes[0]",
         "max_length"),
        ('kind = "national"\npattern = "X[0-9]+"\nverifier = "nhsa.example"',
         "ecode.shapes[0]", "unknown online verifier"),
        ('kind = "national"\npattern = "X[0-9]+"\ncolour = "red"', "ecode.shapes[0].colour",
         "unknown key"),
    ],
)
def test_a_broken_shape_is_refused_at_load_naming_the_key(shape: str, key: str,
                                                          why: str) -> None:
    text = _profile_text("bus-validator", f"\n[[ecode.shapes]]\n{shape}\n")
    with pytest.raises(ConfigError) as info:
        parse_profile(text, source="broken.toml")
    message = str(info.value)
    assert "broken.toml" in message and key in message and why in message


def test_the_terminals_own_shapes_are_checked_alike_and_win_over_the_profiles(
        tmp_path: Path) -> None:
    settings = _settings(tmp_path, "bus-validator", None,
                         code_shapes={"national": r"NAT:[0-9]{10}"})
    with TerminalRoot(settings) as root:
        recognition = root.recognition()
        assert recognition.recognise("NAT:0123456789") is CodeKind.NATIONAL
        assert recognition.recognise("ESSC" + "0A" * 20) is CodeKind.UNKNOWN   # replaced
        assert recognition.recognise("NHSA" + "0A" * 20) is CodeKind.EVOUCHER  # kept
    bad = _settings(tmp_path, "bus-validator", None, code_shapes={"national": r"[\s\S]*"})
    with TerminalRoot(bad) as root, pytest.raises(ConfigError, match=r"code_shapes\.national"):
        root.verifier()


def test_without_shapes_a_shipped_profile_recognises_only_our_codes() -> None:
    # The national codes publish no shape: the deployment configures its province's.
    for name in ("bus-validator", "hospital-desk"):
        assert load_profile(name).recognition().recognise("ESSC" + "0A" * 20) \
            is CodeKind.UNKNOWN


def test_a_national_code_passes_online_on_the_profiles_shape(tmp_path: Path,
                                                             sim: CentralSim) -> None:
    card = DEMO_CARDS["normal"]
    with TerminalRoot(_settings(tmp_path, "bus-validator", sim)) as root:
        code = issue_opaque_code(sim.store, card.card_number, CodeKind.NATIONAL)
        shown = root.presenter().present_code(code, arrived_at=time.monotonic())
        assert shown.accepted and shown.online, shown
        assert shown.ecode_reason == "accepted"


@pytest.mark.parametrize(("profile", "outcome"), [("bus-validator", "refuse"),
                                                  ("hospital-desk", "defer")])
def test_offline_a_national_code_gets_the_profiles_answer_never_unknown(
        tmp_path: Path, sim: CentralSim, profile: str, outcome: str) -> None:
    card = DEMO_CARDS["normal"]
    code = issue_opaque_code(sim.store, card.card_number, CodeKind.NATIONAL)
    sim.set_faults(mode="reset")
    with TerminalRoot(_settings(tmp_path, profile, sim)) as root:
        shown = root.presenter().present_code(code, arrived_at=time.monotonic())
        assert shown.outcome.value == outcome
        assert shown.reason == "online_only_code"
        assert shown.ecode_reason != "unknown_kind"
        assert "tap the card" in shown.message and "unknown" not in shown.message
        (_, payload), = [(r.kind, r.payload) for r in root.journal().records()]
        assert payload["reason"] == "online_only_code"
