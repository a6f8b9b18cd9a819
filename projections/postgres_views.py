"""The read models in PostgreSQL: a connection that speaks the projections' SQL.

The projections write their statements once, in the SQL both databases share
(upserts with `INSERT … AS cur … ON CONFLICT`, row values, `CASE`). What
differs is translated here, in one place, once per statement text (cached):

* placeholders: `?` → `%s` (and a literal `%` → `%%`, psycopg's escape);
* JSON lists: `SELECT value FROM json_each(?)` (an IN-list of scalars) →
  `json_array_elements_text(%s::json)`; any other `json_each(?)` (arrays whose
  items are read with `value ->> N`) → `json_array_elements(%s::json)`;
* `INSERT OR REPLACE` / `OR IGNORE` have no translation and are refused: write
  the upsert (it says which key conflicts).

Tables are made from the same column description the SQLite side gives
sqlite-utils (`PostgresTables`, the subset of its API the projections use):
str → TEXT (collation "C", so ORDER BY and cursor comparisons agree with
SQLite's byte order), int and bool → BIGINT, float → DOUBLE PRECISION.

Transactions: `BEGIN` + `pg_advisory_xact_lock(key of the schema)` for writes,
so registry changes and page commits of every process touching this schema
take turns (SQLite's `BEGIN IMMEDIATE`); `REPEATABLE READ READ ONLY` for a
read's snapshot. PostgreSQL DDL is transactional, so a swap (DROP VIEW +
CREATE VIEW) inside the swap transaction is atomic for readers.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql as pgsql
from psycopg.adapt import Dumper
from psycopg.pq import TransactionStatus

__all__ = [
    "PostgresTables",
    "PostgresViews",
    "advisory_key",
    "connect",
    "is_postgres_url",
    "split_schema",
    "to_postgres",
]

_SCHEMES = ("postgresql", "postgres")


def is_postgres_url(location: object) -> bool:
    return isinstance(location, str) and location.split("://", 1)[0] in _SCHEMES


def split_schema(url: str) -> tuple[str, str]:
    """(`url` without its `schema` query parameter, the schema: default `public`)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in reversed(query) if k == "schema"), "") or "public"
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    return urlunsplit(parts._replace(query=rest)), schema


DEFAULT_CONNECT_TIMEOUT = 10
"""Seconds to wait for the server when the URL sets no `connect_timeout` (libpq
itself would wait for ever)."""


def connect(conninfo: str, application_name: str) -> psycopg.Connection[Any]:
    """An autocommit connection for the read models or the runner lock."""
    if "connect_timeout=" not in conninfo:
        return psycopg.connect(
            conninfo,
            autocommit=True,
            application_name=application_name,
            connect_timeout=DEFAULT_CONNECT_TIMEOUT,
        )
    return psycopg.connect(conninfo, autocommit=True, application_name=application_name)


def advisory_key(purpose: str, schema: str) -> int:
    """A signed 64-bit advisory lock key for `purpose` in `schema` (locks are
    database-wide: the schema keeps two logs' read models apart)."""
    digest = hashlib.blake2b(f"playerlog:{purpose}:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


_IN_LIST = re.compile(r"SELECT\s+value\s+FROM\s+json_each\(\?\)", re.IGNORECASE)
_JSON_ROWS = re.compile(r"json_each\(\?\)", re.IGNORECASE)
_NO_UPSERT = re.compile(r"\bINSERT\s+OR\s+(REPLACE|IGNORE)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=2048)
def to_postgres(statement: str) -> str:
    """The projections' SQL (SQLite's placeholders and JSON lists) for psycopg."""
    if _NO_UPSERT.search(statement):
        raise ValueError(f"no PostgreSQL form for INSERT OR REPLACE/IGNORE: {statement!r}")
    statement = _IN_LIST.sub("SELECT value FROM json_array_elements_text(?::json)", statement)
    statement = _JSON_ROWS.sub("json_array_elements(?::json)", statement)
    out: list[str] = []
    quote: str | None = None
    for char in statement:
        if char == "%":
            out.append("%%")
            continue
        if quote is not None:
            if char == quote:
                quote = None
        elif char in ("'", '"'):
            quote = char
        elif char == "?":
            out.append("%s")
            continue
        out.append(char)
    return "".join(out)


class _BoolAsBigint(Dumper):
    """Booleans are stored as 0/1 integers, as in SQLite (the same Python values
    come back from both databases)."""

    oid = psycopg.postgres.types["int8"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


class PostgresViews:
    """A connection to the read models in one PostgreSQL schema.

    Quacks like the `sqlite3.Connection` the projections were written for
    (`execute`, `executemany`, `in_transaction`, `close`); statements are
    translated by `to_postgres`. Autocommit: transactions are explicit (see
    `database.write_transaction`). One thread at a time, as with SQLite.
    """

    def __init__(self, url: str, *, application_name: str = "playerlog-views") -> None:
        conninfo, schema = split_schema(url)
        self.schema = schema
        self.write_key = advisory_key("views-write", schema)
        self._conn = connect(conninfo, application_name)
        self._conn.adapters.register_dumper(bool, _BoolAsBigint)
        try:
            self._conn.execute("SET TIME ZONE 'UTC'")
            # Short statements only: compiling them costs more than running them.
            self._conn.execute("SET jit = off")
            with self._conn.transaction():
                # Two processes creating one schema at once: one fails unless they take turns.
                self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.write_key,))
                self._conn.execute(
                    pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(schema))
                )
            self._conn.execute(
                pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema))
            )
        except BaseException:
            self._conn.close()
            raise

    @property
    def raw(self) -> psycopg.Connection[Any]:
        """The psycopg connection (search_path set to the schema)."""
        return self._conn

    def execute(self, statement: str, parameters: Sequence[Any] = (), /) -> psycopg.Cursor[Any]:
        return self._conn.execute(to_postgres(statement), parameters)

    def executemany(self, statement: str, parameters: Iterable[Sequence[Any]], /) -> None:
        with self._conn.cursor() as cursor:
            cursor.executemany(to_postgres(statement), parameters)

    @property
    def in_transaction(self) -> bool:
        return self._conn.info.transaction_status != TransactionStatus.IDLE

    def begin_write(self) -> None:
        self._conn.execute("BEGIN")
        self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (self.write_key,))

    def begin_read(self) -> None:
        self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def commit(self) -> None:
        if self._conn.info.transaction_status == TransactionStatus.INERROR:
            # COMMIT would roll back without a word: say so instead.
            self._conn.execute("ROLLBACK")
            raise RuntimeError("the transaction had failed; it was rolled back, not committed")
        self._conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.in_transaction:
            self._conn.execute("ROLLBACK")

    def table_names(self) -> set[str]:
        rows = self._conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,)
        ).fetchall()
        return {name for (name,) in rows}

    def close(self) -> None:
        self._conn.close()


_TYPES: Mapping[type, str] = {
    str: 'TEXT COLLATE "C"',
    int: "BIGINT",
    bool: "BIGINT",
    float: "DOUBLE PRECISION",
}


def _literal(value: object) -> str:
    if isinstance(value, bool | int | float):
        return str(int(value) if isinstance(value, bool) else value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"no SQL default for {value!r}")


def _name(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class PostgresTables:
    """`db.table(name).create(...)` and `.create_index(...)` as sqlite-utils offers
    them (the arguments the projections use), for PostgreSQL: the same column
    description gives the same tables on both databases."""

    def __init__(self, conn: PostgresViews) -> None:
        self.conn = conn

    def table(self, name: str) -> _Table:
        return _Table(self.conn, name)


class _Table:
    def __init__(self, conn: PostgresViews, name: str) -> None:
        self.conn = conn
        self.name = name

    def create(
        self,
        columns: Mapping[str, type],
        *,
        pk: str | Sequence[str] | None = None,
        not_null: Iterable[str] = (),
        defaults: Mapping[str, object] | None = None,
        column_order: Sequence[str] | None = None,
        if_not_exists: bool = False,
    ) -> _Table:
        if column_order is not None:
            first = [c for c in column_order if c in columns]
            columns = {c: columns[c] for c in [*first, *(c for c in columns if c not in first)]}
        required = set(not_null)
        defaults = defaults or {}
        unknown = (required | set(defaults)) - set(columns)
        if unknown:
            raise ValueError(f"{self.name}: not_null/defaults name unknown columns {unknown}")
        parts = []
        for column, kind in columns.items():
            if kind not in _TYPES:
                raise TypeError(f"{self.name}.{column}: no PostgreSQL type for {kind!r}")
            text = f"{_name(column)} {_TYPES[kind]}"
            if column in required:
                text += " NOT NULL"
            if column in defaults:
                text += f" DEFAULT {_literal(defaults[column])}"
            parts.append(text)
        if pk is not None:
            keys = [pk] if isinstance(pk, str) else list(pk)
            parts.append(f"PRIMARY KEY ({', '.join(_name(k) for k in keys)})")
        exists = "IF NOT EXISTS " if if_not_exists else ""
        self.conn.execute(f"CREATE TABLE {exists}{_name(self.name)} ({', '.join(parts)})")
        return self

    def create_index(
        self,
        columns: Sequence[str],
        *,
        index_name: str | None = None,
        unique: bool = False,
        if_not_exists: bool = False,
    ) -> _Table:
        name = index_name or f"idx_{self.name}_{'_'.join(columns)}"
        self.conn.execute(
            f"CREATE {'UNIQUE ' if unique else ''}INDEX "
            f"{'IF NOT EXISTS ' if if_not_exists else ''}{_name(name)} "
            f"ON {_name(self.name)} ({', '.join(_name(c) for c in columns)})"
        )
        return self
