"""Versioned schema of the SQLite backend.

Each migration runs once, in order, inside `BEGIN IMMEDIATE`: the first process
to start takes SQLite's write lock and migrates; any other process starting at
the same moment waits for the lock, then finds the versions already applied.
Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

__all__ = ["SQLITE_MIGRATIONS", "SQLITE_STEPS", "apply_sqlite_migrations", "schema_version"]

SQLITE_MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            # The log. position is the rowid: gap-free, assigned max + 1 under the
            # write lock, never reused (nothing is ever deleted).
            "CREATE TABLE IF NOT EXISTS events ("
            " position INTEGER PRIMARY KEY,"
            " key_hash INTEGER NOT NULL,"
            " tenant TEXT NOT NULL,"
            " environment TEXT NOT NULL,"
            " source TEXT NOT NULL,"
            " type TEXT NOT NULL,"
            " event_id TEXT NOT NULL,"
            " subject TEXT NOT NULL,"
            " occurred_at TEXT NOT NULL,"
            " received_at TEXT NOT NULL,"
            " client_id TEXT,"
            " payload BLOB NOT NULL)",
            # No other index on events: each one costs every append (a second
            # index on (tenant, environment, position) cost about 20%). Readers
            # filtering by tenant scan forward from their position; projections
            # read everything anyway.
            # The derived dedup index (see sqlite_log.py): sorted runs of key hashes.
            "CREATE TABLE IF NOT EXISTS dedup_main ("
            " key_hash INTEGER NOT NULL, position INTEGER NOT NULL,"
            " PRIMARY KEY (key_hash, position)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS dedup_delta ("
            " key_hash INTEGER NOT NULL, position INTEGER NOT NULL,"
            " PRIMARY KEY (key_hash, position)) WITHOUT ROWID",
            "CREATE TABLE IF NOT EXISTS log_meta ("
            " name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
            "INSERT OR IGNORE INTO log_meta (name, value) VALUES"
            " ('indexed_upto', 0), ('delta_rows', 0), ('main_rows', 0), ('merge_slice', 0)",
            "CREATE TABLE IF NOT EXISTS idempotency_keys ("
            " tenant TEXT NOT NULL,"
            " environment TEXT NOT NULL,"
            " key TEXT NOT NULL,"
            " fingerprint TEXT NOT NULL,"
            " status_code INTEGER NOT NULL,"
            " content_type TEXT NOT NULL,"
            " body BLOB NOT NULL,"
            " created_at REAL NOT NULL,"
            " expires_at REAL NOT NULL,"
            " PRIMARY KEY (tenant, environment, key))",
            "CREATE INDEX IF NOT EXISTS idempotency_keys_by_expiry"
            " ON idempotency_keys (expires_at)",
        ],
    ),
    (
        2,
        [
            # Small named records the product keeps beside the log (API tokens,
            # tenant settings): opaque bytes by (kind, key); never on a hot path.
            "CREATE TABLE IF NOT EXISTS records ("
            " kind TEXT NOT NULL,"
            " key TEXT NOT NULL,"
            " value BLOB NOT NULL,"
            " updated_at REAL NOT NULL,"
            " PRIMARY KEY (kind, key))",
        ],
    ),
    (
        3,
        [
            # The dedup index becomes a set of immutable sorted runs of packed
            # blocks (see dedup_runs.py), listed in a directory; the two tables of
            # schema 2 are converted to runs by `_adopt_schema_2_index` below.
            "CREATE TABLE IF NOT EXISTS dedup_runs ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " state TEXT NOT NULL CHECK (state IN ('live', 'merge')),"
            " rows INTEGER NOT NULL,"
            " done INTEGER NOT NULL,"
            " sources TEXT NOT NULL)",
            "_adopt_schema_2_index",
            "DROP TABLE dedup_main",
            "DROP TABLE dedup_delta",
            "DELETE FROM log_meta WHERE name IN ('main_rows', 'delta_rows', 'merge_slice')",
            # Ties a key filter saved beside the file (key_filter.py) to this very log.
            "INSERT OR IGNORE INTO log_meta (name, value) VALUES ('log_id', random())",
        ],
    ),
]


def _adopt_schema_2_index(conn: sqlite3.Connection) -> None:
    """Copy `dedup_main` and `dedup_delta` (sorted by key already) into one run each.

    Together they index exactly the positions up to `indexed_upto` (and perhaps
    a few above, from an interrupted flush: the merge drops such repeats). A
    one-off Python pass over every key, holding 16 bytes a key in memory while
    it runs (not measured at 10M).
    """
    from eventstore import dedup_runs  # noqa: PLC0415  (the schema module stays SQL-only otherwise)

    cursor = conn.cursor()
    for table in ("dedup_main", "dedup_delta"):
        dedup_runs.adopt(
            cursor,
            conn.execute(
                f"SELECT key_hash, position FROM {table} ORDER BY key_hash, position"  # noqa: S608
            ),
        )


SQLITE_STEPS = {"_adopt_schema_2_index": _adopt_schema_2_index}
"""Migration steps that need Python, named in the migrations' statement lists."""


def schema_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration; 0 for an empty database."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
    ).fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def apply_sqlite_migrations(conn: sqlite3.Connection) -> list[int]:
    """Apply pending migrations; returns the versions this call applied."""
    applied: list[int] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
        )
        current = schema_version(conn)
        for version, statements in SQLITE_MIGRATIONS:
            if version <= current:
                continue
            for statement in statements:
                step = SQLITE_STEPS.get(statement)
                if step is not None:
                    step(conn)
                else:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                (version, datetime.now(UTC).isoformat()),
            )
            applied.append(version)
    except BaseException:
        conn.rollback()
        raise
    conn.commit()
    return applied
