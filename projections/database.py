"""The read-model database: SQLite beside a SQLite log, or PostgreSQL.

Where the read models live (a *views location*) is a SQLite file path or a
`postgresql://` URL (its `?schema=` names the schema). Everything above this
module talks to a `ViewsConnection`: a `sqlite3.Connection` as such (SQLite
pays nothing for the port), or a `postgres_views.PostgresViews`, which
translates the same statements (see that module). What differs beyond the
statements is decided here: transactions, the table-making API, the catalogue,
and the error of a missing table.

SQLite: its own file, never the log's: SQLite has one write lock per file, and
projection writes (a page at a time, as fast as the disk takes them during a
rebuild) would otherwise stall appends. The file is derived from the log URL
(`sqlite:///x/playerlog.db` → `x/playerlog.views.db`) unless given explicitly.
Durability: WAL with `synchronous=NORMAL` by default. A power loss may take the
last few committed pages with it, but never corrupts the file, and the page and
its checkpoint always vanish together, so the runner simply re-applies them from
the log on restart. Pass `synchronous="FULL"` to trade that speed for not
re-applying.

PostgreSQL: by default the log's own database and schema (a `postgresql://` log
URL is its own views location); the server's durability applies.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Protocol

import psycopg
import sqlite_utils

from projections.postgres_views import PostgresTables, PostgresViews, is_postgres_url

__all__ = [
    "QUERY_ERRORS",
    "Synchronous",
    "ViewsConnection",
    "ViewsLocation",
    "is_lock_timeout",
    "is_missing_table",
    "is_postgres",
    "open_views",
    "read_transaction",
    "table_maker",
    "table_names",
    "views_location_for",
    "views_path_for",
    "write_transaction",
]

Synchronous = Literal["NORMAL", "FULL"]

ViewsLocation = str | Path
"""A SQLite file path, or a `postgresql://…[?schema=NAME]` URL."""

VIEWS_SUFFIX = ".views.db"


class Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class ViewsConnection(Protocol):
    """What the projections and readers use of a read-model connection
    (`sqlite3.Connection` and `PostgresViews` both are one)."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> object: ...

    @property
    def in_transaction(self) -> bool: ...

    def close(self) -> None: ...


def is_postgres(conn: ViewsConnection) -> bool:
    return isinstance(conn, PostgresViews)


def _sqlite(conn: ViewsConnection) -> sqlite3.Connection:
    if not isinstance(conn, sqlite3.Connection):
        raise TypeError(f"not a read-model connection: {type(conn).__name__}")
    return conn


def views_path_for(log_url: str) -> Path:
    """Where the read models of the SQLite log at `log_url` live by default.

    `sqlite:///x/playerlog.db` → `x/playerlog.views.db`; a name without `.db`
    gets `.views.db` appended.
    """
    scheme, _, rest = log_url.partition("://")
    if scheme != "sqlite":
        raise ValueError(f"{log_url!r}: read models get a file beside a sqlite:/// log only")
    path = rest.split("?", 1)[0]
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise ValueError(f"{log_url!r}: an in-memory log has no file to put read models beside")
    log_file = Path(path)
    stem = log_file.name[:-3] if log_file.name.endswith(".db") else log_file.name
    return log_file.with_name(stem + VIEWS_SUFFIX)


def views_location_for(log_url: str) -> ViewsLocation:
    """The default views location of a log: a PostgreSQL log's own database and
    schema; a SQLite log's `x/playerlog.views.db`."""
    if is_postgres_url(log_url):
        return log_url
    return views_path_for(log_url)


def open_views(
    location: ViewsLocation, *, synchronous: Synchronous = "NORMAL", busy_timeout_s: float = 30.0
) -> ViewsConnection:
    """A connection to the read-model database (created if missing); the
    projection registry is created on first use.

    SQLite: WAL mode, autocommit (`isolation_level=None`): writers open their
    own `BEGIN IMMEDIATE` with `write_transaction`; usable from any thread, one
    at a time. PostgreSQL: see `PostgresViews` (`synchronous` does not apply).
    """
    from projections.registry import ensure_registry  # noqa: PLC0415  (registry imports this module)

    if synchronous not in ("NORMAL", "FULL"):
        raise ValueError("synchronous must be NORMAL or FULL")
    conn: ViewsConnection
    if is_postgres_url(location):
        conn = PostgresViews(str(location))
    elif isinstance(location, str) and "://" in location:
        raise ValueError(
            f"{location!r}: the views location must be a SQLite file path or a postgresql:// URL"
        )
    else:
        Path(location).parent.mkdir(parents=True, exist_ok=True)
        lite = sqlite3.connect(
            str(location),
            isolation_level=None,
            check_same_thread=False,
            timeout=busy_timeout_s,
            cached_statements=256,
        )
        lite.execute("PRAGMA journal_mode=WAL")
        lite.execute(f"PRAGMA synchronous={synchronous}")
        lite.execute("PRAGMA temp_store=MEMORY")
        lite.execute("PRAGMA cache_size=-65536")
        conn = lite
    try:
        ensure_registry(conn)
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write_transaction(conn: ViewsConnection) -> Iterator[ViewsConnection]:
    """One writer at a time across processes (SQLite `BEGIN IMMEDIATE`, PostgreSQL
    an advisory transaction lock on the schema) … `COMMIT`; rolled back on any
    exception (also BaseException)."""
    if isinstance(conn, PostgresViews):
        conn.begin_write()
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()
        return
    lite = _sqlite(conn)
    lite.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if lite.in_transaction:
            lite.rollback()
        raise
    lite.commit()


@contextmanager
def read_transaction(conn: ViewsConnection) -> Iterator[ViewsConnection]:
    """One snapshot for several SELECTs (WAL, or PostgreSQL MVCC: never blocks the writer)."""
    mine = not conn.in_transaction  # inside someone's transaction: share its snapshot
    if mine:
        if isinstance(conn, PostgresViews):
            conn.begin_read()
        else:
            conn.execute("BEGIN")
    try:
        yield conn
    finally:
        if mine and conn.in_transaction:
            if isinstance(conn, PostgresViews):
                conn.rollback()
            else:
                conn.execute("ROLLBACK")


def table_maker(conn: ViewsConnection) -> Any:
    """What a projection's `create` makes its tables with: a `sqlite_utils.Database`,
    or its PostgreSQL counterpart taking the same column description."""
    if isinstance(conn, PostgresViews):
        return PostgresTables(conn)
    return sqlite_utils.Database(_sqlite(conn))


def table_names(conn: ViewsConnection) -> set[str]:
    """The tables (not views) of the read-model database."""
    if isinstance(conn, PostgresViews):
        return conn.table_names()
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


QUERY_ERRORS: tuple[type[Exception], ...] = (
    sqlite3.OperationalError,
    psycopg.errors.UndefinedTable,
)
"""What a query on a table that is not there raises (then ask `is_missing_table`)."""


def is_lock_timeout(error: BaseException) -> bool:
    """Whether `error` is a statement giving up on a lock (PostgreSQL `lock_timeout`)."""
    return isinstance(error, psycopg.errors.LockNotAvailable)


def is_missing_table(error: BaseException, table: str) -> bool:
    """Whether `error` says `table` (a view named by a projection's base table) does not exist."""
    if isinstance(error, sqlite3.OperationalError):
        return str(error).startswith(f"no such table: {table}")
    if isinstance(error, psycopg.errors.UndefinedTable):
        return f'"{table}' in str(error)
    return False
