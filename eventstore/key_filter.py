"""An in-memory Bloom filter over the keys already in the SQLite dedup runs.

Nearly every appended event is new, and proving a key absent from `dedup_main`
and `dedup_delta` costs two B-tree probes; with 10M keys those probes leave the
page cache and cost most of an append (bench/append: 0.58x the empty-log rate).
The filter answers "certainly not there" from memory; only its few false
positives (and true duplicates) still go to SQL. It is only ever a shortcut:
a key it has not been told about makes it say "maybe", never "no" wrongly,
because it is consulted only while it covers every indexed position.

Off by default (`?key_filter=on` turns it on): it is built in a background
thread when the log opens, which with 10M keys takes seconds of CPU and slows
appends meanwhile (bench/append measured 0.27x of the empty-log rate right
after opening a 10M log, against 0.58x without it). A filter persisted beside
the runs would remove that start-up cost; until then it suits long-running
processes on large logs.
"""

from __future__ import annotations

import sqlite3
import threading

__all__ = ["KeyFilter"]

_U64 = 0xFFFFFFFFFFFFFFFF
BITS_PER_KEY = 16
"""With two probes this gives about 1.5% false positives at full capacity."""
MIN_BITS_LOG2 = 24
MAX_BITS_LOG2 = 32


class KeyFilter:
    """Two probes into a bitmap of 2**k bits, taken from the two halves of a key hash."""

    def __init__(self, capacity: int) -> None:
        bits_log2 = MIN_BITS_LOG2
        while (1 << bits_log2) < capacity * BITS_PER_KEY and bits_log2 < MAX_BITS_LOG2:
            bits_log2 += 1
        self.mask = (1 << bits_log2) - 1
        self.capacity = (1 << bits_log2) // BITS_PER_KEY
        self.bits = bytearray(1 << (bits_log2 - 3))
        self.count = 0
        self.covered_upto = -1
        """Every key at a position <= this has been added; -1: not built yet."""

    def add(self, digest: int) -> None:
        unsigned = digest & _U64
        first, second = unsigned & self.mask, (unsigned >> 32) & self.mask
        bits = self.bits
        bits[first >> 3] |= 1 << (first & 7)
        bits[second >> 3] |= 1 << (second & 7)
        self.count += 1

    def add_all(self, digests: list[int]) -> None:
        bits, mask = self.bits, self.mask
        for digest in digests:
            unsigned = digest & _U64
            first, second = unsigned & mask, (unsigned >> 32) & mask
            bits[first >> 3] |= 1 << (first & 7)
            bits[second >> 3] |= 1 << (second & 7)
        self.count += len(digests)

    def might_contain(self, digest: int) -> bool:
        unsigned = digest & _U64
        first, second = unsigned & self.mask, (unsigned >> 32) & self.mask
        bits = self.bits
        return bool(bits[first >> 3] & (1 << (first & 7))) and bool(
            bits[second >> 3] & (1 << (second & 7))
        )

    @property
    def full(self) -> bool:
        return self.count > self.capacity


class FilterBuilder:
    """Builds a filter from the dedup runs in a background thread of its own.

    One read transaction gives a consistent snapshot: `indexed_upto` and the
    runs change together (sqlite_log flushes them in one transaction), so the
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
                for table in ("dedup_main", "dedup_delta"):
                    cursor = conn.execute(f"SELECT key_hash FROM {table}")  # noqa: S608  (fixed names)
                    while chunk := cursor.fetchmany(20_000):
                        if self._cancelled.is_set():
                            raise InterruptedError("key filter build cancelled")
                        self.filter.add_all([digest for (digest,) in chunk])
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
