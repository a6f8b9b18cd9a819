"""The embedded default backend: one SQLite file in WAL mode.

Built on the eventsourcing library's `SQLiteRecorder` and its connection pool
(used for reads), but owning its SQL. The library's application recorder keys
its table by (originator_id, originator_version) with a unique index on random
UUID text, inserts row by row, and fails a whole batch on one duplicate. A
unique index on random client ids costs SQLite most of its append rate (each
insert dirties a random index page, written again to the WAL at every commit),
so this backend lays the dedup key out differently:

* `events` is keyed by `position` only (INTEGER PRIMARY KEY: appends touch the
  right edge of one B-tree) and carries `key_hash`, an 8-byte hash of
  (tenant, environment, event_id). No index on it.
* Keys of the newest events, above `indexed_upto`, are held in memory by the
  writer (the "tail"), rebuilt from the log itself, so they cost nothing on disk.
* When the tail reaches `tail_limit`, its keys become a new immutable sorted
  run; runs of similar size are merged into one (dedup_runs.py), in slices,
  one short transaction each, at most `merge_levels` times per key. The dedup
  index is derived data: the log stays the truth.
* A Bloom filter over the runs' keys (key_filter.py), saved beside the file,
  proves nearly every new key absent without any SQL.

A lookup checks the tail, then (for filter hits) the runs; every hash hit is
confirmed against the stored key, so hash collisions cost a read, never a wrong
answer. All of it
runs inside `BEGIN IMMEDIATE`, which holds SQLite's single write lock across
processes: the writer that checks is the writer that inserts, so nothing can
slip in between, and positions (max + 1) are gap-free and in commit order.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from array import array
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from sys import intern
from typing import Any, Literal

import msgspec
from eventsourcing.sqlite import SQLiteDatastore, SQLiteRecorder

from eventstore import dedup_runs
from eventstore.backend import LogBackend
from eventstore.dedup import Key, decide
from eventstore.dedup_runs import Run
from eventstore.envelope import (
    NewEvent,
    RecordedEvent,
    from_utc_text,
    key_hash,
    to_utc_text,
)
from eventstore.idempotency import IdempotencyRecord
from eventstore.key_filter import FilterBuilder, KeyFilter, load_filter, save_filter
from eventstore.results import AppendResult
from eventstore.sqlite_schema import SQLITE_MIGRATIONS, SQLITE_STEPS, apply_sqlite_migrations

__all__ = ["SQLiteLog", "Synchronous"]

log = logging.getLogger(__name__)

Synchronous = Literal["FULL", "NORMAL", "OFF"]

DEFAULT_TAIL_LIMIT = 20_000
"""Keys held in memory before they become a run. Starting a flush sorts them in
one step (between append groups, holding the writer): at 100,000 that step took
100-200 ms under load and set the ingest p99; at 20,000 the longest upkeep step
is ~35 ms, and appends (calls of 50, 8 writers) ran no slower (102k vs 92k
ev/s, one run each). More, smaller runs are what the tiered merges are for."""
DEFAULT_MERGE_FAN_IN = 4
DEFAULT_MERGE_LEVELS = 3
"""Times a key is merged at most: runs stop growing at tail_limit x fan_in**3
(1.28M keys by default) and are never rewritten again. Unbounded tiers made the
writer's upkeep per append grow with the log (0.38-1.17x the empty-log rate at
10M, depending on whether a merge of 2.5M-key runs fell inside the
measurement); final runs instead add up (about 8 at 10M keys, 80 at 100M), which
only the key filter's rare false positives and true duplicates probe."""
DEFAULT_MERGE_SLICE = 20_000
FILTER_STEP = 25_000
"""Keys given to the key filter per upkeep step of a flush (15-30 ms measured)."""
FILTER_GROWTH = 2
"""A full filter is rebuilt for this many times its keys (then rounded up to a
power of two): rebuilds stay rare, as each scans every run."""

_COLUMNS = (
    "position, tenant, environment, source, type, event_id, subject, "
    "occurred_at, received_at, client_id, payload"
)


class _Tail:
    """Keys of the events above `indexed_upto`, by hash, in memory."""

    __slots__ = ("base", "by_hash", "head", "more")

    def __init__(self, base: int) -> None:
        self.base = base
        self.head = base
        self.by_hash: dict[int, int] = {}
        self.more: dict[int, list[int]] = {}  # a second position for a hash: rare

    def add(self, digest: int, position: int) -> None:
        first = self.by_hash.setdefault(digest, position)
        if first != position:
            self.more.setdefault(digest, []).append(position)

    def positions(self, digest: int) -> list[int]:
        first = self.by_hash.get(digest)
        if first is None:
            return []
        return [first, *self.more.get(digest, ())]

    def __len__(self) -> int:
        return self.head - self.base


class _Flush:
    """A tail flush in progress, in memory: its sorted keys, and how many of
    them the key filter has been given so far."""

    __slots__ = ("base", "filtered", "hashes", "head", "positions")

    def __init__(self, base: int, head: int, hashes: array[int], positions: array[int]) -> None:
        self.base = base
        self.head = head
        self.hashes = hashes
        self.positions = positions
        self.filtered = 0


class _Prepared:
    """An envelope made ready for the insert outside the write lock."""

    __slots__ = ("digest", "environment", "event_id", "payload", "row", "tenant")

    def __init__(  # noqa: PLR0917  (built once per event on the hot path)
        self,
        tenant: str,
        environment: str,
        event_id: str,
        payload: bytes,
        digest: int,
        row: tuple[Any, ...],
    ) -> None:
        self.tenant = tenant
        self.environment = environment
        self.event_id = event_id
        self.payload = payload
        self.digest = digest
        self.row = row


class SQLiteLog(SQLiteRecorder, LogBackend):
    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "FULL",
        tail_limit: int = DEFAULT_TAIL_LIMIT,
        merge_fan_in: int = DEFAULT_MERGE_FAN_IN,
        merge_slice: int = DEFAULT_MERGE_SLICE,
        merge_levels: int = DEFAULT_MERGE_LEVELS,
        busy_timeout_s: int = 30,
        cache_mib: int = 128,
        key_filter: bool = True,
    ) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.url = f"sqlite:///{path}"
        self.synchronous = synchronous
        self.tail_limit = tail_limit
        self.merge_fan_in = max(2, merge_fan_in)
        self.merge_slice = merge_slice
        self.merge_levels = max(1, merge_levels)
        self._cache_mib = cache_mib
        self._busy_timeout_s = busy_timeout_s
        super().__init__(
            SQLiteDatastore(path, lock_timeout=busy_timeout_s, pool_size=8, max_overflow=32)
        )
        # The writer's own connection: BEGIN IMMEDIATE, chosen pragmas, warm cache.
        self._conn = self._connect()
        self._write_lock = threading.Lock()
        self._tail: _Tail | None = None
        self._data_version = -1
        self._runs: list[Run] = []
        self._upkeep_due = False
        self._flushing: _Flush | None = None
        self._log_id = 0
        self.key_filter = key_filter
        self._filter: KeyFilter | None = None
        self._filter_loaded = False
        self._filter_saved_upto = 0
        self._builder: FilterBuilder | None = None
        self.run_lookups = 0
        """How many groups had to probe the dedup runs in SQL (tests and tuning)."""

    # -- connections -------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path,
            isolation_level=None,
            check_same_thread=False,
            timeout=self._busy_timeout_s,
            cached_statements=256,
        )
        self._enter_wal(conn)
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute(f"PRAGMA cache_size=-{self._cache_mib * 1024}")
        conn.execute("PRAGMA foreign_keys=OFF")
        return conn

    def _enter_wal(self, conn: sqlite3.Connection) -> None:
        """Switch to WAL, waiting like the busy timeout would.

        Changing the journal mode needs the database to itself and SQLite answers
        "database is locked" at once, without its busy handler, when several
        processes open a new file together (seen in CI: four processes starting).
        """
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)
            else:
                return

    @contextmanager
    def _immediate(self) -> Iterator[sqlite3.Cursor]:
        """A write transaction holding SQLite's write lock from its first statement."""
        with self._write_lock:
            cursor = self._conn.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                self._conn.rollback()
                self._tail = None  # memory may be ahead of the rolled-back state
                raise
            self._conn.commit()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Cursor]:
        with self.datastore.transaction(commit=False) as wrapped, wrapped as cursor:
            cursor.row_factory = None
            yield cursor

    def construct_create_table_statements(self) -> list[str]:
        return [
            statement
            for _, statements in SQLITE_MIGRATIONS
            for statement in statements
            if statement not in SQLITE_STEPS
        ]

    def migrate(self) -> None:
        with self._write_lock:
            apply_sqlite_migrations(self._conn)

    def create_table(self) -> None:
        self.migrate()

    def close(self) -> None:
        builder = self._builder
        if builder is not None:
            builder.cancel()
            if builder.error is None and (self._filter is None or self._filter.full):
                self._filter = builder.filter  # finished before the cancel: worth saving
        with self._write_lock:
            try:
                self._save_filter(force=True)
            finally:
                self._conn.close()
        self.datastore.close()

    # -- the dedup tail ----------------------------------------------------------

    @staticmethod
    def _meta(cursor: sqlite3.Cursor, name: str) -> int:
        row = cursor.execute("SELECT value FROM log_meta WHERE name = ?", (name,)).fetchone()
        return int(row[0]) if row else 0

    def _refresh_tail(self, cursor: sqlite3.Cursor) -> _Tail:
        """Bring the in-memory tail up to the log's head (others may have written).

        `PRAGMA data_version` changes only when another connection commits, so a
        process that is the only writer skips these queries entirely.
        """
        version = cursor.execute("PRAGMA data_version").fetchone()[0]
        tail = self._tail
        if tail is not None and version == self._data_version:
            return tail
        self._data_version = version
        indexed_upto = self._meta(cursor, "indexed_upto")
        self._log_id = self._meta(cursor, "log_id")
        self._runs = dedup_runs.load_runs(cursor)
        self._upkeep_due = self._upkeep_pending(self._runs)
        if tail is None or tail.base != indexed_upto:
            tail = self._tail = _Tail(indexed_upto)
        for digest, position in cursor.execute(
            "SELECT key_hash, position FROM events WHERE position > ? ORDER BY position",
            (tail.head,),
        ):
            tail.add(digest, position)
            tail.head = position
        return tail

    def _candidates(
        self, cursor: sqlite3.Cursor, tail: _Tail, digests: Sequence[int]
    ) -> dict[int, list[int]]:
        found: dict[int, list[int]] = {}
        for digest in digests:
            positions = tail.positions(digest)
            if positions:
                found[digest] = positions
        if not any(run.state == "live" for run in self._runs):
            return found
        key_filter = self._usable_filter(cursor, tail)
        if key_filter is None:
            wanted_digests = list(set(digests))
        else:
            might_contain = key_filter.might_contain
            wanted_digests = [d for d in set(digests) if might_contain(d)]
            if not wanted_digests:
                return found
        self.run_lookups += 1
        for digest, position in dedup_runs.lookup(cursor, self._runs, wanted_digests):
            found.setdefault(digest, []).append(position)
        return found

    def _usable_filter(self, cursor: sqlite3.Cursor, tail: _Tail) -> KeyFilter | None:
        """The key filter, if it covers every indexed position; else None (and a
        build is started when none runs)."""
        if not self.key_filter:
            return None
        builder = self._builder
        if builder is not None and builder.done.is_set():
            self._builder = None
            if builder.error is None:
                self._filter = builder.filter
        if not self._filter_loaded:
            # Once per open: the copy saved beside the file, if it is this log's.
            self._filter_loaded = True
            self._filter = load_filter(
                self.path, self._log_id, tail.base, lambda at: self._key_at(cursor, at)
            )
            if self._filter is not None:
                self._filter_saved_upto = self._filter.covered_upto
        current = self._filter
        if current is None or current.full:
            if self._builder is None:
                rows = sum(run.rows for run in self._runs if run.state == "live")
                capacity = max(1_000_000, FILTER_GROWTH * rows)
                self._builder = FilterBuilder(self.path, capacity=capacity)
            if current is None:
                return None
        if current.covered_upto < tail.base:
            # Positions indexed since the filter was built (by a build snapshot
            # that is a little old, or by another process's flush): a sequential
            # read of that position range.
            current.add_all(
                [
                    digest
                    for (digest,) in cursor.execute(
                        "SELECT key_hash FROM events WHERE position > ? AND position <= ?",
                        (current.covered_upto, tail.base),
                    )
                ]
            )
            current.covered_upto = tail.base
        return current

    @staticmethod
    def _key_at(cursor: sqlite3.Cursor, position: int) -> int | None:
        row = cursor.execute(
            "SELECT key_hash FROM events WHERE position = ?", (position,)
        ).fetchone()
        return None if row is None else int(row[0])

    def _save_filter(self, *, force: bool = False) -> None:
        """Save the filter beside the file when it covers enough new keys (or at close).

        Often enough that a crash leaves little to catch up from the log at the
        next open, rarely enough that the writes cost nothing measurable (a 10M-key
        filter is 32 MB).
        """
        current = self._filter
        if current is None or current.covered_upto <= self._filter_saved_upto:
            return
        every = max(self.tail_limit, current.capacity // 16)
        if not force and current.covered_upto - self._filter_saved_upto < every:
            return
        anchor = self._key_at(self._conn.cursor(), current.covered_upto) or 0
        try:
            save_filter(self.path, current, self._log_id, anchor)
        except OSError:
            log.warning("could not save the key filter beside %s", self.path, exc_info=True)
            return
        self._filter_saved_upto = current.covered_upto

    # -- writing -------------------------------------------------------------------

    def _prepare(self, envelopes: Sequence[NewEvent]) -> list[_Prepared]:
        """Hash keys, format timestamps and build row tuples, before taking the lock."""
        texts: dict[datetime, str] = {}  # a batch's timestamps often repeat
        prepared = []
        for e in envelopes:
            occurred = texts.get(e.occurred_at)
            if occurred is None:
                occurred = texts[e.occurred_at] = to_utc_text(e.occurred_at)
            received = texts.get(e.received_at)
            if received is None:
                received = texts[e.received_at] = to_utc_text(e.received_at)
            digest = key_hash(e.tenant, e.environment, e.event_id)
            prepared.append(
                _Prepared(
                    e.tenant,
                    e.environment,
                    e.event_id,
                    e.payload,
                    digest,
                    (
                        digest,
                        e.tenant,
                        e.environment,
                        e.source,
                        e.type,
                        e.event_id,
                        e.subject,
                        occurred,
                        received,
                        e.client_id,
                        e.payload,
                    ),
                )
            )
        return prepared

    def write(
        self,
        envelopes: Sequence[NewEvent],
        records: Sequence[IdempotencyRecord] = (),
    ) -> tuple[list[AppendResult], list[IdempotencyRecord]]:
        # Preparing in the callers' threads instead measured 10-15% slower: under
        # the GIL it overlaps nothing, and it moved work onto the event loop.
        prepared = self._prepare(envelopes)
        with self._immediate() as cursor:
            results = self._append(cursor, prepared) if prepared else []
            stored = [self._save_record(cursor, record) for record in records]
        return results, stored

    def _append(
        self, cursor: sqlite3.Cursor, prepared: Sequence[_Prepared]
    ) -> list[AppendResult]:
        tail = self._refresh_tail(cursor)
        digests = [p.digest for p in prepared]
        candidates = self._candidates(cursor, tail, digests)
        existing: dict[Key, tuple[int, bytes]] = {}
        if candidates:
            originals = self._load_originals(cursor, candidates)
            for found in candidates.values():
                for position in found:
                    stored_key, payload = originals[position]
                    existing.setdefault(stored_key, (position, payload))
        results, new = decide(prepared, existing, tail.head)
        if new:
            cursor.executemany(
                "INSERT INTO events (position, key_hash, tenant, environment, source, type, "
                "event_id, subject, occurred_at, received_at, client_id, payload) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [(position, *p.row) for position, p in new],
            )
            add = tail.add
            for position, p in new:
                add(p.digest, position)
            tail.head = new[-1][0]
        return results

    @staticmethod
    def _load_originals(
        cursor: sqlite3.Cursor, candidates: dict[int, list[int]]
    ) -> dict[int, tuple[tuple[str, str, str], bytes]]:
        positions = [p for found in candidates.values() for p in found]
        if not positions:
            return {}
        return {
            position: ((tenant, environment, event_id), payload)
            for position, tenant, environment, event_id, payload in cursor.execute(
                "SELECT position, tenant, environment, event_id, payload FROM events "
                "WHERE position IN (SELECT value FROM json_each(?))",
                (msgspec.json.encode(positions),),
            )
        }

    @staticmethod
    def _save_record(cursor: sqlite3.Cursor, record: IdempotencyRecord) -> IdempotencyRecord:
        row = cursor.execute(
            "SELECT fingerprint, status_code, content_type, body, created_at, expires_at "
            "FROM idempotency_keys WHERE tenant = ? AND environment = ? AND key = ?",
            (record.tenant, record.environment, record.key),
        ).fetchone()
        if row is not None and row[5] > record.created_at:
            return IdempotencyRecord(record.tenant, record.environment, record.key, *row)
        cursor.execute(
            "INSERT OR REPLACE INTO idempotency_keys (tenant, environment, key, fingerprint, "
            "status_code, content_type, body, created_at, expires_at) "
            "VALUES (?,?,?,?,?,?,?,?,?)",
            (
                record.tenant,
                record.environment,
                record.key,
                record.fingerprint,
                record.status_code,
                record.content_type,
                record.body,
                record.created_at,
                record.expires_at,
            ),
        )
        return record

    # -- upkeep of the dedup index ----------------------------------------------------

    def maintenance_due(self) -> bool:
        tail = self._tail
        return (
            self._flushing is not None
            or (tail is not None and len(tail) >= self.tail_limit)
            or self._upkeep_due
        )

    def maintain(self) -> None:
        """One step of upkeep of the dedup runs: of a flush, or one slice of a merge.

        Flushes first: the tail is memory, and its size is what `tail_limit` bounds.
        """
        with self._immediate() as cursor:
            tail = self._refresh_tail(cursor)
            flushing = self._flushing
            if flushing is not None and flushing.base != tail.base:
                flushing = self._flushing = None  # another process indexed these keys
            if flushing is None and len(tail) >= self.tail_limit:
                self._flushing = self._start_flush(tail)
            elif flushing is not None:
                self._flush_step(cursor, flushing)
            else:
                self._merge(cursor)
            self._runs = dedup_runs.load_runs(cursor)
            self._upkeep_due = self._upkeep_pending(self._runs)
        with self._write_lock:  # outside the transaction: a 10M-key filter is 32 MB
            self._save_filter()

    def _upkeep_pending(self, runs: Sequence[Run]) -> bool:
        return any(run.state == "merge" for run in runs) or bool(
            dedup_runs.pick_merge(runs, self.tail_limit, self.merge_fan_in, self.merge_levels)
        )

    def _start_flush(self, tail: _Tail) -> _Flush | None:
        """Take the tail's keys, sorted: the first step of a flush (C loops,
        tens of ms for 100k keys).

        The tail is checked to hold exactly one entry per position of its
        range; if it ever did not, it is rebuilt from the log instead.
        """
        hashes = array("q", tail.by_hash)
        positions = array("q", tail.by_hash.values())
        for digest, more in tail.more.items():
            hashes.extend([digest] * len(more))
            positions.extend(more)
        if len(hashes) != tail.head - tail.base:
            log.warning("dedup tail out of step with the log; rebuilding it")
            self._tail = None
            return None
        hashes, positions = dedup_runs.sort_entries(hashes, positions)
        return _Flush(tail.base, tail.head, hashes, positions)

    def _flush_step(self, cursor: sqlite3.Cursor, flushing: _Flush) -> None:
        """Give the key filter the next keys of the flush, or, once it has them
        all, write the run and move `indexed_upto` past it in one transaction.

        In steps between append groups, so appends wait tens of ms at most: done
        at once, a 100k-key flush (sort, filter, write) took 0.3 s on the loaded
        2-core machine, and the former sliced flush held appends for 100-250 ms
        when done in one transaction. A key given to the filter early is
        harmless: the filter may say "maybe" for more keys, never "no" wrongly.
        """
        key_filter = self._filter_for_flush(flushing)
        if key_filter is not None and flushing.filtered < len(flushing.hashes):
            upto = flushing.filtered + FILTER_STEP
            key_filter.add_all(flushing.hashes[flushing.filtered : upto])
            flushing.filtered = min(upto, len(flushing.hashes))
            return
        dedup_runs.write_new_run(cursor, flushing.hashes, flushing.positions)
        cursor.execute(
            "UPDATE log_meta SET value = ? WHERE name = 'indexed_upto'", (flushing.head,)
        )
        if key_filter is not None:
            key_filter.covered_upto = flushing.head
        self._flushing = None
        self._tail = None  # rebuilt from indexed_upto: only what came after the flush

    def _filter_for_flush(self, flushing: _Flush) -> KeyFilter | None:
        """The filter a flush must keep up to date: one covering every position
        below the flush."""
        if (
            self._filter is None
            and self.key_filter
            and flushing.base == 0
            and self._builder is None
        ):
            # A new log's first flush: the tail holds every key there is, so the
            # filter starts here instead of from a scan of the run just written.
            self._filter = KeyFilter(capacity=1_000_000)
            self._filter.covered_upto = 0
            self._filter_loaded = True
        current = self._filter
        if current is None or current.covered_upto < flushing.base:
            return None
        return current

    def _merge(self, cursor: sqlite3.Cursor) -> None:
        merging = next((r for r in self._runs if r.state == "merge"), None)
        if merging is None:
            sources = dedup_runs.pick_merge(
                self._runs, self.tail_limit, self.merge_fan_in, self.merge_levels
            )
            if not sources:
                return
            merging = dedup_runs.start_merge(cursor, sources)
        dedup_runs.merge_slice(cursor, merging, self.merge_slice)

    # -- reading ---------------------------------------------------------------------

    def read(
        self,
        after: int = 0,
        limit: int = 1000,
        *,
        tenant: str | None = None,
        environment: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        clauses = ["position > ?"]
        params: list[Any] = [after]
        if tenant is not None:
            clauses.append("tenant = ?")
            params.append(tenant)
        if environment is not None:
            clauses.append("environment = ?")
            params.append(environment)
        if types:
            clauses.append("type IN (SELECT value FROM json_each(?))")
            params.append(msgspec.json.encode(list(types)))
        params.append(limit)
        statement = (
            f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(clauses)} "  # noqa: S608
            "ORDER BY position LIMIT ?"
        )
        with self._reading() as cursor:
            rows = cursor.execute(statement, params).fetchall()
        # sqlite3 makes a new str for every value read: interned, the few tenants and
        # environments are one object each, shared by every key a projection's
        # buffer holds (~100 bytes less a key; ~0.1 us a read event)
        return [
            RecordedEvent(
                position,
                intern(tenant_),
                intern(environment_),
                source,
                type_,
                event_id,
                subject,
                from_utc_text(occurred_at),
                from_utc_text(received_at),
                client_id,
                payload,
            )
            for (
                position,
                tenant_,
                environment_,
                source,
                type_,
                event_id,
                subject,
                occurred_at,
                received_at,
                client_id,
                payload,
            ) in rows
        ]

    def head(self) -> int:
        with self._reading() as cursor:
            row = cursor.execute("SELECT max(position) FROM events").fetchone()
        return int(row[0] or 0)

    def get_idempotency(
        self, tenant: str, environment: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        with self._reading() as cursor:
            row = cursor.execute(
                "SELECT fingerprint, status_code, content_type, body, created_at, expires_at "
                "FROM idempotency_keys WHERE tenant = ? AND environment = ? AND key = ? "
                "AND expires_at > ?",
                (tenant, environment, key, now),
            ).fetchone()
        if row is None:
            return None
        return IdempotencyRecord(tenant, environment, key, *row)

    def put_record(self, kind: str, key: str, value: bytes, now: float) -> None:
        with self._immediate() as cursor:
            cursor.execute(
                "INSERT OR REPLACE INTO records (kind, key, value, updated_at) VALUES (?,?,?,?)",
                (kind, key, value, now),
            )

    def get_record(self, kind: str, key: str) -> bytes | None:
        with self._reading() as cursor:
            row = cursor.execute(
                "SELECT value FROM records WHERE kind = ? AND key = ?", (kind, key)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        with self._reading() as cursor:
            rows = cursor.execute(
                "SELECT key, value FROM records WHERE kind = ? ORDER BY key", (kind,)
            ).fetchall()
        return [(key, bytes(value)) for key, value in rows]

    def purge_idempotency(self, now: float) -> int:
        with self._immediate() as cursor:
            cursor.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
            return cursor.rowcount
