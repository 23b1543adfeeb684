"""Run mutmut over one security-critical module at a time (called by scripts/mutation).

Each module is mutated in a scratch copy of the work tree (``.mutation/<name>/``) whose
pyproject.toml gets a ``[tool.mutmut]`` table naming that one file and the test files
that exercise it, so a module's mutants run only against its targeted tests (mutmut
further narrows each mutant to the tests that reached the mutated function). PC/SC
tests are left out: the machine's one pcscd is shared, and the same code paths run
through the in-process ``sim:`` transport.

Counted as killed: mutants a test failed on, or that made a test time out (an endless
loop is a detected bug). Not killed: survivors and mutants no selected test reached.

mutmut runs in a PID namespace of its own (``unshare --pid``): it arms a wall-clock
timeout per mutant that it never cancels, and when it fires it signals whatever process
then holds that PID. On a busy machine PIDs are reused within minutes, so outside a
namespace a stale timeout hit other people's processes, and our own survivors were
reported as timeouts. Inside it, PIDs count up from 1 and only mutmut's own children
can be hit; when mutmut exits, the kernel ends everything left in the namespace.

mutmut times a test by its call phase only, so tests whose fixtures start servers (the
central simulator) looked far faster than they are and mutants timed out that merely
ran at the machine's pace: the timeout here is (estimate + 45 s) x 4. A mutant killed
by a timeout leaves the servers its tests started; they are ended after each module
(processes whose working directory is in that module's scratch copy).
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / ".mutation"
MUTMUT = [sys.executable, "-m", "mutmut"]

# name -> (module under mutation, the test files that exercise it)
MODULES: dict[str, tuple[str, list[str]]] = {
    "privacy": ("sscard_terminal/privacy.py", [
        "tests/test_privacy.py", "tests/test_card_read_sim.py", "tests/test_cli_card.py",
        "tests/test_queue_cli.py", "tests/test_central_client.py"]),
    "journal": ("sscard_terminal/offline_queue/journal.py", [
        "tests/test_journal.py", "tests/test_queue_cli.py", "tests/test_forwarder.py"]),
    "journal-verify": ("sscard_terminal/offline_queue/verify.py", [
        "tests/test_journal.py", "tests/test_queue_cli.py"]),
    "journal-crypto": ("sscard_terminal/offline_queue/crypto.py", [
        "tests/test_journal.py", "tests/test_queue_cli.py"]),
    "forwarder": ("sscard_terminal/offline_queue/forwarder.py", [
        "tests/test_forwarder.py", "tests/test_queue_cli.py"]),
    "ecode-verifier": ("sscard_terminal/ecode/verifier.py", [
        "tests/test_ecode_verifier.py", "tests/test_ecode_online.py", "tests/test_ecode_cli.py"]),
    "ecode-algorithms": ("sscard_terminal/ecode/algorithms.py", [
        "tests/test_ecode_verifier.py", "tests/test_ecode_format.py"]),
    "ecode-cose": ("sscard_terminal/ecode/cose.py", [
        "tests/test_ecode_format.py", "tests/test_ecode_verifier.py"]),
    "ecode-trust-list": ("sscard_terminal/ecode/trust_list.py", [
        "tests/test_ecode_verifier.py", "tests/test_central_signatures.py",
        "tests/test_ecode_online.py"]),
    "central-signed": ("sscard_terminal/central/signed.py", [
        "tests/test_central_signatures.py", "tests/test_central_documents.py"]),
    "central-auth": ("sscard_terminal/central/auth.py", [
        "tests/test_central_auth.py", "tests/test_central_client.py"]),
    "central-client": ("sscard_terminal/central/client.py", [
        "tests/test_central_client.py", "tests/test_central_documents.py",
        "tests/test_central_signatures.py", "tests/test_central_auth.py",
        "tests/test_central_upload.py"]),
    "local-api-auth": ("sscard_terminal/local_api/http_server.py", [
        "tests/test_local_api_bridge.py"]),
    "psam": ("sscard_terminal/cards/authentication/psam.py", [
        "tests/test_read_auth_sim.py", "tests/test_card_read_sim.py"]),
    "hsm": ("sscard_terminal/cards/authentication/hsm.py", ["tests/test_read_auth_sim.py"]),
    "unified-hsm": ("sscard_terminal/cards/unified/hsm_steps.py", ["tests/test_read_auth_sim.py"]),
    "apdu-processors": ("sscard_terminal/apdu/processors.py", [
        "tests/test_apdu.py", "tests/test_card_read_sim.py"]),
    "decision-engine": ("sscard_terminal/decision/engine.py", [
        "tests/test_decision_offline.py", "tests/test_decision_online.py",
        "tests/test_decision_anti_passback.py", "tests/test_decision_equal_rights.py"]),
    "decision-rules": ("sscard_terminal/decision/rules.py", [
        "tests/test_decision_offline.py", "tests/test_decision_online.py",
        "tests/test_decision_anti_passback.py", "tests/test_profiles.py"]),
    "denylist": ("sscard_terminal/decision/denylist.py", [
        "tests/test_decision_denylist.py", "tests/test_decision_offline.py",
        "tests/test_central_signatures.py"]),
}


# Where only part of a module is security-critical: mutmut mutant-name patterns (fnmatch).
FUNCTIONS: dict[str, list[str]] = {
    # the journal's hash chain, acknowledgements, anchor and pruning (not its limits,
    # status and storage-error plumbing)
    "journal": [f"*.x_{f}__mutmut_*" for f in (
        "record_hash", "_framed", "_chain_link", "ack_mac", "chain_problem", "anchor_mac",
        "genesis_hash")] + [f"*ǁJournalǁ{m}__mutmut_*" for m in (
        "open", "anchor", "_parse_anchor", "chain_snapshot", "enqueue",
        "_check_delivered_below", "acknowledge", "prune", "_check_prunable")],
    "central-client": [
        "*ǁCentralClientǁ_signed__mutmut_*", "*ǁCentralClientǁ_pinned_key__mutmut_*",
        "*ǁCentralClientǁdenylist__mutmut_*", "*ǁCentralClientǁtrust_list__mutmut_*",
        "*ǁCentralClientǁ_attempt__mutmut_*", "*.x_read_signed_trust_list__mutmut_*",
        "*.x__parse_trust_list__mutmut_*", "*.x__parse_denylist__mutmut_*",
        "*.x__checked_credentials__mutmut_*",
    ],
}


def _files_to_copy() -> list[str]:
    """Tracked and new (not ignored) files: the work tree as it is, without .venv."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                         check=True, capture_output=True).stdout.decode()
    return [name for name in out.split("\0") if name and (ROOT / name).is_file()]


def _scratch_copy(name: str, source: str, tests: list[str]) -> Path:
    where = SCRATCH / name
    shutil.rmtree(where, ignore_errors=True)
    for rel in _files_to_copy():
        target = where / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    settings = {
        "source_paths": ["sscard_terminal/"],
        "only_mutate": [source],
        "also_copy": ["profiles/", "docs/", "bench/", "scripts/", "systemd/", "README.md"],
        "pytest_add_cli_args": ["-m", "not pcsc", "-p", "no:cacheprovider", "-q"],
        "pytest_add_cli_args_test_selection": tests,
        "timeout_multiplier": 4.0,
        "timeout_constant": 45.0,
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}"
                                     for key, value in settings.items()]
    with (where / "pyproject.toml").open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return where


def _end_leftovers(where: Path) -> int:
    """End processes still running in the scratch copy (servers of timed-out mutants)."""
    ended = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(f"/proc/{entry}/cwd"))
        except OSError:
            continue
        if cwd == where or where in cwd.parents:
            try:
                os.kill(int(entry), signal.SIGKILL)
                ended += 1
            except OSError:
                pass
    return ended


_KILLED = ("killed", "timeout", "segfault", "caught by type check")
_NOT_KILLED = ("survived", "no tests", "suspicious")


ISOLATE = ["unshare", "--pid", "--fork", "--mount-proc"]


def _check_isolation() -> None:
    try:
        ok = subprocess.run([*ISOLATE, "true"], check=False, capture_output=True).returncode == 0
    except OSError:
        ok = False
    if not ok:
        raise SystemExit("scripts/mutation: cannot make a PID namespace (unshare --pid needs "
                         "root or user namespaces); without one mutmut's stale timeouts may "
                         "signal unrelated processes, so it is not run")


def run_module(name: str, jobs: int) -> dict[str, object]:
    source, tests = MODULES[name]
    patterns = FUNCTIONS.get(name, [])
    where = _scratch_copy(name, source, tests)
    started = time.monotonic()
    try:
        with (where / "mutmut-run.log").open("w", encoding="utf-8") as log:
            subprocess.run([*ISOLATE, *MUTMUT, "run", "--max-children", str(jobs), *patterns],
                           cwd=where, check=False, stdout=log, stderr=subprocess.STDOUT)
    finally:
        _end_leftovers(where)
    listing = subprocess.run([*MUTMUT, "results", "--all", "true"], cwd=where, check=True,
                             capture_output=True, text=True).stdout
    status: dict[str, str] = {}
    for line in listing.splitlines():
        mutant, sep, state = line.strip().rpartition(": ")
        if sep and (not patterns or any(fnmatch.fnmatch(mutant, p) for p in patterns)):
            status[mutant] = state
    not_killed = [m for m, state in status.items() if state in _NOT_KILLED]
    with (where / "survivors.txt").open("w", encoding="utf-8") as out:
        for mutant in not_killed:
            shown = subprocess.run([*MUTMUT, "show", mutant], cwd=where, check=False,
                                   capture_output=True, text=True).stdout
            out.write(f"# {status[mutant]}\n{shown}\n")
    counted = [state for state in status.values() if state in _KILLED + _NOT_KILLED]
    killed = sum(state in _KILLED for state in counted)
    total = len(counted)
    return {"module": name, "file": source, "generated": total, "killed": killed,
            "survived": sum(state in ("survived", "suspicious") for state in counted),
            "no_tests": sum(state == "no tests" for state in counted),
            "timeouts": sum(state == "timeout" for state in counted),
            "unchecked": len(status) - total,
            # an interrupted run leaves mutants unchecked: no score rather than a wrong one
            "score": (round(100.0 * killed / total, 1)
                      if total and len(status) == total else None),
            "minutes": round((time.monotonic() - started) / 60.0, 1),
            "date": dt.date.today().isoformat(),
            "survivors": str((where / "survivors.txt").relative_to(ROOT))}


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/mutation", description=__doc__)
    parser.add_argument("--module", action="append", choices=sorted(MODULES),
                        help="mutate only this module (repeatable); default: all")
    parser.add_argument("--list", action="store_true", help="list the modules and exit")
    parser.add_argument("--jobs", type=int, default=2,
                        help="mutants tested at once (default 2)")
    args = parser.parse_args()
    if args.list:
        for name, (source, tests) in MODULES.items():
            print(f"{name:18} {source}  <- {' '.join(Path(t).name for t in tests)}")
        return 0
    _check_isolation()
    results = []
    for name in args.module or list(MODULES):
        print(f"mutation: {name} ({MODULES[name][0]}) ...", flush=True)
        result = run_module(name, max(1, args.jobs))
        results.append(result)
        print(json.dumps(result), flush=True)
    print("| module | file | generated | killed (timeouts) | surviving (no test reached) "
          "| killed % |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['module']} | `{r['file']}` | {r['generated']} | {r['killed']} "
              f"({r['timeouts']}) | {int(r['survived']) + int(r['no_tests'])} "
              f"({r['no_tests']}) | {r['score']} |")
    if any(r["timeouts"] for r in results):
        print("mutation: timeouts count as killed; run each one by hand "
              "(MUTANT_UNDER_TEST=<name> pytest <test> in .mutation/<module>/mutants) before "
              "believing it: a slow machine also times out")
    incomplete = [r["module"] for r in results if r["score"] is None]
    if incomplete:
        print(f"mutation: incomplete (interrupted, or nothing generated): "
              f"{', '.join(map(str, incomplete))}")
    below = [r["module"] for r in results
             if r["score"] is not None and float(r["score"]) < 90.0]  # type: ignore[arg-type]
    if below:
        print(f"mutation: below 90 % killed: {', '.join(map(str, below))} "
              "(survivors in .mutation/*/survivors.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
