"""The three systems the append benchmark compares, on SQLite and PostgreSQL.

* `playerlog`: our log through its public API (`open_log`, `await log.append`),
  driven by asyncio tasks, as the HTTP server drives it.
* `stock`: the eventsourcing library's `insert_events`, driven by threads, each
  taking a connection from the recorder's own pool.
* `raw`: `executemany` (SQLite) / binary COPY (PostgreSQL) into a table with our
  columns and no dedup, driven by threads with a connection each: the ceiling.

Every store converts the events to its own input before the clock starts, and
commits each call in its own durable transaction (SQLite `synchronous=FULL`,
PostgreSQL's default `synchronous_commit=on`), except that playerlog's writer
may put several concurrent calls into one transaction (group commit): that is
what is being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import unquote, urlsplit

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteDatastore
from psycopg.sql import SQL, Identifier

from eventstore import Envelope, EventLog, open_log
from eventstore.envelope import key_hash, to_utc_text
from eventstore.sqlite_schema import apply_sqlite_migrations

T = TypeVar("T")

Backend = Literal["sqlite", "postgres"]
System = Literal["playerlog", "stock", "raw"]
SYSTEMS: tuple[System, ...] = ("playerlog", "stock", "raw")

SQLITE_CACHE_KIB = 128 * 1024
"""The raw ceiling's page cache: the same as playerlog's writer connection."""

_EVENT_COLUMNS = (
    "position, tenant, environment, source, type, event_id, subject, "
    "occurred_at, received_at, client_id, payload"
)


# -- where stores live ----------------------------------------------------------------


@dataclass(frozen=True)
class PgServer:
    """The PostgreSQL server benchmarks create schemas in (and drop them from)."""

    url: str  # postgresql://user@host:port/dbname, no query

    def schema_url(self, schema: str) -> str:
        return f"{self.url}?schema={schema}"

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True)

    def datastore_args(self) -> dict[str, Any]:
        parts = urlsplit(self.url)
        return {
            "dbname": unquote(parts.path.lstrip("/")),
            "host": parts.hostname or "",
            "port": parts.port or 5432,
            "user": unquote(parts.username or ""),
            "password": unquote(parts.password or ""),
        }

    def version(self) -> str:
        with self.connect() as conn:
            row = conn.execute("SHOW server_version").fetchone()
            durability = conn.execute(
                "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)"
                " FROM pg_settings WHERE name IN"
                " ('autovacuum', 'fsync', 'synchronous_commit', 'shared_buffers')"
            ).fetchone()
        return f"{row[0] if row else '?'} ({durability[0] if durability else ''})"

    def create_schema(self, schema: str) -> None:
        with self.connect() as conn:
            conn.execute(SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(schema)))

    def drop_schema(self, schema: str) -> None:
        with self.connect() as conn:
            conn.execute(SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(Identifier(schema)))


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()


# -- drivers ---------------------------------------------------------------------------


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] serves with it), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return None
    return uvloop.new_event_loop


def event_loop_name() -> str:
    factory = event_loop_factory()
    if factory is None:
        return "asyncio event loop"
    return f"uvloop {metadata.version('uvloop')}"


async def _append_all(log: EventLog, batches: Sequence[Sequence[Envelope]], writers: int) -> float:
    """`writers` tasks, each awaiting `log.append` over its share of the calls."""

    async def writer(mine: Sequence[Sequence[Envelope]]) -> None:
        for batch in mine:
            await log.append(batch)

    start = time.perf_counter()
    await asyncio.gather(*(writer(batches[i::writers]) for i in range(writers)))
    return time.perf_counter() - start


def run_async(log: EventLog, batches: Sequence[Sequence[Envelope]], writers: int) -> float:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        return runner.run(_append_all(log, batches, writers))


def run_threads(
    call: Callable[[int, Sequence[T]], object], batches: Sequence[Sequence[T]], writers: int
) -> float:
    """`writers` threads; thread i makes `call(i, batch)` for its share of the calls.

    The clock starts when every thread is at the start line and stops when the
    last one has finished.
    """
    start_line = threading.Barrier(writers + 1)
    errors: list[BaseException] = []

    def work(index: int, mine: Sequence[Sequence[T]]) -> None:
        start_line.wait()
        try:
            for batch in mine:
                call(index, batch)
        except BaseException as error:
            errors.append(error)

    threads = [
        threading.Thread(target=work, args=(i, batches[i::writers]), name=f"bench-writer-{i}")
        for i in range(writers)
    ]
    for thread in threads:
        thread.start()
    start_line.wait()
    start = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return elapsed


# -- the stores --------------------------------------------------------------------------


class Store(ABC):
    """One system on one backend, open; `write` is what the clock measures."""

    @abstractmethod
    def convert(self, events: Sequence[Envelope], first_position: int) -> list[Any]:
        """This store's input for `events` (built before the clock starts)."""

    @abstractmethod
    def write(self, batches: Sequence[Sequence[Any]], writers: int) -> float:
        """Write every call, each durably; returns the seconds it took."""

    @abstractmethod
    def count(self) -> int:
        """Events stored (checked after the clock stops)."""

    @abstractmethod
    def close(self) -> None: ...


class PlayerlogStore(Store):
    def __init__(self, url: str) -> None:
        self.log = open_log(url)

    def convert(self, events: Sequence[Envelope], first_position: int) -> list[Any]:
        del first_position
        return list(events)

    def write(self, batches: Sequence[Sequence[Any]], writers: int) -> float:
        return run_async(self.log, batches, writers)

    def count(self) -> int:
        return self.log.head()

    def close(self) -> None:
        self.log.close()


def _stored_events(events: Sequence[Envelope]) -> list[Any]:
    """The same events as the library's StoredEvents: the event id is the
    originator id (a random UUID either way), the payload is the state."""
    return [
        StoredEvent(
            originator_id=uuid.UUID(e.event_id),
            originator_version=1,
            topic=f"track:{e.type}",
            state=e.payload,
        )
        for e in events
    ]


class StockSQLiteStore(Store):
    def __init__(self, path: Path, writers: int) -> None:
        self.datastore = SQLiteDatastore(
            str(path), lock_timeout=30, pool_size=writers, max_overflow=writers, pool_timeout=60
        )
        self.recorder = SQLiteApplicationRecorder(self.datastore)
        self.recorder.create_table()

    def convert(self, events: Sequence[Envelope], first_position: int) -> list[Any]:
        del first_position
        return _stored_events(events)

    def write(self, batches: Sequence[Sequence[Any]], writers: int) -> float:
        insert = self.recorder.insert_events
        return run_threads(lambda _i, batch: insert(batch), batches, writers)

    def count(self) -> int:
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute("SELECT count(*) FROM stored_events")
            return int(cursor.fetchone()[0])

    def close(self) -> None:
        self.datastore.close()


class StockPostgresStore(Store):
    def __init__(self, server: PgServer, schema: str, writers: int) -> None:
        server.create_schema(schema)  # the library creates tables, not schemas
        self.schema = schema
        self.datastore = PostgresDatastore(
            **server.datastore_args(), schema=schema, pool_size=writers
        )
        # Fill the pool now: the library opens it lazily, and with a timeout set,
        # several threads opening it at once trip an assertion in psycopg_pool.
        self.datastore.pool.open(wait=True, timeout=30)
        self.recorder = PostgresApplicationRecorder(self.datastore)
        self.recorder.create_table()

    def convert(self, events: Sequence[Envelope], first_position: int) -> list[Any]:
        del first_position
        return _stored_events(events)

    def write(self, batches: Sequence[Sequence[Any]], writers: int) -> float:
        insert = self.recorder.insert_events
        return run_threads(lambda _i, batch: insert(batch), batches, writers)

    def count(self) -> int:
        statement = SQL("SELECT count(*) AS n FROM {}.stored_events").format(
            Identifier(self.schema)
        )
        with self.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement)
            row = cursor.fetchone()
        return int(row["n"]) if row else 0

    def close(self) -> None:
        self.datastore.close()


_RAW_SQLITE_INSERT = (
    "INSERT INTO events (position, key_hash, tenant, environment, source, type, event_id,"
    " subject, occurred_at, received_at, client_id, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
)


class RawSQLiteStore(Store):
    """The ceiling: our schema (its `events` table has no index but its key),
    one `executemany` per call in its own transaction, the dedup runs left empty.

    Writers queue on an in-process lock before `BEGIN IMMEDIATE`, as the stock
    pool's writer lock and our writer thread do: left to SQLite's busy handler,
    which sleeps 1, 2, 5, 10... ms between tries, they would idle and the
    ceiling would understate what the database can take.
    """

    def __init__(self, path: Path, writers: int) -> None:
        self.connections = [self._connect(path) for _ in range(writers)]
        apply_sqlite_migrations(self.connections[0])
        self._lock = threading.Lock()

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        return conn

    def convert(self, events: Sequence[Envelope], first_position: int) -> list[Any]:
        return [
            (
                first_position + i,
                key_hash(e.tenant, e.environment, e.event_id),
                e.tenant,
                e.environment,
                e.source,
                e.type,
                e.event_id,
                e.subject,
                to_utc_text(e.occurred_at),
                to_utc_text(e.received_at),
                e.client_id,
                e.payload,
            )
            for i, e in enumerate(events)
        ]

    def write(self, batches: Sequence[Sequence[Any]], writers: int) -> float:
        lock = self._lock

        def call(index: int, rows: Sequence[Any]) -> None:
            conn = self.connections[index]
            with lock:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_RAW_SQLITE_INSERT, rows)
                conn.execute("COMMIT")

        return run_threads(call, batches, writers)

    def count(self) -> int:
        return int(self.connections[0].execute("SELECT count(*) FROM events").fetchone()[0])

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


_PG_COPY_TYPES = [
    "int8", "text", "text", "text", "text", "text", "text",
    "timestamptz", "timestamptz", "text", "bytea",
]  # fmt: skip


def _unique_indexes(conn: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    """The unique indexes of `schema.table` other than its primary key."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid = %s::regclass AND i.indisunique AND NOT i.indisprimary",
        (Identifier(schema, table).as_string(conn),),
    ).fetchall()
    return [row[0] for row in rows]


class RawPostgresStore(Store):
    """The ceiling: our schema (migrations applied) with the dedup key's unique
    index dropped, one binary COPY per call in its own transaction, no table
    lock, no lookup."""

    def __init__(self, server: PgServer, schema: str, writers: int) -> None:
        # Imported here: the PostgreSQL backend may be work in progress, and the
        # SQLite half of the benchmark must not depend on it.
        from eventstore.postgres_schema import apply_postgres_migrations  # noqa: PLC0415

        self.schema = Identifier(schema)
        with server.connect() as conn:
            apply_postgres_migrations(conn, schema)
            for index in _unique_indexes(conn, schema, "events"):
                conn.execute(SQL("DROP INDEX {}").format(Identifier(schema, index)))
        self.connections = [server.connect() for _ in range(writers)]
        self._copy = SQL(
            "COPY {}.events (" + _EVENT_COLUMNS + ") FROM STDIN (FORMAT BINARY)"
        ).format(self.schema)

    def convert(self, events: Sequence[Envelope], first_position: int) -> list[Any]:
        return [
            (
                first_position + i,
                e.tenant,
                e.environment,
                e.source,
                e.type,
                e.event_id,
                e.subject,
                e.occurred_at,
                e.received_at,
                e.client_id,
                e.payload,
            )
            for i, e in enumerate(events)
        ]

    def write(self, batches: Sequence[Sequence[Any]], writers: int) -> float:
        def call(index: int, rows: Sequence[Any]) -> None:
            conn = self.connections[index]
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(self._copy) as copy:
                copy.set_types(_PG_COPY_TYPES)
                for row in rows:
                    copy.write_row(row)

        return run_threads(call, batches, writers)

    def count(self) -> int:
        row = (
            self.connections[0]
            .execute(SQL("SELECT count(*) FROM {}.events").format(self.schema))
            .fetchone()
        )
        return int(row[0]) if row else 0

    def close(self) -> None:
        for conn in self.connections:
            conn.close()


# -- fresh stores ------------------------------------------------------------------------


class Lab:
    """Makes a fresh, empty store per measurement and removes it afterwards:
    SQLite files under `directory`, PostgreSQL schemas named after this process."""

    def __init__(self, directory: Path, server: PgServer | None) -> None:
        self.directory = directory
        self.server = server
        self.prefix = f"bench_append_{os.getpid()}"
        self._made = 0

    def name(self, label: str) -> str:
        self._made += 1
        return f"{self.prefix}_{self._made}_{label}"

    def pg(self) -> PgServer:
        if self.server is None:
            raise RuntimeError("no PostgreSQL server configured")
        return self.server

    @contextlib.contextmanager
    def fresh(self, backend: Backend, system: System, writers: int) -> Iterator[Store]:
        name = self.name(system)
        if backend == "sqlite":
            path = self.directory / f"{name}.db"
            try:
                with _closing(self._sqlite(system, path, writers)) as store:
                    yield store
            finally:
                remove_sqlite_files(path)
        else:
            server = self.pg()
            try:
                with _closing(self._postgres(system, server, name, writers)) as store:
                    yield store
            finally:
                server.drop_schema(name)

    @staticmethod
    def _sqlite(system: System, path: Path, writers: int) -> Store:
        if system == "playerlog":
            return PlayerlogStore(f"sqlite:///{path}")
        if system == "stock":
            return StockSQLiteStore(path, writers)
        return RawSQLiteStore(path, writers)

    @staticmethod
    def _postgres(system: System, server: PgServer, schema: str, writers: int) -> Store:
        if system == "playerlog":
            return PlayerlogStore(server.schema_url(schema))
        if system == "stock":
            return StockPostgresStore(server, schema, writers)
        return RawPostgresStore(server, schema, writers)


@contextlib.contextmanager
def _closing(store: Store) -> Iterator[Store]:
    try:
        yield store
    finally:
        store.close()
