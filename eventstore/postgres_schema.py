"""Versioned schema of the PostgreSQL backend.

Each migration runs once, in order, in one transaction that first takes
`pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`: the first process to start takes the
lock and migrates; any other process starting at the same moment waits for the
lock, then finds the versions already applied (DDL is transactional in
PostgreSQL, so a migration that fails leaves nothing behind). `CREATE SCHEMA IF
NOT EXISTS` alone is not safe under concurrency (two creators can both miss the
schema and one fails on a unique violation), which is why even the schema is
created under the lock.

Every statement names its tables as `{schema}.name`; `render` fills in the
schema as a quoted identifier. Never edit a released migration: append a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, LiteralString

from psycopg.rows import tuple_row
from psycopg.sql import SQL, Composable, Composed, Identifier

if TYPE_CHECKING:
    from psycopg import Connection

__all__ = [
    "MIGRATION_LOCK_KEY",
    "POSTGRES_MIGRATIONS",
    "apply_postgres_migrations",
    "render",
    "schema_version",
]

MIGRATION_LOCK_KEY = 0x706C_6179_6C6F_6701
"""The advisory lock migrations hold ("playlog" + 1): one constant for every
schema, so migrators of different schemas also queue (they are short)."""

POSTGRES_MIGRATIONS: list[tuple[int, list[LiteralString]]] = [
    (
        1,
        [
            # The log. position is assigned max + 1 under the table lock (see
            # postgres_log.py): gap-free, in commit order, never a sequence. The
            # key columns compare byte for byte (COLLATE "C"): equality is the same
            # under any deterministic collation, and the indexes on them then
            # compare with memcmp instead of strcoll (up to a tenth of the insert,
            # measured).
            (
                "CREATE TABLE IF NOT EXISTS {schema}.events ("
                " position bigint PRIMARY KEY CHECK (position > 0),"
                ' tenant text COLLATE "C" NOT NULL,'
                ' environment text COLLATE "C" NOT NULL,'
                " source text NOT NULL,"
                " type text NOT NULL,"
                ' event_id text COLLATE "C" NOT NULL,'
                " subject text NOT NULL,"
                " occurred_at timestamptz NOT NULL,"
                " received_at timestamptz NOT NULL,"
                " client_id text,"
                " payload bytea NOT NULL)"
            ),
            # The dedup key (tenant, environment, event_id). The write path looks
            # keys up under the table lock and never inserts a stored key, so the
            # uniqueness must never fire: it is the last line of defence. event_id
            # leads so that this is the only index a lookup by event_id can use
            # (see the lookup in postgres_log.py).
            (
                "CREATE UNIQUE INDEX IF NOT EXISTS events_key"
                " ON {schema}.events (event_id, tenant, environment)"
            ),
            # Per-tenant reads in position order.
            (
                "CREATE INDEX IF NOT EXISTS events_by_tenant"
                " ON {schema}.events (tenant, environment, position)"
            ),
            (
                "CREATE TABLE IF NOT EXISTS {schema}.idempotency_keys ("
                " tenant text NOT NULL,"
                " environment text NOT NULL,"
                " key text NOT NULL,"
                " fingerprint text NOT NULL,"
                " status_code integer NOT NULL,"
                " content_type text NOT NULL,"
                " body bytea NOT NULL,"
                " created_at double precision NOT NULL,"
                " expires_at double precision NOT NULL,"
                " PRIMARY KEY (tenant, environment, key))"
            ),
            (
                "CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry"
                " ON {schema}.idempotency_keys (expires_at)"
            ),
        ],
    ),
    (
        2,
        [
            # Small named records the product keeps beside the log (API tokens,
            # tenant settings): opaque bytes by (kind, key); never on a hot path.
            (
                "CREATE TABLE IF NOT EXISTS {schema}.records ("
                " kind text NOT NULL,"
                " key text NOT NULL,"
                " value bytea NOT NULL,"
                " updated_at double precision NOT NULL,"
                " PRIMARY KEY (kind, key))"
            ),
        ],
    ),
]


def render(statement: LiteralString, schema: str, **parts: Composable) -> Composed:
    """`statement` with `{schema}` replaced by the quoted schema name (and any
    other `{name}` by the composable given for it)."""
    return SQL(statement).format(schema=Identifier(schema), **parts)


def schema_version(conn: Connection[Any], schema: str) -> int:
    """The highest applied migration in `schema`; 0 when none is."""
    cursor = conn.cursor(row_factory=tuple_row)
    exists = cursor.execute(
        "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'schema_migrations'",
        (schema,),
    ).fetchone()
    if exists is None:
        return 0
    found = cursor.execute(
        render("SELECT max(version) FROM {schema}.schema_migrations", schema)
    ).fetchone()
    return int(found[0] or 0) if found else 0


def apply_postgres_migrations(conn: Connection[Any], schema: str) -> list[int]:
    """Apply pending migrations in one transaction; returns the versions applied.

    `conn` must not be inside a transaction (the pool's connections are in
    autocommit mode); the advisory lock is released at commit or rollback.
    """
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        # Only when missing: CREATE SCHEMA needs the CREATE privilege on the
        # database even with IF NOT EXISTS, which a role given a ready-made
        # schema may lack. Under the lock, checking first is race-free.
        exists = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if exists.fetchone() is None:
            conn.execute(render("CREATE SCHEMA {schema}", schema))
        conn.execute(
            render(
                "CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
                " version integer PRIMARY KEY,"
                " applied_at timestamptz NOT NULL DEFAULT now())",
                schema,
            )
        )
        current = schema_version(conn, schema)
        for version, statements in POSTGRES_MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                conn.execute(render(statement, schema))
            conn.execute(
                render("INSERT INTO {schema}.schema_migrations (version) VALUES (%s)", schema),
                (version,),
            )
            applied.append(version)
    return applied
