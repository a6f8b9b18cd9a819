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
* When the tail reaches `tail_limit`, its hashes are written to `dedup_delta`
  sorted (one sequential pass), and when the delta outgrows a share of
  `dedup_main`, it is merged into main in key-range slices, one short
  transaction each. The dedup index is derived data: the log stays the truth.

A lookup checks the tail, delta and main; every hash hit is confirmed against
the stored key, so hash collisions cost a read, never a wrong answer. All of it
runs inside `BEGIN IMMEDIATE`, which holds SQLite's single write lock across
processes: the writer that checks is the writer that inserts, so nothing can
slip in between, and positions (max + 1) are gap-free and in commit order.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import msgspec
from eventsourcing.sqlite import SQLiteDatastore, SQLiteRecorder

from eventstore.backend import LogBackend
from eventstore.dedup import Key, decide
from eventstore.envelope import (
    NewEvent,
    RecordedEvent,
    from_utc_text,
    key_hash,
    to_utc_text,
)
from eventstore.idempotency import IdempotencyRecord
from eventstore.key_filter import FilterBuilder, KeyFilter
from eventstore.results import AppendResult
from eventstore.sqlite_schema import SQLITE_MIGRATIONS, apply_sqlite_migrations

__all__ = ["SQLiteLog", "Synchronous"]

Synchronous = Literal["FULL", "NORMAL", "OFF"]

DEFAULT_TAIL_LIMIT = 100_000
DEFAULT_MERGE_MIN = 1_000_000
MERGE_SLICES = 16
FLUSH_SLICE = 8192
_HASH_MIN = -(2**63)
_HASH_SPAN = 2**64

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


class _Flush:
    """A tail flush in progress: positions (base, head], written slice by slice."""

    __slots__ = ("base", "done", "head")

    def __init__(self, tail: _Tail) -> None:
        self.base = tail.base
        self.head = tail.head
        self.done = tail.base
        """The last position already written to the delta."""


class SQLiteLog(SQLiteRecorder, LogBackend):
    def __init__(
        self,
        path: str,
        *,
        synchronous: Synchronous = "FULL",
        tail_limit: int = DEFAULT_TAIL_LIMIT,
        merge_min: int = DEFAULT_MERGE_MIN,
        busy_timeout_s: int = 30,
        cache_mib: int = 128,
        key_filter: bool = False,
        flush_slice: int = FLUSH_SLICE,
    ) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.url = f"sqlite:///{path}"
        self.synchronous = synchronous
        self.tail_limit = tail_limit
        self.merge_min = merge_min
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
        self._runs_empty = False
        self.key_filter = key_filter
        self.flush_slice = flush_slice
        self._filter: KeyFilter | None = None
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
        return [statement for _, statements in SQLITE_MIGRATIONS for statement in statements]

    def migrate(self) -> None:
        with self._write_lock:
            apply_sqlite_migrations(self._conn)

    def create_table(self) -> None:
        self.migrate()

    def close(self) -> None:
        if self._builder is not None:
            self._builder.cancel()
        with self._write_lock:
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
        self._runs_empty = (
            self._meta(cursor, "main_rows") == 0 and self._meta(cursor, "delta_rows") == 0
        )
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
        if self._runs_empty:
            return found
        key_filter = self._usable_filter(cursor, tail)
        if key_filter is None:
            wanted_digests = list(set(digests))
        else:
            wanted_digests = [d for d in set(digests) if key_filter.might_contain(d)]
            if not wanted_digests:
                return found
        self.run_lookups += 1
        wanted = msgspec.json.encode(wanted_digests)
        for digest, position in cursor.execute(
            "SELECT key_hash, position FROM dedup_main "
            "WHERE key_hash IN (SELECT value FROM json_each(?1)) "
            "UNION ALL SELECT key_hash, position FROM dedup_delta "
            "WHERE key_hash IN (SELECT value FROM json_each(?1))",
            (wanted,),
        ):
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
        current = self._filter
        if current is None or current.full:
            if self._builder is None:
                rows = self._meta(cursor, "main_rows") + self._meta(cursor, "delta_rows")
                self._builder = FilterBuilder(self.path, capacity=max(1_000_000, 2 * rows))
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
            or self._merge_due
        )

    _merge_due = False
    _flushing: _Flush | None = None

    def maintain(self) -> None:
        with self._immediate() as cursor:
            tail = self._refresh_tail(cursor)
            flushing = self._flushing
            if flushing is not None and flushing.base != tail.base:
                flushing = self._flushing = None  # another process indexed these keys
            if flushing is None and len(tail) >= self.tail_limit:
                flushing = self._flushing = _Flush(tail)
            if flushing is not None:
                self._flush_slice(cursor, flushing)
            elif self._merge_due:
                self._merge_slice(cursor)

    def _flush_slice(self, cursor: sqlite3.Cursor, flushing: _Flush) -> None:
        """Write the keys of the next `flush_slice` positions of the tail to the delta.

        One slice per transaction, so appends wait for a slice (milliseconds), never
        for the whole tail (a 100k-key flush held the lock for 100-250 ms and set
        the p99 latency). SQLite sorts each slice's keys itself (one statement,
        no Python loop). When the last slice is written, `indexed_upto` moves in
        that same transaction; a crash before then leaves keys in the delta that
        the next flush writes again (INSERT OR IGNORE), never a gap.
        """
        upto = min(flushing.done + self.flush_slice, flushing.head)
        cursor.execute(
            "INSERT OR IGNORE INTO dedup_delta (key_hash, position) "
            "SELECT key_hash, position FROM events WHERE position > ? AND position <= ? "
            "ORDER BY key_hash, position",
            (flushing.done, upto),
        )
        moved = cursor.rowcount
        flushing.done = upto
        cursor.execute(
            "UPDATE log_meta SET value = value + ? WHERE name = 'delta_rows'", (max(moved, 0),)
        )
        if flushing.done < flushing.head:
            return
        cursor.execute(
            "UPDATE log_meta SET value = max(value, ?) WHERE name = 'indexed_upto'",
            (flushing.head,),
        )
        tail = self._tail
        if (
            self._filter is not None
            and self._filter.covered_upto >= flushing.base
            and tail is not None
            and tail.base == flushing.base
        ):
            self._filter.add_all(list(tail.by_hash))  # a superset of the flushed keys
            self._filter.covered_upto = flushing.head
        self._flushing = None
        self._tail = None  # rebuilt from indexed_upto: only what came after the flush
        self._runs_empty = False
        delta, main = self._meta(cursor, "delta_rows"), self._meta(cursor, "main_rows")
        self._merge_due = delta >= max(self.merge_min, main // 4)

    def _merge_slice(self, cursor: sqlite3.Cursor) -> None:
        """Move one key range of the delta into main (each slice its own transaction,
        so appends wait at most one slice)."""
        cursor_at = self._meta(cursor, "merge_slice")
        low = _HASH_MIN + cursor_at * (_HASH_SPAN // MERGE_SLICES)
        last = cursor_at == MERGE_SLICES - 1
        high = 2**63 - 1 if last else low + _HASH_SPAN // MERGE_SLICES - 1
        cursor.execute(
            "INSERT OR IGNORE INTO dedup_main (key_hash, position) "
            "SELECT key_hash, position FROM dedup_delta WHERE key_hash BETWEEN ? AND ? "
            "ORDER BY key_hash",
            (low, high),
        )
        moved = cursor.rowcount
        cursor.execute("DELETE FROM dedup_delta WHERE key_hash BETWEEN ? AND ?", (low, high))
        removed = cursor.rowcount
        cursor.execute(
            "UPDATE log_meta SET value = value + ? WHERE name = 'main_rows'", (moved,)
        )
        cursor.execute(
            "UPDATE log_meta SET value = value - ? WHERE name = 'delta_rows'", (removed,)
        )
        finished = last
        cursor.execute(
            "UPDATE log_meta SET value = ? WHERE name = 'merge_slice'",
            (0 if finished else cursor_at + 1,),
        )
        if finished:
            self._merge_due = False

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
        return [
            RecordedEvent(
                position,
                tenant_,
                environment_,
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
