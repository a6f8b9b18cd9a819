"""The scale-out backend: one PostgreSQL database shared by many processes.

Built on the eventsourcing library's `PostgresRecorder` and `PostgresDatastore`
(its psycopg_pool, used for every statement), but owning its SQL: the library's
application recorder takes positions from a sequence, inserts with
`insert_events`, which fails a whole batch on one duplicate key, and returns
`None` for an empty batch. The log needs idempotent appends (stored / duplicate /
conflict per envelope) and a gap-free position, so it keeps what the library
gets right about ordering and does the rest itself:

* **One table lock per write.** Each `write` runs `LOCK TABLE events IN
  EXCLUSIVE MODE` before reading the head. EXCLUSIVE conflicts with itself and
  with every row write, but not with the ACCESS SHARE lock of a SELECT, so
  readers and followers are never blocked while writers queue. Holding the lock
  from before the head is read until commit makes commit order equal position
  order, which is what lets a follower read "everything after N" without ever
  missing a row that commits later below N.
* **max + 1 under that lock, never a sequence.** `nextval()` is not
  transactional: a transaction that takes positions and then rolls back burns
  them (a hole for ever), and two transactions can commit in the opposite order
  of their positions (a reader polling by position then skips the lower one).
  Under the lock, `max(position) + 1` is both gap-free and in commit order, and
  a rolled-back write leaves nothing behind. It costs one index probe.
* **Look up, decide, then insert.** The call's keys already in the log are
  fetched in one query (one probe of the unique key index per key of `unnest`
  of three text arrays), the shared rule in `dedup.decide` says stored /
  duplicate / conflict, and only new rows are inserted, with binary COPY (about
  3x faster than INSERT from unnest here). The UNIQUE index on (tenant,
  environment, event_id) serves that lookup and is a last line of defence:
  because the lookup runs under the lock, it never fires.
* **NOTIFY** on a per-schema channel in the same transaction (delivered only on
  commit): `watch` turns it into a wake-up for followers in other processes.
  Followers also poll, so a lost notification only delays them.

Never set `POSTGRES_ENABLE_DB_FUNCTIONS`-style shortcuts that skip the lock: a
follower then skips events (22 of 30,000 in a test of the library's path).

Round trips per write: BEGIN, one pipeline (lock timeout, lock, head, lookup),
the COPY, one pipeline (idempotency records, NOTIFY), COMMIT.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import select
import socket
import threading
import time
from sys import intern
from typing import TYPE_CHECKING, Any, Final, LiteralString, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import psycopg
import psycopg.errors
from eventsourcing.persistence import InterfaceError, OperationalError, PersistenceError
from eventsourcing.postgres import PostgresDatastore, PostgresRecorder
from psycopg.rows import tuple_row
from psycopg.sql import SQL, Identifier

from eventstore.backend import LogBackend
from eventstore.dedup import Key, decide
from eventstore.envelope import RecordedEvent
from eventstore.errors import UnsupportedDatabaseURL
from eventstore.idempotency import IdempotencyRecord
from eventstore.postgres_schema import apply_postgres_migrations, render

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from psycopg import Connection

    from eventstore.envelope import NewEvent
    from eventstore.results import AppendResult

__all__ = ["PostgresLog"]

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_POOL_SIZE = 2
DEFAULT_MAX_OVERFLOW = 8
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_LOCK_TIMEOUT = 30.0
"""Seconds a write waits for the table lock before failing (a writer holding it
that long is stuck; better an error than a queue that never drains)."""
DEFAULT_RETRIES = 3

_WATCH_HEALTH_CHECK = 30.0
"""Seconds of silence after which the listening connection is pinged, so a
connection that died without a word is noticed and replaced."""
_WATCH_RECONNECT = 1.0

_COLUMNS: Final[LiteralString] = (
    "position, tenant, environment, source, type, event_id, subject, "
    "occurred_at, received_at, client_id, payload"
)
_COPY_TYPES: Final = [
    "int8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "text",
    "bytea",
]

# Failures after which the transaction certainly did not take effect (the server
# rolled it back: deadlock, serialization) or the connection is gone (class 08,
# the server shutting the session down). psycopg raises client-side connection
# failures with no SQLSTATE at all.
_RETRYABLE_STATES = ("08", "40", "57P01", "57P02", "57P03")


def _is_retryable(error: BaseException) -> bool:
    """Whether `error` is a lost connection or a transaction the server rolled
    back, as opposed to a problem with the statement or the data."""
    cause = error.__cause__ if isinstance(error, PersistenceError) else error
    if not isinstance(cause, psycopg.OperationalError | psycopg.InterfaceError):
        return False
    if isinstance(cause, psycopg.errors.PipelineAborted):
        return False  # the echo of an earlier statement's error, not a cause
    state = cause.sqlstate
    return state is None or state.startswith(_RETRYABLE_STATES)


def _channel_name(schema: str) -> str:
    """The NOTIFY channel of one schema's log (channels are database-wide)."""
    name = f"playerlog_{schema}"
    if len(name.encode()) <= 63:
        return name
    return "playerlog_" + hashlib.blake2b(schema.encode(), digest_size=16).hexdigest()


class _Datastore(PostgresDatastore):
    """The library's datastore, with every session in READ COMMITTED, in UTC
    (timestamps come back as aware UTC datetimes), without JIT, and named
    `playerlog` in pg_stat_activity."""

    def after_connect_func(self) -> Callable[[Connection[Any]], None]:
        configure = super().after_connect_func()

        def after_connect(conn: Connection[Any]) -> None:
            configure(conn)  # autocommit, idle-in-transaction timeout
            # Each statement of a write sees what committed before it started, so
            # the head read after the lock is granted is the true head, whatever
            # default_transaction_isolation the server has.
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            conn.execute("SET TIME ZONE 'UTC'")
            # The dedup lookup's estimated cost (a nested loop over 1,000 keys)
            # crosses jit_above_cost, and compiling it took 50 ms: 4x the rest of
            # the write. Nothing here runs long enough for JIT to pay.
            conn.execute("SET jit = off")
            conn.execute("SET application_name = 'playerlog'")

        return after_connect


class PostgresLog(PostgresRecorder, LogBackend):
    """The log in one PostgreSQL schema; safe to share between many processes."""

    def __init__(
        self,
        *,
        dbname: str,
        host: str = "",
        port: int = 5432,
        user: str = "",
        password: str = "",
        schema: str = "public",
        connect_options: Mapping[str, str] | None = None,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        url: str | None = None,
    ) -> None:
        self.schema = schema
        self.channel = _channel_name(schema)
        self.retries = retries
        self.connect_timeout = connect_timeout
        self.url = url or f"postgresql://{user}@{host}:{port}/{dbname}?schema={schema}"
        self.applied_migrations: list[int] = []
        """Versions the last `migrate()` of this instance applied (tests read it)."""
        datastore = _Datastore(
            dbname=dbname,
            host=host,
            port=port,
            user=user,
            password=password,
            connect_timeout=connect_timeout,
            pool_size=pool_size,
            max_overflow=max_overflow,
            schema=schema,
        )
        # Further libpq parameters from the URL (sslmode, ...) reach every
        # connection: never silently dropped. The pool is not open yet.
        extra = dict(connect_options or {})
        if isinstance(datastore.pool.kwargs, dict):
            datastore.pool.kwargs.update(extra)
        given = {"dbname": dbname, "host": host, "port": port, "user": user, "password": password}
        self._connect_kwargs: dict[str, Any] = {
            **{name: value for name, value in given.items() if value != ""},
            "connect_timeout": max(1, round(connect_timeout)),
            **extra,
        }
        super().__init__(datastore)
        self._watchers: set[_Watcher] = set()
        self._watchers_lock = threading.Lock()

        def q(statement: LiteralString) -> bytes:
            return render(statement, schema, columns=SQL(_COLUMNS)).as_bytes(None)

        self._sql_lock_timeout = (
            SQL("SET LOCAL lock_timeout = {}")
            .format(f"{int(lock_timeout * 1000)}ms")
            .as_bytes(None)
        )
        self._sql_lock = q("LOCK TABLE {schema}.events IN EXCLUSIVE MODE")
        self._sql_head = q("SELECT coalesce(max(position), 0) FROM {schema}.events")
        # One probe of the unique index per key, whatever the statistics say. As
        # a plain join the planner hashes the whole table while it looks small,
        # and with stale statistics (a young, fast-growing table) it took the
        # (tenant, environment, position) index and filtered a whole tenant per
        # key: seconds per call at 30k rows. LATERAL ... LIMIT 1 can only be a
        # nested loop, and only `event_id =` is an index condition (the other
        # two are written so no index can use them), so only events_key
        # (event_id first) can serve it: about 1 ms per 1,000 keys at any size.
        self._sql_lookup = q(
            "SELECT k.tenant, k.environment, k.event_id, e.position, e.payload"
            " FROM unnest(%b::text[], %b::text[], %b::text[]) AS k(tenant, environment, event_id)"
            " CROSS JOIN LATERAL (SELECT position, payload FROM {schema}.events"
            " WHERE event_id = k.event_id"
            " AND (tenant, environment) IS NOT DISTINCT FROM (k.tenant, k.environment)"
            " LIMIT 1) AS e"
        )
        self._sql_copy = q("COPY {schema}.events ({columns}) FROM STDIN (FORMAT BINARY)")
        self._sql_notify = b"SELECT pg_notify(%s, %s)"
        self._sql_save_record = q(
            "INSERT INTO {schema}.idempotency_keys AS k (tenant, environment, key,"
            " fingerprint, status_code, content_type, body, created_at, expires_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (tenant, environment, key) DO UPDATE SET"
            " fingerprint = excluded.fingerprint, status_code = excluded.status_code,"
            " content_type = excluded.content_type, body = excluded.body,"
            " created_at = excluded.created_at, expires_at = excluded.expires_at"
            " WHERE k.expires_at <= excluded.created_at"
        )
        self._sql_get_record = q(
            "SELECT fingerprint, status_code, content_type, body, created_at, expires_at"
            " FROM {schema}.idempotency_keys WHERE tenant = %s AND environment = %s AND key = %s"
        )
        self._sql_get_live_record = self._sql_get_record + b" AND expires_at > %s"
        self._sql_purge = q("DELETE FROM {schema}.idempotency_keys WHERE expires_at <= %s")
        self._sql_put_record = q(
            "INSERT INTO {schema}.records (kind, key, value, updated_at) VALUES (%s, %s, %s, %s)"
            " ON CONFLICT (kind, key) DO UPDATE"
            " SET value = excluded.value, updated_at = excluded.updated_at"
        )
        self._sql_get_named = q("SELECT value FROM {schema}.records WHERE kind = %s AND key = %s")
        self._sql_list_named = q(
            "SELECT key, value FROM {schema}.records WHERE kind = %s ORDER BY key"
        )
        self._sql_read_base = q("SELECT {columns} FROM {schema}.events WHERE position > %s")
        self._read_statements: dict[tuple[bool, bool, bool], bytes] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> PostgresLog:
        """`postgresql://user[:password]@host[:port]/dbname[?schema=NAME&...]`.

        `postgres://` works too. `schema` puts every table in that schema
        (created if missing; default `public`); any other query parameter is
        passed to libpq as a connection parameter (`sslmode=require`, ...).
        Keyword options: pool_size, max_overflow, connect_timeout, lock_timeout,
        retries.
        """
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise UnsupportedDatabaseURL(f"{url!r}: not a postgresql:// URL")
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        schema = query.pop("schema", "") or "public"
        password = unquote(parts.password or "") or query.pop("password", "")
        query.pop("password", None)
        dbname = unquote(parts.path.lstrip("/"))
        if not dbname:
            raise UnsupportedDatabaseURL(f"{_redact(url)!r}: the URL needs a database name")
        try:
            port = parts.port or 5432
        except ValueError as error:
            raise UnsupportedDatabaseURL(f"{_redact(url)!r}: {error}") from None
        return cls(
            dbname=dbname,
            host=parts.hostname or "",
            port=port,
            user=unquote(parts.username or ""),
            password=password,
            schema=schema,
            connect_options=query,
            url=_redact(url),
            **options,
        )

    # -- transactions ------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], T]) -> T:
        """Run `attempt`, again after a lost connection or a server-side rollback.

        Reads are always safe to repeat. So are writes, though a write whose
        COMMIT was sent when the connection died has an unknown outcome: appends
        are idempotent by (tenant, environment, event_id), so the repeat finds
        the events if they were committed (answering `duplicate` at their
        positions: the same positions a caller would have got) and stores them
        if not; an idempotency record finds itself stored and is returned. What
        is never repeated: errors about the statement or the data.
        """
        tries = 0
        while True:
            try:
                return attempt()
            except (OperationalError, InterfaceError) as error:
                tries += 1
                if tries > self.retries or not _is_retryable(error):
                    raise
                log.warning("PostgreSQL connection failed (%s); retry %d", error, tries)
                time.sleep(min(0.1 * 2**tries, 2.0))

    # -- schema --------------------------------------------------------------------

    def migrate(self) -> None:
        def attempt() -> list[int]:
            with self.datastore.get_connection() as conn:
                return apply_postgres_migrations(conn, self.schema)

        self.applied_migrations = self._retrying(attempt)

    def create_table(self) -> None:
        self.migrate()

    def close(self) -> None:
        with self._watchers_lock:
            watchers = list(self._watchers)
        for watcher in watchers:
            watcher.stop()
        self.datastore.close()

    # -- writing -------------------------------------------------------------------

    def write(
        self,
        envelopes: Sequence[NewEvent],
        records: Sequence[IdempotencyRecord] = (),
    ) -> tuple[list[AppendResult], list[IdempotencyRecord]]:
        """Append and save records in one transaction (see the module docstring).

        A call with records only does not take the table lock: it adds no
        positions, and the records' own upserts settle races between writers.
        """
        if not envelopes and not records:
            return [], []
        return self._retrying(lambda: self._write_once(envelopes, records))

    def _write_once(
        self, envelopes: Sequence[NewEvent], records: Sequence[IdempotencyRecord]
    ) -> tuple[list[AppendResult], list[IdempotencyRecord]]:
        with self.datastore.get_connection() as conn, conn.transaction():
            results: list[AppendResult] = []
            new_head = 0
            if envelopes:
                results, new_head = self._append(conn, envelopes)
            stored = self._save_records_and_notify(conn, records, new_head)
        return results, stored

    def _append(
        self, conn: Connection[Any], envelopes: Sequence[NewEvent]
    ) -> tuple[list[AppendResult], int]:
        """Lock, decide and insert; returns the results and the new head (0 when
        nothing was inserted)."""
        keys = list({(e.tenant, e.environment, e.event_id) for e in envelopes})
        with conn.pipeline():
            conn.execute(self._sql_lock_timeout)
            conn.execute(self._sql_lock)
            head_cursor = conn.cursor(row_factory=tuple_row)
            head_cursor.execute(self._sql_head)
            found_cursor = conn.cursor(row_factory=tuple_row, binary=True)
            # Not prepared: a generic plan made while the table was tiny (a
            # sequential scan per key) would outlive the table's growth. The
            # arrays go in binary (%b): a third of the cost of the text form.
            found_cursor.execute(
                self._sql_lookup,
                ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys]),
                prepare=False,
            )
        head_row = head_cursor.fetchone()
        head = int(head_row[0]) if head_row else 0
        existing: dict[Key, tuple[int, bytes]] = {
            (tenant, environment, event_id): (position, payload)
            for tenant, environment, event_id, position, payload in found_cursor.fetchall()
        }
        results, new = decide(envelopes, existing, head)
        if not new:
            return results, 0
        with conn.cursor() as cursor, cursor.copy(self._sql_copy) as copy:
            copy.set_types(_COPY_TYPES)
            write_row = copy.write_row
            for position, e in new:
                write_row(
                    (
                        position,
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
                )
        return results, new[-1][0]

    def _save_records_and_notify(
        self, conn: Connection[Any], records: Sequence[IdempotencyRecord], new_head: int
    ) -> list[IdempotencyRecord]:
        """Save idempotency records (an unexpired earlier record for the key wins,
        an expired one is replaced) and NOTIFY followers if events were added.

        Each record is an upsert that only replaces an expired row, followed by a
        separate SELECT of what is now stored: a separate statement takes a new
        snapshot, so it also sees a row another transaction committed while the
        upsert waited on it. Upserts go in key order (stable, so the first of two
        records for one key still goes first): two writers never wait on each
        other's keys in opposite orders.
        """
        if not records and not new_head:
            return []
        select_cursor = conn.cursor(row_factory=tuple_row, binary=True)
        with conn.pipeline():
            if records:
                in_key_order = sorted(records, key=lambda r: (r.tenant, r.environment, r.key))
                conn.cursor().executemany(
                    self._sql_save_record,
                    [
                        (
                            r.tenant,
                            r.environment,
                            r.key,
                            r.fingerprint,
                            r.status_code,
                            r.content_type,
                            r.body,
                            r.created_at,
                            r.expires_at,
                        )
                        for r in in_key_order
                    ],
                )
                select_cursor.executemany(
                    self._sql_get_record,
                    [(r.tenant, r.environment, r.key) for r in records],
                    returning=True,
                )
            if new_head:
                conn.execute(self._sql_notify, (self.channel, str(new_head)))
        stored: list[IdempotencyRecord] = []
        for record in records:
            row = select_cursor.fetchone()
            if row is None:  # pragma: no cover  (the upsert guarantees a row)
                raise PersistenceError(f"idempotency key {record.key!r} vanished")
            stored.append(IdempotencyRecord(record.tenant, record.environment, record.key, *row))
            select_cursor.nextset()
        return stored

    # -- reading ---------------------------------------------------------------------

    def _read_statement(self, tenant: bool, environment: bool, types: bool) -> bytes:
        shape = (tenant, environment, types)
        statement = self._read_statements.get(shape)
        if statement is None:
            statement = self._sql_read_base
            if tenant:
                statement += b" AND tenant = %s"
            if environment:
                statement += b" AND environment = %s"
            if types:
                statement += b" AND type = ANY(%s::text[])"
            statement += b" ORDER BY position LIMIT %s"
            self._read_statements[shape] = statement
        return statement

    def read(
        self,
        after: int = 0,
        limit: int = 1000,
        *,
        tenant: str | None = None,
        environment: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        statement = self._read_statement(tenant is not None, environment is not None, bool(types))
        params: list[Any] = [after]
        if tenant is not None:
            params.append(tenant)
        if environment is not None:
            params.append(environment)
        if types:
            params.append(list(types))
        params.append(limit)

        def attempt() -> list[tuple[Any, ...]]:
            with self.datastore.get_connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row, binary=True)
                return cursor.execute(statement, params).fetchall()

        # interned as the SQLite backend does: one object per tenant and
        # environment, shared by every key a projection's buffer holds
        return [
            RecordedEvent(
                position,
                intern(tenant_),
                intern(environment_),
                source,
                type_,
                *rest,
            )
            for position, tenant_, environment_, source, type_, *rest in self._retrying(attempt)
        ]

    def head(self) -> int:
        def attempt() -> int:
            with self.datastore.get_connection() as conn:
                row = conn.cursor(row_factory=tuple_row).execute(self._sql_head).fetchone()
            return int(row[0]) if row else 0

        return self._retrying(attempt)

    def get_idempotency(
        self, tenant: str, environment: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        def attempt() -> tuple[Any, ...] | None:
            with self.datastore.get_connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row, binary=True)
                return cursor.execute(
                    self._sql_get_live_record, (tenant, environment, key, now)
                ).fetchone()

        row = self._retrying(attempt)
        return None if row is None else IdempotencyRecord(tenant, environment, key, *row)

    def purge_idempotency(self, now: float) -> int:
        def attempt() -> int:
            with self.datastore.get_connection() as conn:
                return conn.execute(self._sql_purge, (now,)).rowcount

        return self._retrying(attempt)

    # -- named records ---------------------------------------------------------------

    def put_record(self, kind: str, key: str, value: bytes, now: float) -> None:
        def attempt() -> None:
            with self.datastore.get_connection() as conn:
                conn.execute(self._sql_put_record, (kind, key, value, now))

        self._retrying(attempt)

    def get_record(self, kind: str, key: str) -> bytes | None:
        def attempt() -> tuple[Any, ...] | None:
            with self.datastore.get_connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row, binary=True)
                return cursor.execute(self._sql_get_named, (kind, key)).fetchone()

        row = self._retrying(attempt)
        return None if row is None else bytes(row[0])

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        def attempt() -> list[tuple[Any, ...]]:
            with self.datastore.get_connection() as conn:
                cursor = conn.cursor(row_factory=tuple_row, binary=True)
                return cursor.execute(self._sql_list_named, (kind,)).fetchall()

        return [(key, bytes(value)) for key, value in self._retrying(attempt)]

    # -- following other processes -----------------------------------------------------

    def watch(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Call `on_change` for each NOTIFY of this log's channel, from a thread
        with its own connection (not one of the pool's: it is held for ever).

        Returns once the LISTEN is in place (or the first attempt failed), so an
        append committed after `watch` returns is always signalled. If the
        connection is lost, the thread reconnects and calls `on_change` once,
        since notifications sent meanwhile are gone.
        """
        watcher = _Watcher(self._listener_connection, self.channel, on_change)
        with self._watchers_lock:
            self._watchers.add(watcher)
        watcher.start()
        watcher.ready.wait(self.connect_timeout + 1.0)

        def stop() -> None:
            watcher.stop()
            with self._watchers_lock:
                self._watchers.discard(watcher)

        return stop

    def _listener_connection(self) -> Connection[Any]:
        return psycopg.connect(
            **self._connect_kwargs, autocommit=True, application_name="playerlog-watch"
        )


class _Watcher:
    """One LISTEN connection and the thread that waits on it.

    The thread sleeps in `select` on the connection's socket and on one end of a
    socket pair, so `stop` wakes it at once instead of waiting out a timeout.
    """

    def __init__(
        self,
        connect: Callable[[], Connection[Any]],
        channel: str,
        on_change: Callable[[], None],
    ) -> None:
        self._connect = connect
        self._listen = SQL("LISTEN {}").format(Identifier(channel)).as_bytes(None)
        self._on_change = on_change
        self._stopping = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="playerlog-pg-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._stopping.is_set():
            return
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")
        self._thread.join()
        self._wake_r.close()
        self._wake_w.close()

    def _signal(self) -> None:
        try:
            self._on_change()
        except Exception:
            log.exception("a log watcher's callback failed")

    def _run(self) -> None:
        conn: Connection[Any] | None = None
        missed = False
        try:
            while not self._stopping.is_set():
                try:
                    if conn is None:
                        conn = self._connect()
                        conn.execute(self._listen)
                        if missed:
                            self._signal()
                        missed = False
                        self.ready.set()
                    # Drain what has arrived (also what libpq buffered while the
                    # LISTEN or a ping ran: such data does not wake `select`).
                    for _ in conn.notifies(timeout=0):
                        self._signal()
                    readable, _, _ = select.select(
                        [conn.fileno(), self._wake_r.fileno()], [], [], _WATCH_HEALTH_CHECK
                    )
                    if not readable and not self._stopping.is_set():
                        conn.execute("SELECT 1")
                except (psycopg.Error, OSError) as error:
                    log.warning("log watcher lost its connection (%s); reconnecting", error)
                    missed = True
                    self.ready.set()
                    if conn is not None:
                        conn.close()
                        conn = None
                    self._stopping.wait(_WATCH_RECONNECT)
        finally:
            if conn is not None:
                conn.close()


def _redact(url: str) -> str:
    """`url` without its password (in the user part or the query)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        netloc = f"{userinfo.split(':', 1)[0]}@{hostport}"
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode([(k, v) for k, v in pairs if k != "password"], safe="/")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
