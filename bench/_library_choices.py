"""Why segno and why the stdlib sqlite3: the two measurements behind docs/architecture.md.

Not a registered benchmark (no ratio goal): ``python -m bench._library_choices`` in an
environment that also has the rejected candidates, ``qrcode`` (with ``pypng``) and
``sqlite-utils``; a candidate that is not installed is reported missing.

1. QR generation (the simulator's e-codes and camera frames; the gate's display later):
   ``segno.make_qr`` against ``qrcode.QRCode`` on e-code texts of 150-300 base45
   characters, error level M: time per symbol (matrix only, and as a PNG), the symbol
   version each picks (smaller is easier for a camera), and the dependencies each pulls.
2. The journal's hot path, one ``INSERT`` per enqueue in autocommit: the stdlib
   ``sqlite3`` as ``Journal.enqueue`` calls it against ``sqlite-utils``' ``Table.insert``
   on the same columns, WAL, ``synchronous=OFF`` so that the library's own CPU cost is
   what is measured (with FULL both wait for the same fsync).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import io
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BASE45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

_SCHEMA = """CREATE TABLE records (
    seq INTEGER PRIMARY KEY, id TEXT NOT NULL, terminal_id TEXT NOT NULL,
    wall_time TEXT NOT NULL, mono_ns INTEGER NOT NULL, boot_id TEXT NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL, personal BLOB, prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL)"""
_INSERT = ("INSERT INTO records (seq, id, terminal_id, wall_time, mono_ns, boot_id, kind, "
           "payload, personal, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_COLUMNS = ("seq", "id", "terminal_id", "wall_time", "mono_ns", "boot_id", "kind",
            "payload", "personal", "prev_hash", "hash")


def _best_per_call(fn: Callable[[], object], calls: int, repeats: int) -> float:
    """Microseconds per call: the median of ``repeats`` runs of ``calls`` calls."""
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - began) / calls * 1e6)
    return statistics.median(runs)


def _requires(dist: str) -> list[str]:
    """What installing ``dist`` pulls in on this platform and Python (no extras)."""
    try:
        requires = importlib.metadata.requires(dist) or []
    except importlib.metadata.PackageNotFoundError:
        return ["(not installed)"]
    try:
        from packaging.requirements import Requirement  # noqa: PLC0415
    except ImportError:  # without packaging: every requirement, markers shown
        return [r for r in requires if "extra ==" not in r]
    pulled = []
    for text in requires:
        requirement = Requirement(text)
        if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
            pulled.append(requirement.name)
    return pulled


def _import_ms(module: str, repeats: int) -> float:
    """Milliseconds to import ``module`` in a fresh interpreter, less a bare start."""
    def run(code: str) -> float:
        began = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        return time.perf_counter() - began
    bare = statistics.median(run("pass") for _ in range(repeats))
    return (statistics.median(run(f"import {module}") for _ in range(repeats)) - bare) * 1e3


def qr(texts: list[str], repeats: int) -> None:
    print("QR generation, error level M, texts of 150-300 base45 characters")
    import segno  # noqa: PLC0415 - both candidates are optional here

    versions: dict[str, list[int]] = {"segno": [], "qrcode": []}
    for text in texts:
        versions["segno"].append(segno.make_qr(text, error="m").version)
    cycle = iter(texts * (repeats * 1000))

    def segno_matrix() -> object:
        return segno.make_qr(next(cycle), error="m").matrix

    def segno_png() -> object:
        buf = io.BytesIO()
        segno.make_qr(next(cycle), error="m").save(buf, kind="png", scale=6, border=4)
        return buf

    rows = [("segno " + importlib.metadata.version("segno"),
             _best_per_call(segno_matrix, len(texts), repeats),
             _best_per_call(segno_png, len(texts), repeats), _import_ms("segno", repeats),
             _requires("segno"))]
    try:
        import qrcode  # noqa: PLC0415
        import qrcode.image.pure  # noqa: PLC0415
    except ImportError:
        print("  qrcode: not installed")
    else:
        def qrcode_symbol(text: str) -> Any:
            symbol = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=0)
            symbol.add_data(text)
            symbol.make(fit=True)
            return symbol

        for text in texts:
            versions["qrcode"].append(qrcode_symbol(text).version)

        def qrcode_matrix() -> object:
            return qrcode_symbol(next(cycle)).get_matrix()

        def qrcode_png() -> object:
            buf = io.BytesIO()
            symbol = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M,
                                   box_size=6, border=4,
                                   image_factory=qrcode.image.pure.PyPNGImage)
            symbol.add_data(next(cycle))
            symbol.make(fit=True)
            symbol.make_image().save(buf)
            return buf

        rows.append(("qrcode " + importlib.metadata.version("qrcode"),
                     _best_per_call(qrcode_matrix, len(texts), repeats),
                     _best_per_call(qrcode_png, len(texts), repeats),
                     _import_ms("qrcode", repeats),
                     [*_requires("qrcode"), "pypng or Pillow (to write a PNG)"]))
    for name, matrix_us, png_us, import_ms, requires in rows:
        print(f"  {name:<14} matrix {matrix_us / 1000:6.2f} ms  PNG {png_us / 1000:6.2f} ms  "
              f"import {import_ms:5.1f} ms  runtime dependencies: {', '.join(requires) or 'none'}")
    for name, found in versions.items():
        if found:
            print(f"  {name:<14} symbol version: median {statistics.median(found)}, "
                  f"max {max(found)}")


def _rows(count: int) -> list[tuple[Any, ...]]:
    rng = random.Random(7)
    return [(seq, f"0193{rng.getrandbits(112):028x}", "T-BUS-0001",
             "2026-12-04T17:00:00.000Z", seq * 1000, "boot", "card_tap",
             '{"card_ref":"' + f"{rng.getrandbits(128):032x}" + '","decision":"accept"}',
             os.urandom(60), os.urandom(32), os.urandom(32)) for seq in range(1, count + 1)]


def journal(count: int, repeats: int, directory: Path) -> None:
    print(f"journal hot path: one autocommit INSERT per record, WAL, synchronous=OFF, "
          f"{count} records x {repeats}")
    rows = _rows(count)

    def fresh(name: str) -> sqlite3.Connection:
        path = directory / name
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute(_SCHEMA)
        return conn

    def stdlib_run() -> float:
        conn = fresh("stdlib.db")
        execute = conn.execute
        began = time.perf_counter()
        for row in rows:
            execute(_INSERT, row)
        took = time.perf_counter() - began
        conn.close()
        return took / count * 1e6

    results = [("sqlite3 (stdlib)", statistics.median(stdlib_run() for _ in range(repeats)),
                "none")]
    try:
        import sqlite_utils  # noqa: PLC0415
    except ImportError:
        print("  sqlite-utils: not installed")
    else:
        dicts = [dict(zip(_COLUMNS, row, strict=True)) for row in rows]

        def utils_run() -> float:
            conn = fresh("utils.db")
            table = sqlite_utils.Database(conn)["records"]
            began = time.perf_counter()
            for record in dicts:
                table.insert(record)
            took = time.perf_counter() - began
            conn.close()
            return took / count * 1e6

        results.append((f"sqlite-utils {importlib.metadata.version('sqlite-utils')}",
                        statistics.median(utils_run() for _ in range(repeats)),
                        ", ".join(_requires("sqlite-utils"))))
    for name, micros, requires in results:
        print(f"  {name:<20} {micros:7.1f} us per insert  runtime dependencies: {requires}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._library_choices")
    parser.add_argument("--codes", type=int, default=50)
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    texts = ["SC1:" + "".join(rng.choice(BASE45) for _ in range(rng.randint(150, 300)))
             for _ in range(args.codes)]
    print(time.strftime("measured %Y-%m-%d %H:%M UTC", time.gmtime()), f"on {os.cpu_count()} CPUs")
    qr(texts, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        journal(args.records, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
