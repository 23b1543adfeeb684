"""Run mutmut over one security-critical module at a time (called by scripts/mutation).

Each module is mutated in a scratch copy of the work tree (``.mutation/<name>/``) whose
pyproject.toml gets a ``[tool.mutmut]`` table naming that one file and the test files
that exercise it, so a module's mutants run only against its targeted tests (mutmut
further narrows each mutant to the tests that reached the mutated function). PC/SC
tests are left out: the machine's one pcscd is shared, and the same code paths run
through the in-process ``sim:`` transport.

Counted as killed: mutants a test failed on, or that made a test time out (an endless
loop is a detected bug). Not killed: survivors and mutants no selected test reached.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
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
    "psam": ("sscard_terminal/cards/psam.py", [
        "tests/test_read_auth_sim.py", "tests/test_card_read_sim.py"]),
    "hsm": ("sscard_terminal/cards/hsm.py", ["tests/test_read_auth_sim.py"]),
    "unified-hsm": ("sscard_terminal/cards/unified_hsm.py", ["tests/test_read_auth_sim.py"]),
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
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}"
                                     for key, value in settings.items()]
    with (where / "pyproject.toml").open("a", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return where


def run_module(name: str, jobs: int) -> dict[str, object]:
    source, tests = MODULES[name]
    where = _scratch_copy(name, source, tests)
    started = time.monotonic()
    with (where / "mutmut-run.log").open("w", encoding="utf-8") as log:
        subprocess.run([*MUTMUT, "run", "--max-children", str(jobs)], cwd=where, check=False,
                       stdout=log, stderr=subprocess.STDOUT)
    subprocess.run([*MUTMUT, "export-cicd-stats"], cwd=where, check=True,
                   capture_output=True)
    stats = json.loads((where / "mutants" / "mutmut-cicd-stats.json").read_text())
    listing = subprocess.run([*MUTMUT, "results"], cwd=where, check=True,
                             capture_output=True, text=True).stdout
    not_killed = [line.split(":")[0].strip() for line in listing.splitlines()
                  if line.strip().endswith(("survived", "no tests", "suspicious"))]
    with (where / "survivors.txt").open("w", encoding="utf-8") as out:
        for mutant in not_killed:
            shown = subprocess.run([*MUTMUT, "show", mutant], cwd=where, check=False,
                                   capture_output=True, text=True).stdout
            out.write(shown + "\n")
    killed = int(stats["killed"]) + int(stats["timeout"]) + int(stats["segfault"])
    total = int(stats["total"]) - int(stats["skipped"])
    return {"module": name, "file": source, "generated": total, "killed": killed,
            "survived": int(stats["survived"]) + int(stats["suspicious"]),
            "no_tests": int(stats["no_tests"]),
            "score": round(100.0 * killed / total, 1) if total else 100.0,
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
    results = []
    for name in args.module or list(MODULES):
        print(f"mutation: {name} ({MODULES[name][0]}) ...", flush=True)
        result = run_module(name, max(1, args.jobs))
        results.append(result)
        print(json.dumps(result), flush=True)
    print("| module | file | generated | killed | surviving (no test reached) | killed % |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['module']} | `{r['file']}` | {r['generated']} | {r['killed']} | "
              f"{int(r['survived']) + int(r['no_tests'])} ({r['no_tests']}) | {r['score']} |")
    below = [r["module"] for r in results if float(r["score"]) < 90.0]  # type: ignore[arg-type]
    if below:
        print(f"mutation: below 90 % killed: {', '.join(below)} (survivors in .mutation/*/"
              "survivors.txt)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
