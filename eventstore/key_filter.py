"""A Bloom filter over the keys in the SQLite dedup runs, kept in memory and on disk.

Nearly every appended event is new, and proving a key absent from the runs in
SQL costs B-tree probes that leave the page cache on a large log (bench/append
measured 0.58x the empty-log rate at 10M with them). The filter answers
"certainly not there" from memory; only its few false positives and true
duplicates still go to SQL. It is only ever a shortcut: it
is consulted only while it covers every indexed position, so a key it was not
told about makes it say "maybe", never "no" wrongly.

It is saved beside the database (`<file>-keyfilter`, written to a temporary
file and renamed over the old one, so a crash leaves the old copy or the new),
at close and every so often between, so opening a large log reads tens of MB
instead of scanning every key (seconds at 10M). A copy is used only when it
belongs to this very log (its `log_id`, and the key at the last position it
covers, match) and covers no more than is indexed; anything else is ignored
and rebuilt from the runs in a background thread.

False positives matter per append *group*, not per key: one among a group's
hundreds of keys sends the whole group to SQL, and on a large log those probes
leave the page cache (about 55 us each at 10M keys, one per run). Two probes
at 16 bits a key (1.4% at capacity) sent nearly every group to SQL at 10M
(3.5 us an event); four probes at 32 bits a key give 0.02% at capacity, so a
group of 400 goes to SQL less than one time in ten.

Memory: 32 bits a key, rounded up to a power of two, and sized for twice the
keys it holds when built (10M keys: 128 MB; the most is 512 MB).
"""

from __future__ import annotations

import os
import sqlite3
import struct
import threading
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from eventstore.dedup_runs import read_hashes

__all__ = ["FilterBuilder", "KeyFilter", "filter_path", "load_filter", "save_filter"]

_U64 = 0xFFFFFFFFFFFFFFFF
BITS_PER_KEY = 32
"""With four probes: 0.019% false positives at full capacity, 0.0014% half full.
Probing a key that is absent mostly stops at the first clear bit, so checking
costs about what two probes did; adding a key costs two more bit sets."""
MIN_BITS_LOG2 = 24
MAX_BITS_LOG2 = 32


class KeyFilter:
    """Four probes into a bitmap of 2**k bits: a + i*b for i in 0..3, where a and b
    come from the two halves of the key hash (double hashing: as good as four
    independent hashes for a Bloom filter, Kirsch and Mitzenmacher 2006)."""

    def __init__(self, capacity: int, bits: bytearray | None = None) -> None:
        bits_log2 = MIN_BITS_LOG2
        while (1 << bits_log2) < capacity * BITS_PER_KEY and bits_log2 < MAX_BITS_LOG2:
            bits_log2 += 1
        self.bits_log2 = bits_log2
        self.mask = (1 << bits_log2) - 1
        self.capacity = (1 << bits_log2) // BITS_PER_KEY
        if bits is not None and len(bits) != 1 << (bits_log2 - 3):
            raise ValueError("bitmap size does not match the capacity")
        self.bits = bits if bits is not None else bytearray(1 << (bits_log2 - 3))
        self.count = 0
        self.covered_upto = -1
        """Every key at a position <= this has been added; -1: not built yet."""

    def add(self, digest: int) -> None:
        self.add_all((digest,))

    def add_all(self, digests: Iterable[int]) -> None:
        bits, mask = self.bits, self.mask
        added = 0
        for digest in digests:
            unsigned = digest & _U64
            at, step = unsigned & mask, (unsigned >> 32) | 1
            bits[at >> 3] |= 1 << (at & 7)
            at = (at + step) & mask
            bits[at >> 3] |= 1 << (at & 7)
            at = (at + step) & mask
            bits[at >> 3] |= 1 << (at & 7)
            at = (at + step) & mask
            bits[at >> 3] |= 1 << (at & 7)
            added += 1
        self.count += added

    def might_contain(self, digest: int) -> bool:
        unsigned = digest & _U64
        mask, bits = self.mask, self.bits
        at, step = unsigned & mask, (unsigned >> 32) | 1
        if not bits[at >> 3] & (1 << (at & 7)):
            return False
        at = (at + step) & mask
        if not bits[at >> 3] & (1 << (at & 7)):
            return False
        at = (at + step) & mask
        if not bits[at >> 3] & (1 << (at & 7)):
            return False
        at = (at + step) & mask
        return bool(bits[at >> 3] & (1 << (at & 7)))

    @property
    def full(self) -> bool:
        return self.count > self.capacity


class FilterBuilder:
    """Builds a filter from the dedup runs in a background thread of its own.

    One read transaction gives a consistent snapshot: `indexed_upto` and the
    live runs change together (a flush becomes live in the transaction that
    moves `indexed_upto`; a merge swaps runs without changing the keys), so the
    filter covers exactly the positions up to the `indexed_upto` it read.
    """

    def __init__(self, path: str, capacity: int) -> None:
        self.path = path
        self.filter = KeyFilter(capacity)
        self.done = threading.Event()
        self.error: BaseException | None = None
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name="playerlog-keyfilter", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=30)
            try:
                conn.execute("BEGIN")
                row = conn.execute(
                    "SELECT value FROM log_meta WHERE name = 'indexed_upto'"
                ).fetchone()
                upto = int(row[0]) if row else 0
                live = conn.execute("SELECT id FROM dedup_runs WHERE state = 'live'").fetchall()
                for (run,) in live:
                    for block in read_hashes(conn, run):
                        if self._cancelled.is_set():
                            raise InterruptedError("key filter build cancelled")
                        self.filter.add_all(block)
                conn.rollback()
            finally:
                conn.close()
            self.filter.covered_upto = upto
        except BaseException as error:  # noqa: BLE001  (a failed build only means no shortcut)
            self.error = error
        finally:
            self.done.set()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def cancel(self) -> None:
        """Stop early (the log is closing) and wait for the thread."""
        self._cancelled.set()
        self._thread.join()


# -- on disk ------------------------------------------------------------------------

_MAGIC = b"playerlog-keyfilter-2\n"
"""Version 2: four probes (a version-1 copy, two probes, is ignored and rebuilt)."""
_HEADER = struct.Struct("<qIQqqI")
"""log_id, bits_log2, count, covered_upto, key_hash at covered_upto, crc32 of the bits."""


def filter_path(database: str) -> Path:
    return Path(f"{database}-keyfilter")


def save_filter(database: str, key_filter: KeyFilter, log_id: int, anchor: int) -> None:
    """Write the filter beside the database: a temporary file renamed over the old.

    Not fsynced: the copy is derived data, and a torn one fails its checksum and
    is rebuilt from the runs.
    """
    bits = bytes(key_filter.bits)
    header = _HEADER.pack(
        log_id,
        key_filter.bits_log2,
        key_filter.count,
        key_filter.covered_upto,
        anchor,
        zlib.crc32(bits),
    )
    target = filter_path(database)
    temporary = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with temporary.open("wb") as out:
        out.write(_MAGIC)
        out.write(header)
        out.write(bits)
    temporary.replace(target)


def load_filter(
    database: str, log_id: int, indexed_upto: int, key_at: Callable[[int], int | None]
) -> KeyFilter | None:
    """The saved filter, if it belongs to this log and is sound; else None.

    `key_at(position)` is the stored key hash at a position: the copy must
    agree with the log at the last position it covers (a copy from another
    history of the file, such as a restored backup, has another key there).
    """
    try:
        data = filter_path(database).read_bytes()
    except OSError:
        return None
    if not data.startswith(_MAGIC) or len(data) < len(_MAGIC) + _HEADER.size:
        return None
    saved_id, bits_log2, count, covered_upto, anchor, crc = _HEADER.unpack_from(data, len(_MAGIC))
    bits = bytearray(data[len(_MAGIC) + _HEADER.size :])
    if (
        saved_id != log_id
        or not MIN_BITS_LOG2 <= bits_log2 <= MAX_BITS_LOG2
        or len(bits) != 1 << (bits_log2 - 3)
        or covered_upto > indexed_upto
        or covered_upto < 0
        or (covered_upto > 0 and key_at(covered_upto) != anchor)
        or zlib.crc32(bits) != crc
    ):
        return None
    loaded = KeyFilter((1 << bits_log2) // BITS_PER_KEY, bits)
    loaded.count = count
    loaded.covered_upto = covered_upto
    return loaded
