"""``sscard queue status|drain|export|verify``: the offline journal for technicians.

The journal's master key comes from ``--key-file`` (mode 0600, owned by the user running
the command) or ``--credential NAME`` (a systemd credential); the terminal id is read
from the journal itself unless given.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import IO, Any

from ..central.client import CentralClient, TerminalConfig
from ..deadline import Deadline
from ..errors import ConfigError, JournalError, JournalTamperedError, SscardError
from ..offline_queue import (
    Forwarder,
    Journal,
    JournalLimits,
    JournalRecord,
    load_credential,
    load_key_file,
    verify_journal,
)
from ..offline_queue.journal import peek_terminal_id
from ..privacy import mask_card_number, mask_id_number, mask_name, mask_pan, mask_text
from ..profiles import load_profile

_log = logging.getLogger("sscard_terminal.cli.queue")
_FMT = argparse.RawDescriptionHelpFormatter
DEFAULT_DB = Path("/var/lib/sscard-terminald/journal.db")   # the daemon's StateDirectory=
DEFAULT_KEY_FILE = Path("/etc/sscard/journal.key")

_MASKS = {"name": mask_name, "id_number": mask_id_number, "card_number": mask_card_number,
          "pan": mask_pan}


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=DEFAULT_DB,
                        help=f"journal file (default {DEFAULT_DB})")
    parser.add_argument("--key-file", type=Path,
                        help=f"master key file, mode 0600 (default {DEFAULT_KEY_FILE})")
    parser.add_argument("--credential", metavar="NAME",
                        help="read the master key from systemd credential NAME instead")
    parser.add_argument("--terminal-id", help="terminal id (default: the one in the journal)")


def _add(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str,
         description: str, example: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_, description=description,
                            epilog=f"Example: {example}", formatter_class=_FMT)
    _common(parser)
    return parser


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add this group's commands to the CLI."""
    queue = sub.add_parser(
        "queue", help="inspect, forward, export and verify the offline journal",
        description="The offline journal: every transaction a terminal accepted, hash-chained "
        "and with personal fields encrypted, waiting to reach the central system.",
        epilog="Example: sscard queue status --db /var/lib/sscard-terminald/journal.db "
        "--key-file /etc/sscard/journal.key", formatter_class=_FMT)
    qsub = queue.add_subparsers(dest="queue_command", metavar="COMMAND")

    p = _add(qsub, "status", "queued count, oldest age, disk use and alarms",
             "Show how many records wait to be forwarded, how old the oldest is, the bytes "
             "the journal uses on disk and which limits are exceeded.",
             "sscard queue status --db journal.db --key-file journal.key")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--profile", metavar="NAME|PATH",
                   help="deployment profile whose [journal] limits to check (without it, "
                        "no limits are checked)")
    p.set_defaults(func=_status)

    p = _add(qsub, "drain", "forward everything queued to the central now",
             "Upload every queued record to the central in order and in batches, with a "
             "progress bar (rate and ETA) on stderr; retries with backoff until --timeout.",
             "sscard queue drain --db journal.db --key-file journal.key --config central.json")
    p.add_argument("--config", type=Path, required=True,
                   help="terminal config JSON (base_url, terminal_id, secret, ...)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="give up after this many seconds (default 300)")
    p.add_argument("--batch-size", type=_at_least_one, default=200,
                   help="records per upload (200)")
    p.set_defaults(func=_drain)

    p = _add(qsub, "export", "write the journal as JSON Lines (personal data masked)",
             "Write every record still in the journal as one JSON object per line. Personal "
             "fields are masked unless --unmask is given (the unmasking is logged).",
             "sscard queue export --db journal.db --key-file journal.key -o journal.jsonl")
    p.add_argument("-o", "--output", type=Path, help="output file (default stdout)")
    p.add_argument("--unmask", action="store_true",
                   help="write personal fields in clear (technicians only; logged)")
    p.set_defaults(func=_export)

    p = _add(qsub, "verify", "check the hash chain (deleted, reordered, edited records)",
             "Walk the hash chain from its anchor and report every record that was deleted, "
             "reordered or edited, or whose acknowledgement was forged. Exit code 15 if any.",
             "sscard queue verify --db journal.db --key-file journal.key")
    p.set_defaults(func=_verify)


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"want a whole number of at least 1, not {text!r}")
    return value


def _master_key(args: argparse.Namespace) -> bytes:
    if args.credential:
        return load_credential(args.credential)
    if args.key_file is None and os.environ.get("CREDENTIALS_DIRECTORY"):
        return load_credential("journal-key")
    return load_key_file(args.key_file or DEFAULT_KEY_FILE)


def _open(args: argparse.Namespace, limits: JournalLimits | None = None) -> Journal:
    if not args.db.exists():
        # The journal cannot be used: exit 15 (JOURNAL_ERROR), as the README's table says.
        raise JournalError(f"no journal at {args.db}; pass --db with the journal's path")
    terminal_id = args.terminal_id or peek_terminal_id(args.db)
    return Journal.open(args.db, terminal_id=terminal_id, keys=_master_key(args),
                        limits=limits)


def _status(args: argparse.Namespace) -> int:
    limits = load_profile(args.profile).journal.limits() if args.profile else None
    with _open(args, limits) as journal:
        status = journal.status()
        rejected = journal.rejected_count()
        records = status.head_seq
    alarms = sorted(a.value for a in status.alarms)
    data = {"journal": str(args.db), "terminal_id": journal.terminal_id,
            "queued": status.queued, "rejected": rejected,
            "oldest_queued_age_s": status.oldest_queued_age_s,
            "disk_bytes": status.disk_bytes, "last_sequence": records, "alarms": alarms,
            "limits_checked": limits is not None}
    if args.json:
        print(json.dumps(data))
        return 0
    age = ("-" if status.oldest_queued_age_s is None
           else _duration(status.oldest_queued_age_s))
    print(f"journal      {args.db} (terminal {journal.terminal_id})")
    print(f"queued       {status.queued}")
    print(f"oldest       {age}")
    where = (" (refused by the central, kept until pruned; 'sscard queue export' lists "
             "them with their reasons)") if rejected else ""
    print(f"rejected     {rejected}{where}")
    print(f"disk in use  {status.disk_bytes / 1e6:.1f} MB")
    print(f"last seq     {records}")
    if limits is None:
        print("alarms       not checked (give --profile for the deployment's limits)")
    else:
        print(f"alarms       {', '.join(alarms) or 'none'}")
    return 0


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


class ProgressBar:
    """A one-line progress bar with rate and ETA, redrawn on a terminal stream."""

    def __init__(self, total: int, stream: IO[str], width: int = 30) -> None:
        self.total = max(total, 1)
        self._stream = stream
        self._width = width
        self._started = time.monotonic()

    def update(self, done: int, remaining: int) -> None:
        total = max(self.total, done + remaining, 1)
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = done / elapsed
        eta = _duration(remaining / rate) if rate > 0 else "?"
        filled = int(self._width * done / total)
        bar = "#" * filled + "-" * (self._width - filled)
        self._stream.write(f"\r[{bar}] {100 * done / total:5.1f}% {done}/{total} "
                           f"{rate:,.0f}/s ETA {eta}")
        self._stream.flush()

    def finish(self) -> None:
        self._stream.write("\n")
        self._stream.flush()


def _drain(args: argparse.Namespace) -> int:
    config = TerminalConfig.from_mapping(TerminalConfig.load_json(args.config))
    with _open(args) as journal, CentralClient.from_config(config) as client:
        if config.terminal_id != journal.terminal_id:
            raise ConfigError(f"{args.config} is for terminal {config.terminal_id}, the "
                              f"journal for {journal.terminal_id}")
        bar = ProgressBar(journal.status().queued, sys.stderr)
        journal_errors: list[JournalError] = []

        def stop_on_journal_error(exc: SscardError) -> None:
            # Waiting does not mend a key or a tampered journal (the network may): stop
            # now and say which, instead of retrying until --timeout.
            if isinstance(exc, JournalError):
                journal_errors.append(exc)
                forwarder.stop()

        forwarder = Forwarder(journal, client, batch_size=args.batch_size,
                              on_failure=stop_on_journal_error)
        result = forwarder.drain(Deadline.after(args.timeout), bar.update)
        bar.finish()
        if journal_errors:
            raise journal_errors[0]
    print(f"forwarded {result.forwarded}, rejected {result.rejected}, "
          f"remaining {result.remaining}")
    if result.remaining:
        print(f"last error: {result.last_error}", file=sys.stderr)
        return 13
    return 0


def _masked(personal: dict[str, Any]) -> dict[str, Any]:
    return {name: _MASKS.get(name, mask_text)(str(value)) for name, value in personal.items()}


def _export_line(journal: Journal, record: JournalRecord, unmask: bool) -> str:
    personal = journal.personal(record)
    return json.dumps({
        "seq": record.seq, "id": record.id, "terminal_id": record.terminal_id,
        "wall_time": record.wall_time, "mono_ns": record.mono_ns, "boot_id": record.boot_id,
        "kind": record.kind, "payload": dict(record.payload),
        "personal": personal if unmask else _masked(personal),
        "acked_at": record.acked_at,
        "ack_outcome": record.ack_outcome.value if record.ack_outcome else None,
        "ack_reason": record.ack_reason, "hash": record.hash.hex(),
    }, ensure_ascii=False)


def _private_file(path: Path) -> IO[str]:
    """Open ``path`` for writing, readable by its owner only (an export may be unmasked;
    an existing file is narrowed too, before anything is written to it)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise ConfigError(f"cannot write the export to {path}: {exc.strerror}") from exc
    try:
        if hasattr(os, "fchmod"):   # not on Windows before 3.13, where modes do not apply
            os.fchmod(fd, 0o600)
    except OSError as exc:
        os.close(fd)
        raise ConfigError(f"cannot make {path} private to its owner: {exc.strerror}") from exc
    return open(fd, "w", encoding="utf-8")


def _export(args: argparse.Namespace) -> int:
    if args.unmask:
        _log.warning("exporting journal %s with personal data UNMASKED (user %s)",
                     args.db, os.environ.get("USER", os.getuid()))
    with _open(args) as journal:
        out = _private_file(args.output) if args.output else sys.stdout
        try:
            count = 0
            for record in journal.records():
                out.write(_export_line(journal, record, args.unmask) + "\n")
                count += 1
        finally:
            if args.output:
                out.close()
    print(f"exported {count} record(s)", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    with _open(args) as journal:
        report = verify_journal(journal)
    if report.ok:
        print(f"chain ok: {report.checked} record(s) {report.first_seq}..{report.last_seq}")
        return 0
    for problem in report.problems:
        print(str(problem))
    raise JournalTamperedError(
        f"journal {args.db}: hash chain broken at {len(report.problems)} place(s); keep the "
        f"file as evidence and report it")
