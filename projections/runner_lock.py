"""The runner lock: which one process drives the projections of a views location.

One interface, two implementations, picked by `runner_lock_for(views)`:

* SQLite (`FileRunnerLock`): an exclusive `flock` on the lock file beside the
  views (`playerlog.views.db` → `playerlog.views.db.lock`). The kernel drops a
  dead process's lock (SIGKILL included). The file names the holder (pid, host,
  since) for the status; the lock itself, not the text, is what counts.
* PostgreSQL (`PostgresRunnerLock`): a session-level `pg_try_advisory_lock` on a
  key derived from the views schema, held by a connection of its own. A dead
  holder's connection closes and the server drops the lock with it. The holder
  writes a row (pid, host, since, its backend pid) to `projection_runner` in
  the schema; the status names the holder only when that row's backend really
  holds the lock now (`pg_locks`), so a stale row never names a dead process.

Standbys try every `lock_poll` seconds, so a takeover takes at most that long
(plus, on PostgreSQL, the moment the server needs to notice the closed
connection). Whoever drives, the checkpoint compare-and-set in every page
transaction keeps "never applied twice, never skipped" even if two ever did.
"""

from __future__ import annotations

import fcntl
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import msgspec
import psycopg
from psycopg import sql as pgsql

from projections.database import ViewsLocation
from projections.postgres_views import advisory_key, connect, is_postgres_url, split_schema

__all__ = [
    "FileRunnerLock",
    "PostgresRunnerLock",
    "RunnerHolder",
    "RunnerLock",
    "lock_path_for",
    "runner_holder",
    "runner_lock_for",
]

HOLDER_TABLE = "projection_runner"


class RunnerHolder(msgspec.Struct, frozen=True, kw_only=True):
    """The process that drives the projections."""

    pid: int | None
    host: str | None
    since: str | None
    """When it took the lock (ISO 8601, UTC)."""


def _me() -> RunnerHolder:
    return RunnerHolder(
        pid=os.getpid(), host=socket.gethostname(), since=datetime.now(UTC).isoformat()
    )


_UNNAMED = RunnerHolder(pid=None, host=None, since=None)
"""Held, but the holder has not written its name yet (taken a moment ago)."""


class RunnerLock(Protocol):
    """Exclusive, never waits; one object per would-be driver."""

    @property
    def held(self) -> bool:
        """Whether this object holds the lock (as far as it knows)."""
        ...

    def acquire(self) -> bool:
        """Take the lock if nobody holds it; True if this object holds it now."""
        ...

    def still_held(self) -> bool:
        """Whether the lock this object took is still its own (a lost database
        connection loses a PostgreSQL lock); False also when it never held it."""
        ...

    def release(self) -> None: ...

    def holder(self) -> RunnerHolder | None:
        """Who holds the lock now (None: nobody)."""
        ...


def runner_lock_for(views: ViewsLocation) -> RunnerLock:
    """The runner lock of the read models at `views`."""
    if is_postgres_url(views):
        return PostgresRunnerLock(str(views))
    return FileRunnerLock(views)


def runner_holder(views: ViewsLocation) -> RunnerHolder | None:
    """Who drives the projections of `views` now (None: nobody)."""
    return runner_lock_for(views).holder()


# -- SQLite: flock on a file beside the views --------------------------------------------


def lock_path_for(views: str | Path) -> Path:
    views = Path(views)
    return views.with_name(views.name + ".lock")


class FileRunnerLock:
    """`flock` locks belong to an open file description, so two `FileRunnerLock`s in
    one process exclude each other just as two processes do."""

    def __init__(self, views: str | Path) -> None:
        self.path = lock_path_for(views)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, msgspec.json.encode(_me()) + b"\n", 0)
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None  # a flock lasts as long as the descriptor

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)  # still ours here: nobody reads a stale holder afterwards
        finally:
            os.close(fd)  # closing drops the flock

    def holder(self) -> RunnerHolder | None:
        """Probes with a shared lock; a standby trying the exclusive lock at that very
        instant fails once and takes it at its next try."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                text = os.pread(fd, 4096, 0)
                try:
                    return msgspec.json.decode(text, type=RunnerHolder)
                except msgspec.DecodeError:  # taken a moment ago, not written yet
                    return _UNNAMED
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)


# -- PostgreSQL: a session advisory lock on its own connection ----------------------------


class PostgresRunnerLock:
    """The lock lives as long as this object's connection: closing it (or the
    process dying) hands it back."""

    def __init__(self, url: str) -> None:
        self._conninfo, self.schema = split_schema(url)
        self.key = advisory_key("runner", self.schema)
        self._conn: psycopg.Connection[Any] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self._conninfo, "playerlog-runner-lock")

    def _table(self) -> pgsql.Composed:
        return pgsql.SQL("{}.{}").format(
            pgsql.Identifier(self.schema), pgsql.Identifier(HOLDER_TABLE)
        )

    def acquire(self) -> bool:
        if self._conn is not None:
            return True
        conn = self._connect()
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
            if row is None or not row[0]:
                conn.close()
                return False
            self._write_holder(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return True

    def _write_holder(self, conn: psycopg.Connection[Any]) -> None:
        me = _me()
        with conn.transaction():
            # Creating the schema and table takes turns with the read models' writers
            # (the same key as their write transactions): concurrent CREATEs collide.
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s)", (advisory_key("views-write", self.schema),)
            )
            conn.execute(
                pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(pgsql.Identifier(self.schema))
            )
            conn.execute(
                pgsql.SQL(
                    "CREATE TABLE IF NOT EXISTS {} (only_row BIGINT PRIMARY KEY "
                    "CHECK (only_row = 1), pid BIGINT, host TEXT, since TEXT, "
                    "backend_pid BIGINT NOT NULL)"
                ).format(self._table())
            )
            conn.execute(
                pgsql.SQL(
                    "INSERT INTO {} (only_row, pid, host, since, backend_pid) "
                    "VALUES (1, %s, %s, %s, pg_backend_pid()) ON CONFLICT (only_row) DO UPDATE "
                    "SET pid = excluded.pid, host = excluded.host, since = excluded.since, "
                    "backend_pid = excluded.backend_pid"
                ).format(self._table()),
                (me.pid, me.host, me.since),
            )

    def still_held(self) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            conn.execute("SELECT 1")
        except psycopg.Error:
            # The session is gone, and the lock with it: someone else may drive now.
            self._conn = None
            conn.close()
            return False
        return True

    def release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.execute(
                pgsql.SQL("DELETE FROM {} WHERE backend_pid = pg_backend_pid()").format(
                    self._table()
                )
            )
            # Unlocked now, not when the server has finished ending the session (a
            # moment after close): whoever tries next gets it at once.
            conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
        except psycopg.Error:
            pass  # the connection is gone already: so is the lock, and the row names nobody
        finally:
            conn.close()  # closing the session drops the lock

    def holder(self) -> RunnerHolder | None:
        key = self.key & 0xFFFF_FFFF_FFFF_FFFF
        with self._connect() as conn:
            row = conn.execute(
                "SELECT l.pid, to_regclass(%s) IS NOT NULL FROM pg_locks AS l "
                "JOIN pg_database AS d ON d.oid = l.database AND d.datname = current_database() "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid::bigint = %s AND l.objid::bigint = %s",
                (self._table().as_string(conn), key >> 32, key & 0xFFFF_FFFF),
            ).fetchone()
            if row is None:
                return None
            backend, table_exists = row
            if not table_exists:
                return _UNNAMED
            named = conn.execute(
                pgsql.SQL("SELECT pid, host, since FROM {} WHERE backend_pid = %s").format(
                    self._table()
                ),
                (backend,),
            ).fetchone()
        if named is None:
            return _UNNAMED
        return RunnerHolder(pid=named[0], host=named[1], since=named[2])
