"""The denylist's base file: sorted fixed-width records read in place, never loaded.

Why a file of its own and not SQLite or a dict: a province's list is ten million cards;
as Python objects that is gigabytes and a garbage-collector walk, and as SQLite rows a
B-tree twice the size of the data. Here every entry is 20 bytes on disk and nothing in
RAM but a fence (one 64-bit key per 128 entries) and a small filter (one byte per
entry), so the resident memory is a few bytes an entry and opening the file reads those
two, never the entries (docs/denylist-format.md has the layout, byte by byte).

Keys. A ``card_ref`` is the base32 text of 15 bytes of SHA-256 (``models.card_ref``), so
the key is those 15 bytes: already uniformly spread (no second hash), and the whole
reference, so a match is exact: no card is ever refused for a collision, none missed.
References in another form (hand-made, legacy) are kept apart by the caller
(:func:`key_of` answers None for them).

Record: ``key[15] | status u8 | until u32 big-endian`` where ``until`` counts days since
1970-01-01 (0: no end) and ``status`` is :data:`STATUS_CODES`. Records are sorted by key
(byte order: big-endian, so bytes compare as the numbers do), strictly ascending. The
central sends snapshots in exactly this form (docs/central-protocol.md), so a verified
chunk is written as it came.

Lookups the filter does not answer read one block of about 2.5 KB through ``mmap``,
then hand the touched pages back with ``madvise(MADV_DONTNEED)``. Why both: ``os.pread``
releases the GIL, and a busy sibling thread that takes it keeps it for the whole 5 ms
switch interval, so a tap would wait 5 ms (measured: p99 of present lookups 5.2 ms with
``pread`` beside a busy thread, 10-20 us with ``mmap``); a page fault does not release
it. But every page an ``mmap`` touches counts in the process's resident memory, and
random lookups would touch them all (the kernel maps 64 KB around each fault), so each
lookup drops its 64 KB window again: the file's pages stay in the kernel's page cache,
shared and reclaimable, not in this process. Bulk reads (compaction, verification) use
``pread``: there the GIL is better given away.
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import math
import mmap
import operator
import os
import re
import struct
import sys
import threading
import time
import weakref
from array import array
from collections.abc import Iterator
from datetime import UTC, date, datetime
from itertools import islice
from pathlib import Path

from ..central.models import CardStatus, parse_until
from ..errors import DenylistError

__all__ = [
    "FORMAT_VERSION",
    "KEY_BYTES",
    "RECORD_BYTES",
    "STATUS_CODES",
    "BaseFile",
    "BaseWriter",
    "Pacer",
    "day_of",
    "fsync_directory",
    "key_of",
    "lapsed",
    "record",
    "ref_of",
    "status_of",
    "until_text",
]

MAGIC = b"SSDLBASE"
FORMAT_VERSION = 1
KEY_BYTES = 15
RECORD_BYTES = 20
FENCE_STRIDE = 128
"""Entries per fence key: a lookup reads one block of 128 x 20 = 2,560 bytes."""
FILTER_BITS_PER_ENTRY = 8
"""Two probes into 8 bits an entry: about 5 % of absent cards read a block."""
RECORDS_OFFSET = 4096
_HEADER = struct.Struct("<8sHHIQQQQQQII32s")
_DIGEST = struct.Struct("<32s")
_PREFIX = struct.Struct(">Q12x")      # the key's top 64 bits: the fence and the sort order
_LOW = struct.Struct(">7xQ5x")        # the key's low 64 bits: the filter's two probes
_M32 = 0xFFFFFFFF

STATUS_CODES: dict[CardStatus, int] = {
    CardStatus.TEMPORARY_LOSS: 1,
    CardStatus.FORMAL_LOSS: 2,
    CardStatus.REPLACED: 3,
    CardStatus.RENEWED: 4,
    CardStatus.CANCELLED: 5,
    CardStatus.EXPIRED: 6,
    CardStatus.SUSPENDED: 7,
    CardStatus.UNKNOWN: 8,
    CardStatus.NORMAL: 9,
}
"""Status byte of a record; fixed by the format (0 marks a removal in a delta)."""
_STATUS_BY_CODE = {code: status for status, code in STATUS_CODES.items()}
_MAX_CODE = max(_STATUS_BY_CODE)
REMOVED = 0

_CANONICAL = re.compile(r"[a-z2-7]{24}\Z")
_TO_DIGITS = str.maketrans("abcdefghijklmnopqrstuvwxyz234567", "0123456789abcdefghijklmnopqrstuv")
_EPOCH = date(1970, 1, 1).toordinal()


def key_of(card_ref: str) -> bytes | None:
    """The 15-byte key of a canonical ``card_ref`` (24 lowercase base32 characters);
    None for any other text, which no key could stand for exactly."""
    if len(card_ref) != 24 or _CANONICAL.match(card_ref) is None:
        return None
    # int() in base 32 once the RFC 4648 alphabet is mapped onto its digits: a C call
    # where base64.b32decode is a Python loop.
    return int(card_ref.translate(_TO_DIGITS), 32).to_bytes(KEY_BYTES, "big")


def ref_of(key: bytes) -> str:
    """Inverse of :func:`key_of`."""
    return base64.b32encode(key).decode("ascii").lower()


_FIRST_INSTANT = 1 << 24
"""Stored ``until`` values from here up are Unix seconds of the lapse instant; below, day
numbers (days since 1970-01-01, the last day the entry holds). No day number reaches
2**24 (year 47,900) and no instant after 1970-07 falls below it, so one field holds both."""


def day_of(until: str | None) -> int:
    """``until`` as the record stores it: 0 for none; the lapse instant in Unix seconds
    (rounded up: never early) for an RFC 3339 time with its zone; else the last day as a
    day number (an older central, or an end set by date).

    An end that does not read as either is stored as no end: the entry keeps refusing
    (the safe side) until the central removes it.
    """
    if until is None:
        return 0
    try:
        end = parse_until(until)
    except ValueError:
        return 0
    if isinstance(end, datetime):
        return max(math.ceil(end.timestamp()), _FIRST_INSTANT)
    return max(end.toordinal() - _EPOCH, 1)


def until_text(day: int) -> str | None:
    if day == 0:
        return None
    if day >= _FIRST_INSTANT:
        return datetime.fromtimestamp(day, tz=UTC).isoformat()
    return date.fromordinal(day + _EPOCH).isoformat()


def today_day(today: date) -> int:
    return today.toordinal() - _EPOCH


def lapsed(until: int, now: datetime, today: date) -> bool:
    """Whether a stored ``until`` has passed: at its instant, to the second, or (a day
    number) once its last day is over in the terminal's local calendar."""
    if until == 0:
        return False
    if until >= _FIRST_INSTANT:
        return now.timestamp() >= until
    return today_day(today) > until


def record(key: bytes, status: CardStatus | None, until_day: int) -> bytes:
    """One 20-byte record (``status`` None: a removal, only in a delta)."""
    code = REMOVED if status is None else STATUS_CODES[status]
    return key + bytes((code,)) + until_day.to_bytes(4, "big")


def status_of(code: int) -> CardStatus:
    return _STATUS_BY_CODE[code]


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where directories cannot
    be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_at(fd: int, size: int, offset: int) -> bytes:
    if size <= 0:
        return b""
    data = os.pread(fd, size, offset) if _HAS_PREAD else _seek_read(fd, size, offset)
    if len(data) != size:
        raise OSError(f"short read: {len(data)} of {size} bytes at {offset}")
    return data


def _readinto_at(fd: int, buffer: bytearray, offset: int) -> int:
    if hasattr(os, "preadv"):
        return os.preadv(fd, [buffer], offset)
    data = _read_at(fd, len(buffer), offset)
    buffer[:] = data
    return len(data)


_HAS_PREAD = hasattr(os, "pread")
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)
_WINDOW = 256 * 1024
"""Around a page fault the kernel maps more than the page (64 KB of fault-around, and
whole large folios of the page cache: measured here, 64 KB windows left 4 MB mapped
after 20,000 lookups, 256 KB windows none); dropped whole."""
_SWEEP = 4096
"""Every this many reads the whole mapping is dropped too, whatever a kernel maps."""
_SEEK_LOCK = threading.Lock()


def _seek_read(fd: int, size: int, offset: int) -> bytes:
    """Where there is no ``pread`` (Windows): seek and read under one lock."""
    with _SEEK_LOCK:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)


class Pacer:
    """Makes a long Python loop hand the interpreter to other threads every ``slice_s``.

    CPython lets a busy thread keep the GIL for 5 ms before a waiting one gets it; a tap
    that waits behind an install would wait that long. Sleeping briefly every slice
    hands it over at once (a zero sleep does not: the sleeper usually takes it back).
    """

    def __init__(self, slice_s: float = 0.001) -> None:
        self._slice = slice_s
        self._next = time.perf_counter() + slice_s

    def tick(self) -> None:
        now = time.perf_counter()
        if now >= self._next:
            time.sleep(0.00005)
            self._next = time.perf_counter() + self._slice


class _Filter:
    """A two-probe Bloom filter over the keys' low 64 bits (a SHA-256 output, so its two
    32-bit halves are independent hashes already)."""

    __slots__ = ("bits", "size")

    def __init__(self, bits: bytearray) -> None:
        self.bits = bits
        self.size = len(bits) * 8

    @classmethod
    def for_entries(cls, entries: int) -> _Filter:
        return cls(bytearray(max(8, entries * FILTER_BITS_PER_ENTRY // 8)))

    def add_records(self, records: bytes, pacer: Pacer | None = None) -> None:
        bits, size = self.bits, self.size
        for n, (low,) in enumerate(_LOW.iter_unpack(records)):
            p = (low & _M32) % size
            bits[p >> 3] |= 1 << (p & 7)
            p = (low >> 32) % size
            bits[p >> 3] |= 1 << (p & 7)
            if pacer is not None and not n & 1023:
                pacer.tick()

    def may_hold(self, low: int) -> bool:
        bits, size = self.bits, self.size
        p = (low & _M32) % size
        if not bits[p >> 3] >> (p & 7) & 1:
            return False
        p = (low >> 32) % size
        return bool(bits[p >> 3] >> (p & 7) & 1)


def _fence_from_bytes(data: bytes) -> array[int]:
    fence = array("Q")
    fence.frombytes(data)
    if sys.byteorder == "big":
        fence.byteswap()
    return fence


def _fence_bytes(fence: array[int]) -> bytes:
    if sys.byteorder == "big":
        swapped = array("Q", fence)
        swapped.byteswap()
        return swapped.tobytes()
    return fence.tobytes()


class BaseFile:
    """One base file, open for lookups from any thread. Immutable once written.

    The file descriptor closes when the object is dropped (or :meth:`close`), so a lookup
    still holding an old base after a switch reads on safely.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError as exc:
            raise DenylistError(f"{path}: cannot open the denylist base file: {exc}") from exc
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)
        try:
            self._size = os.fstat(fd).st_size
            self._reads = 0
            self._read_index(self._size)
            self._mm = mmap.mmap(fd, 0, access=mmap.ACCESS_READ)
        except (OSError, ValueError, struct.error) as exc:
            self.close()
            raise DenylistError(f"{path}: damaged denylist base file: {exc}") from exc
        except DenylistError:
            self.close()
            raise

    def _read_index(self, file_size: int) -> None:
        head = _read_at(self._fd, _HEADER.size + _DIGEST.size, 0)
        (magic, version, record_bytes, stride, count, list_version, records_offset,
         fence_offset, filter_offset, filter_bytes, _hashes, _reserved,
         records_digest) = _HEADER.unpack_from(head)
        if magic != MAGIC:
            raise DenylistError(f"{self.path}: not a denylist base file")
        if version != FORMAT_VERSION or record_bytes != RECORD_BYTES:
            raise DenylistError(f"{self.path}: denylist base format {version} "
                                f"({record_bytes}-byte records) is not {FORMAT_VERSION}")
        fence_count = -(-count // stride) if stride else -1
        if (stride != FENCE_STRIDE or records_offset != RECORDS_OFFSET
                or fence_offset != records_offset + count * record_bytes
                or filter_offset != fence_offset + fence_count * 8
                or file_size != filter_offset + filter_bytes or filter_bytes < 8):
            raise ValueError("sizes in the header do not match the file")
        fence = _read_at(self._fd, fence_count * 8, fence_offset)
        bits = bytearray(filter_bytes)          # read in place: no second copy
        if _readinto_at(self._fd, bits, filter_offset) != filter_bytes:
            raise ValueError("the filter is cut short")
        (expected,) = _DIGEST.unpack_from(head, _HEADER.size)
        digest = hashlib.sha256(head[:_HEADER.size])
        digest.update(fence)
        digest.update(bits)
        if digest.digest() != expected:
            raise ValueError("header, fence or filter does not match its digest")
        self.count = count
        self.list_version = list_version
        self.records_digest = records_digest
        self.fence = _fence_from_bytes(fence)
        self.filter = _Filter(bits)

    def close(self) -> None:
        mm = getattr(self, "_mm", None)
        if mm is not None:
            mm.close()
        self._finalizer()

    # --- reading -----------------------------------------------------------------------

    def get(self, key: bytes, number: int) -> bytes | None:
        """The 5 bytes after ``key`` (status, until) when the file holds it; ``number``
        is ``int.from_bytes(key, "big")``."""
        if not self.filter.may_hold(number & 0xFFFFFFFFFFFFFFFF):
            return None
        first, last = self._block(number >> 56)
        if first == last:
            return None
        mm = self._mm
        lo = RECORDS_OFFSET + first * RECORD_BYTES
        hi = RECORDS_OFFSET + last * RECORD_BYTES
        try:
            at = mm.find(key, lo, hi)
            while at >= 0 and (at - RECORDS_OFFSET) % RECORD_BYTES:
                at = mm.find(key, at + 1, hi)   # inside another record: not a match
            return None if at < 0 else mm[at + KEY_BYTES:at + RECORD_BYTES]
        finally:
            self._drop(lo, hi)

    def _drop(self, lo: int, hi: int) -> None:
        """Unmap the pages a read touched (they stay in the page cache)."""
        if _DONTNEED is None:
            return
        self._reads += 1
        if self._reads % _SWEEP == 0:
            self._mm.madvise(_DONTNEED)
            return
        start = lo & -_WINDOW
        self._mm.madvise(_DONTNEED, start, min(hi + _WINDOW - 1 & -_WINDOW, self._size) - start)

    def _block(self, prefix: int) -> tuple[int, int]:
        """The records that could hold a key with this top 64 bits, ``[first, last)``:
        normally one block; more only where equal prefixes straddle a block edge."""
        fence = self.fence
        end = bisect.bisect_right(fence, prefix)
        if end == 0:
            return 0, 0
        start = end - 1
        if fence[start] == prefix:
            start = max(bisect.bisect_left(fence, prefix) - 1, 0)
        return start * FENCE_STRIDE, min(end * FENCE_STRIDE, self.count)

    def position(self, key: bytes) -> tuple[int, bool]:
        """Index of the first record not below ``key``, and whether it is ``key``."""
        first, last = self._block(int.from_bytes(key[:8], "big"))
        if first == last:
            return 0, False
        block = _read_at(self._fd, (last - first) * RECORD_BYTES,
                         RECORDS_OFFSET + first * RECORD_BYTES)
        width = last - first
        at = bisect.bisect_left(range(width), key,
                                key=lambda i: block[i * RECORD_BYTES:i * RECORD_BYTES + KEY_BYTES])
        found = at < width and block[at * RECORD_BYTES:at * RECORD_BYTES + KEY_BYTES] == key
        return first + at, found

    def records(self, start: int, stop: int, piece: int = 65536) -> Iterator[bytes]:
        """Records ``[start, stop)`` in pieces of at most ``piece`` records."""
        while start < stop:
            n = min(piece, stop - start)
            yield _read_at(self._fd, n * RECORD_BYTES, RECORDS_OFFSET + start * RECORD_BYTES)
            start += n

    def verify(self) -> bool:
        """Read every record and compare with the digest in the header (slow: a check
        for tests and technicians, never on the open path)."""
        sha = hashlib.sha256()
        for piece in self.records(0, self.count):
            sha.update(piece)
        return bool(sha.digest() == self.records_digest)


class BaseWriter:
    """Writes a new base file beside the list, then puts it in place atomically.

    Records arrive in pieces (a verified chunk from the central, a merged range);
    each piece is checked before a byte of it is written: whole records, known status
    codes, keys strictly ascending across pieces. :meth:`finish` refuses a count other
    than the one announced, fsyncs, renames the temporary file to its final name and
    fsyncs the directory, so the final name only ever names a complete file.
    """

    def __init__(self, final: Path, *, list_version: int, count: int,
                 inherit_filter: bytearray | None = None, pacer: Pacer | None = None,
                 tmp: Path | None = None, resume: bool = False) -> None:
        self.final = final
        self.tmp = tmp or final.with_name(final.name + ".tmp")
        self._expected = count
        self._list_version = list_version
        self._pacer = pacer
        self._count = 0
        self._last = b""
        self._sha = hashlib.sha256()
        self._fence = array("Q")
        if inherit_filter is not None:
            self._filter = _Filter(bytearray(inherit_filter))
            self._inherited = True
        else:
            self._filter = _Filter.for_entries(count)
            self._inherited = False
        self._resumable = 0
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.tmp, flags if resume else flags | os.O_TRUNC, 0o600)
        try:
            size = os.fstat(self._fd).st_size
            if resume and size >= RECORDS_OFFSET:
                self._resumable = (size - RECORDS_OFFSET) // RECORD_BYTES
                os.lseek(self._fd, RECORDS_OFFSET, os.SEEK_SET)
            else:
                os.ftruncate(self._fd, 0)
                self._write(b"\0" * RECORDS_OFFSET)
        except OSError:
            self.abort()
            raise

    @property
    def resumable(self) -> int:
        """Records a resumed file already holds (unchecked: :meth:`replay` checks them)."""
        return self._resumable

    def replay(self, records: int) -> bytes:
        """Read back the next ``records`` already on disk and take them in as if just
        added (checked again, never trusted); returns them so the caller can compare
        them with what the central signed. Past what :meth:`replay` took, the file is
        cut off at :meth:`truncate_rest`."""
        start = self._count
        if start + records > self._resumable:
            raise DenylistError("denylist download: less on disk than asked to replay")
        data = _read_at(self._fd, records * RECORD_BYTES, RECORDS_OFFSET + start * RECORD_BYTES)
        self.add(data, write=False)
        return data

    def truncate_rest(self) -> None:
        """Forget what is on disk past the replayed records (a chunk cut short)."""
        end = RECORDS_OFFSET + self._count * RECORD_BYTES
        os.ftruncate(self._fd, end)
        os.lseek(self._fd, end, os.SEEK_SET)
        self._resumable = self._count

    @property
    def count(self) -> int:
        return self._count

    def add(self, records: bytes, *, trusted: bool = False, write: bool = True) -> None:
        """Append records. ``trusted``: they come from a base file already checked and
        the filter was inherited, so only the fence and the digest see them."""
        if len(records) % RECORD_BYTES:
            raise DenylistError(f"denylist records: {len(records)} bytes is not a whole "
                                f"number of {RECORD_BYTES}-byte records")
        n = len(records) // RECORD_BYTES
        if n == 0:
            return
        if self._count + n > self._expected:
            raise DenylistError(f"denylist records: more than the {self._expected} announced")
        if not trusted:
            self._check(records)
        elif records[:KEY_BYTES] <= self._last:
            raise DenylistError("denylist records: merged keys out of order")
        if not trusted or not self._inherited:
            self._filter.add_records(records, self._pacer)
        offset = -self._count % FENCE_STRIDE
        self._fence.extend(_PREFIX.unpack_from(records, i * RECORD_BYTES)[0]
                           for i in range(offset, n, FENCE_STRIDE))
        self._last = records[-RECORD_BYTES:-RECORD_BYTES + KEY_BYTES]
        self._count += n
        self._sha.update(records)
        if write:
            self._write(records)

    def _check(self, records: bytes) -> None:
        codes = records[KEY_BYTES::RECORD_BYTES]
        if min(codes) < 1 or max(codes) > _MAX_CODE:
            raise DenylistError("denylist records: unknown status code")
        if records[:KEY_BYTES] <= self._last:
            raise DenylistError("denylist records: keys not strictly ascending")
        prefixes = array("Q", map(operator.itemgetter(0), _PREFIX.iter_unpack(records)))
        if all(map(operator.lt, prefixes, islice(prefixes, 1, None))):
            return
        # Equal 64-bit prefixes (rare but legal): compare the whole keys there.
        for i in range(len(prefixes) - 1):
            if prefixes[i] > prefixes[i + 1] or (
                    prefixes[i] == prefixes[i + 1]
                    and records[i * RECORD_BYTES:i * RECORD_BYTES + KEY_BYTES]
                    >= records[(i + 1) * RECORD_BYTES:(i + 1) * RECORD_BYTES + KEY_BYTES]):
                raise DenylistError("denylist records: keys not strictly ascending")

    def add_key_bits(self, records: bytes) -> None:
        """Put keys into an inherited filter (records merged in from a delta)."""
        self._filter.add_records(records)

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def finish(self) -> Path:
        if self._count != self._expected:
            raise DenylistError(f"denylist records: {self._count} received, "
                                f"{self._expected} announced")
        fence = _fence_bytes(self._fence)
        bits = memoryview(self._filter.bits)
        fence_offset = RECORDS_OFFSET + self._count * RECORD_BYTES
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, RECORD_BYTES, FENCE_STRIDE, self._count,
                              self._list_version, RECORDS_OFFSET, fence_offset,
                              fence_offset + len(fence), len(bits), 2, 0,
                              self._sha.digest())
        digest = hashlib.sha256(header)
        digest.update(fence)
        digest.update(bits)
        try:
            self._write(fence)
            self._write(bits)
            bits.release()
            self._filter = _Filter(bytearray(8))     # the reader loads its own copy
            os.lseek(self._fd, 0, os.SEEK_SET)
            self._write(header + digest.digest())
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1
            os.replace(self.tmp, self.final)
            fsync_directory(self.final.parent)
        except OSError:
            self.abort()
            raise
        return self.final

    def detach(self) -> None:
        """Close the unfinished file but keep it, to resume a download later."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def abort(self) -> None:
        """Drop the unfinished file (safe to call twice)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        try:
            self.tmp.unlink()
        except OSError:
            pass
