"""The simulators plug in through entry points; the product names none of them.

Covers issue 16 item 3 and issue 21 items 1-3: the ``sim:`` devices (cards and PSAMs) and
``central-sim`` come from the ``sscard_terminal.sim_devices`` / ``sscard_terminal.cli_commands``
entry points; ``sim:`` names resolve by unique prefix and an unknown one lists what exists;
``--psam sim:psam`` reads a generation 3 card completely with no pcscd and no central; the
``central-sim`` commands share a default ``--db``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from sscard_terminal.apdu.transport import CardInterface
from sscard_terminal.cards.authentication.psam import read_terminal_number
from sscard_terminal.cli.main import build_parser
from sscard_terminal.drivers.sim import open_sim_reader, sim_readers
from sscard_terminal.errors import NoReaderError
from sscard_terminal.plugins import CLI_COMMANDS_GROUP, SIM_DEVICES_GROUP

ROOT = Path(__file__).resolve().parent.parent
CARDS = ("sim:bank-only", "sim:expired", "sim:foreign-holder", "sim:gen1-adult",
         "sim:gen2-adult", "sim:gen3-3des", "sim:gen3-adult", "sim:gen3-child",
         "sim:gen3-cloned", "sim:gen3-rare-name", "sim:other-province")
PSAMS = ("sim:psam", "sim:psam-no-read-key", "sim:psam-3des-only")
# pyscard's libpcsclite then finds no pcscd, whether or not one runs on this machine.
NO_PCSCD = {"PCSCLITE_CSOCK_NAME": "/nonexistent/sscard-test/pcscd.comm"}


def _sscard(*args: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sscard_terminal.cli.main", *args],
                          capture_output=True, text=True, timeout=60, check=False, cwd=cwd,
                          env={**os.environ, **NO_PCSCD, **(env or {})})


# --- the product names no simulator ----------------------------------------------------


def test_the_product_names_no_simulator_module() -> None:
    mentions = [str(path.relative_to(ROOT)) for path in (ROOT / "sscard_terminal").rglob("*")
                if path.is_file() and path.suffix in (".py", ".toml", ".json", ".typed")
                and "sscard_hardware_sim" in path.read_text(encoding="utf-8")]
    assert mentions == []


def test_the_simulator_declares_its_entry_points() -> None:
    devices = {p.name: p.value for p in entry_points(group=SIM_DEVICES_GROUP)}
    assert devices == {"cards": "sscard_hardware_sim.sim_devices:CARDS",
                       "psams": "sscard_hardware_sim.sim_devices:PSAMS"}
    commands = {p.name: p.value for p in entry_points(group=CLI_COMMANDS_GROUP)}
    assert commands == {"central-sim": "sscard_hardware_sim.central_cli:register"}


def test_sim_readers_are_the_plugins_cards_then_psams() -> None:
    assert [(r.name, r.kind) for r in sim_readers()] == \
        [(name, "card") for name in CARDS] + [(name, "PSAM") for name in PSAMS]


_TOY = '''
from sscard_terminal.errors import CardRemovedError

class Toy:
    interface = "contactless"
    atr = bytes.fromhex("3B00")
    def __init__(self, pulled): self.pulled = pulled
    def power_on(self): pass
    def power_off(self): pass
    def transmit(self, apdu):
        if self.pulled:
            raise CardRemovedError("toy left the field")
        return bytes.fromhex("CAFE9000")

class Provider:
    kind = "card"
    def names(self): return ["toy", "toy-pulled"]
    def open(self, name): return Toy(name == "toy-pulled")

PROVIDER = Provider()
'''


def _toy_distribution(tmp_path: Path, value: str) -> dict[str, str]:
    """A tiny installed distribution (a dist-info on PYTHONPATH) that adds a sim: device."""
    (tmp_path / "toy_sim.py").write_text(textwrap.dedent(_TOY), encoding="utf-8")
    info = tmp_path / "toy_sim-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-sim\nVersion: 1.0\n",
                                   encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[{SIM_DEVICES_GROUP}]\ntoy = {value}\n",
                                           encoding="utf-8")
    return {"PYTHONPATH": str(tmp_path)}


def test_a_sim_device_is_found_only_through_its_entry_point(tmp_path: Path) -> None:
    """Any distribution's provider becomes a sim: reader: nothing is hard-coded. Its device
    speaks through SimTransport, and a CardRemovedError it raises is the card leaving."""
    env = _toy_distribution(tmp_path, "toy_sim:PROVIDER")
    listed = _sscard("readers", env=env)
    assert "sim:toy\tsimulated card present" in listed.stdout.splitlines()
    assert "sim:psam\tsimulated PSAM present" in listed.stdout.splitlines()
    answered = _sscard("apdu", "00A4040000", "--reader", "sim:toy", env=env)
    assert answered.returncode == 0, answered.stderr
    assert answered.stdout.splitlines()[0] == "data CA FE"
    pulled = _sscard("apdu", "00A4040000", "--reader", "sim:toy-p", env=env)
    assert pulled.returncode != 0
    assert "sim:toy-pulled: the card was removed" in pulled.stderr, pulled.stderr
    assert "Traceback" not in pulled.stderr


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path: Path) -> None:
    env = _toy_distribution(tmp_path, "no_such_module_here:PROVIDER")
    listed = _sscard("readers", env=env)
    assert "sim:gen3-adult\tsimulated card present" in listed.stdout.splitlines()
    assert "plug-in toy = no_such_module_here:PROVIDER" in listed.stderr
    assert "Traceback" not in listed.stderr


# --- sim: names ------------------------------------------------------------------------


def test_sim_psam_is_a_psam() -> None:
    with open_sim_reader("sim:psam") as transport:
        assert transport.reader_name == "sim:psam"
        assert transport.interface is CardInterface.CONTACT
        assert read_terminal_number(transport) == "410100813475"


def test_a_unique_prefix_of_a_simulated_holder_resolves() -> None:
    with open_sim_reader("sim:gen2") as transport:
        assert transport.reader_name == "sim:gen2-adult"
    with open_sim_reader("sim:other") as transport:
        assert transport.reader_name == "sim:other-province"


def test_an_exact_name_wins_over_longer_names_it_prefixes() -> None:
    with open_sim_reader("sim:psam") as transport:
        assert transport.reader_name == "sim:psam"


def test_an_ambiguous_prefix_lists_the_candidates() -> None:
    with pytest.raises(NoReaderError) as caught:
        open_sim_reader("sim:gen3")
    candidates = ("sim:gen3-3des", "sim:gen3-adult", "sim:gen3-child", "sim:gen3-cloned",
                  "sim:gen3-rare-name")
    assert caught.value.found == candidates
    assert str(caught.value) == ("simulated reader 'sim:gen3' is ambiguous: it may be "
                                 + ", ".join(candidates))


def test_an_unknown_name_lists_the_simulated_cards_and_psams() -> None:
    with pytest.raises(NoReaderError) as caught:
        open_sim_reader("sim:nobody")
    assert caught.value.found == CARDS + PSAMS
    assert str(caught.value) == ("no simulated reader 'sim:nobody'; simulated cards: "
                                 + ", ".join(CARDS) + "; simulated PSAMs: " + ", ".join(PSAMS))


def test_cli_read_by_prefix_and_the_errors_a_user_sees() -> None:
    done = _sscard("read", "--reader", "sim:gen2", "--json")
    assert done.returncode == 0, done.stderr
    assert '"reader": "sim:gen2-adult"' in done.stdout
    ambiguous = _sscard("read", "--reader", "sim:gen3")
    assert ambiguous.returncode == 3
    assert ambiguous.stderr.startswith("sscard: simulated reader 'sim:gen3' is ambiguous")
    unknown = _sscard("read", "--reader", "sim:gen3-adult", "--psam", "sim:nope")
    assert "simulated PSAMs: sim:psam, sim:psam-no-read-key, sim:psam-3des-only" in unknown.stderr
    assert "pcscd" not in unknown.stderr


# --- a complete generation 3 read with no hardware -----------------------------------

_GEN3_READ = """\
reader                       sim:gen3-adult
interface                    contact
atr                          3B6D000000814E4323869715330300A1B2
generation                   3
spec_version                 3.00
card_identification_code     330300D15600000500A1B2C3D4E5F601
region                       330300
card_type                    3
initialising_institution     000000000000000000000001
issue_date                   2022-03-01
expiry_date                  2032-03-01
expired                      False
card_number                  W*******1
card_number_check            CARD_NUMBER ok
social_security_number       3303**********0037
social_security_number_check GB11643 ok
name                         林**
sex                          1
sex_text                     male
ethnicity                    01
ethnicity_text               汉族
birthplace                   3303**
birth_date                   1985-**-**
algorithm                    3
complete                     True
security module              psam:sim:psam
"""


def test_cli_reads_a_gen3_card_completely_with_the_sim_psam_and_no_pcscd() -> None:
    done = _sscard("read", "--reader", "sim:gen3-adult", "--psam", "sim:psam")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == _GEN3_READ


def test_without_the_psam_the_same_read_is_incomplete() -> None:
    """The control: the complete read above is the PSAM's doing."""
    done = _sscard("read", "--reader", "sim:gen3-adult", "--no-security-module")
    assert done.returncode == 10
    assert "name" not in [line.split()[0] for line in done.stdout.splitlines() if line]
    assert "INCOMPLETE:" in done.stdout


# --- central-sim ---------------------------------------------------------------------


def test_central_sim_commands_share_a_default_db(tmp_path: Path) -> None:
    """The README's lines, as written: no --db, the state in ./central.db."""
    parser = build_parser()
    assert parser.parse_args(["central-sim", "serve"]).db == Path("central.db")
    config = _sscard("central-sim", "terminal-config", "--terminal-id", "T-BUS-0001",
                     cwd=tmp_path)
    assert config.returncode == 0, config.stderr
    assert '"terminal_id": "T-BUS-0001"' in config.stdout
    assert (tmp_path / "central.db").is_file()
    app = _sscard("central-sim", "set-app", "D00000013", "library", "off", cwd=tmp_path)
    assert (app.returncode, app.stdout) == (0, "D00000013: library off\n"), app.stderr
    code = _sscard("central-sim", "issue-code", "D00000013", cwd=tmp_path)
    assert code.returncode == 0 and code.stdout.startswith("SC1:"), code.stderr
    # One state across the commands: after a replacement, unlocking the card is refused.
    replaced = _sscard("central-sim", "set-status", "D00000013", "replaced", cwd=tmp_path)
    assert replaced.returncode == 0, replaced.stderr
    assert replaced.stdout.startswith("D00000013: replaced (new card ")
    unlock = _sscard("central-sim", "set-status", "D00000013", "normal", cwd=tmp_path)
    assert unlock.returncode == 1
    assert unlock.stderr == "sscard: refused: unlock refused: a replacement was applied for\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == ["central.db"]
