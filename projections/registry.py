"""The projection registry: builds, checkpoints, errors, skips, and the swap.

Two tables in the read-model database, made with sqlite-utils (or its PostgreSQL
counterpart, `postgres_views.PostgresTables`):

* `projection_builds`: one row per build of a projection. A build is one fold of
  the log from zero into its own tables (`players_b3`, …) by one version of the
  rules. Exactly one build per name is `active`: the SQL views named by the
  projection's base tables (`players`, …) select from it. Its `position` is the
  checkpoint, written in the same transaction as each page. `state` is
  `building` (not yet at the head), `live`, `retired` (swapped out; its tables
  are dropped) or `cancelled`. A stopped build has `error*` set.
* `projection_skips`: every event an operator chose to skip, with who and when.

Every change here is one `write_transaction` (SQLite `BEGIN IMMEDIATE`, PostgreSQL
an advisory transaction lock on the schema), so a worker and an
operator's command in another process never interleave half-way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from projections.database import (
    ViewsConnection,
    is_postgres,
    table_maker,
    table_names,
    write_transaction,
)
from projections.protocol import Projection, Tables, physical_name

__all__ = [
    "BUILDS_TABLE",
    "SKIPS_TABLE",
    "Build",
    "ProjectionStateError",
    "Skip",
    "cancel_rebuild",
    "ensure_registry",
    "load_builds",
    "retry",
    "skip",
    "skips",
    "start_rebuild",
]

BUILDS_TABLE = "projection_builds"
SKIPS_TABLE = "projection_skips"

BUILDING, LIVE, RETIRED, CANCELLED = "building", "live", "retired", "cancelled"
CURRENT_STATES = (BUILDING, LIVE)


class ProjectionStateError(ValueError):
    """An operator command that does not fit the projection's state (nothing changed)."""


class Build(msgspec.Struct, frozen=True, kw_only=True):
    """One row of `projection_builds`."""

    name: str
    build: int
    version: int
    active: bool
    state: str
    position: int
    tables: dict[str, str]
    created_at: str
    caught_up_at: str | None = None
    activated_at: str | None = None
    retired_at: str | None = None
    rate_since: float | None = None
    rate_position: int | None = None
    error: str | None = None
    error_detail: str | None = None
    error_position: int | None = None
    error_event_id: str | None = None
    error_type: str | None = None
    error_at: str | None = None

    @property
    def stopped(self) -> bool:
        return self.error is not None


class Skip(msgspec.Struct, frozen=True, kw_only=True):
    """An event an operator skipped: never applied by that build."""

    name: str
    build: int
    position: int
    event_id: str | None
    type: str | None
    error: str | None
    skipped_by: str
    skipped_at: str


_BUILD_COLUMNS = tuple(Build.__struct_fields__)


def now_text(clock: Callable[[], float] = time.time) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat()


def ensure_registry(conn: ViewsConnection) -> None:
    """Create the registry tables if missing (idempotent, safe across processes)."""
    if {BUILDS_TABLE, SKIPS_TABLE} <= table_names(conn):
        return
    db = table_maker(conn)
    with write_transaction(conn):
        db.table(BUILDS_TABLE).create(
            {
                "name": str,
                "build": int,
                "version": int,
                "active": int,
                "state": str,
                "position": int,
                "tables": str,
                "created_at": str,
                "caught_up_at": str,
                "activated_at": str,
                "retired_at": str,
                "rate_since": float,
                "rate_position": int,
                "error": str,
                "error_detail": str,
                "error_position": int,
                "error_event_id": str,
                "error_type": str,
                "error_at": str,
            },
            pk=("name", "build"),
            not_null={
                "name",
                "build",
                "version",
                "active",
                "state",
                "position",
                "tables",
                "created_at",
            },
            defaults={"active": 0, "position": 0},
            if_not_exists=True,
        )
        db.table(SKIPS_TABLE).create(
            {
                "name": str,
                "build": int,
                "position": int,
                "event_id": str,
                "type": str,
                "error": str,
                "skipped_by": str,
                "skipped_at": str,
            },
            pk=("name", "build", "position"),
            not_null={"name", "build", "position", "skipped_by", "skipped_at"},
            if_not_exists=True,
        )


def _build_of(row: Sequence[Any]) -> Build:
    values = dict(zip(_BUILD_COLUMNS, row, strict=True))
    values["active"] = bool(values["active"])
    values["tables"] = msgspec.json.decode(values["tables"])
    return Build(**values)


def load_builds(
    conn: ViewsConnection, names: Iterable[str] | None = None, *, current_only: bool = True
) -> list[Build]:
    """Builds ordered by name and build; only `building`/`live` ones unless asked."""
    clauses, params = [], []
    if names is not None:
        clauses.append("name IN (SELECT value FROM json_each(?))")
        params.append(msgspec.json.encode(sorted(names)).decode())
    if current_only:
        clauses.append(f"state IN ('{BUILDING}', '{LIVE}')")
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = conn.execute(
        f"SELECT {', '.join(_BUILD_COLUMNS)} FROM {BUILDS_TABLE} {where} "  # noqa: S608
        "ORDER BY name, build",
        params,
    ).fetchall()
    return [_build_of(row) for row in rows]


def load_build(conn: ViewsConnection, name: str, build: int) -> Build | None:
    row = conn.execute(
        f"SELECT {', '.join(_BUILD_COLUMNS)} FROM {BUILDS_TABLE} "  # noqa: S608
        "WHERE name = ? AND build = ?",
        (name, build),
    ).fetchone()
    return None if row is None else _build_of(row)


def skips(conn: ViewsConnection, name: str | None = None) -> list[Skip]:
    where, params = ("WHERE name = ?", (name,)) if name is not None else ("", ())
    rows = conn.execute(
        "SELECT name, build, position, event_id, type, error, skipped_by, skipped_at "  # noqa: S608
        f"FROM {SKIPS_TABLE} {where} ORDER BY name, build, position",
        params,
    ).fetchall()
    return [
        Skip(
            name=r[0],
            build=r[1],
            position=r[2],
            event_id=r[3],
            type=r[4],
            error=r[5],
            skipped_by=r[6],
            skipped_at=r[7],
        )
        for r in rows
    ]


# -- used inside a transaction the caller holds ----------------------------------------


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def create_build(
    conn: ViewsConnection,
    projection: Projection,
    *,
    active: bool,
    clock: Callable[[], float] = time.time,
) -> Build:
    """A new build of `projection` (tables and registry row); the caller holds the
    write transaction. An active build also gets the views."""
    (number,) = conn.execute(
        f"SELECT coalesce(max(build), 0) + 1 FROM {BUILDS_TABLE} WHERE name = ?",  # noqa: S608
        (projection.name,),
    ).fetchone()
    tables = {base: physical_name(base, number) for base in projection.tables}
    for physical in tables.values():
        # Leftovers of a creation interrupted before its registry row was
        # committed (sqlite-utils 3 commits inside `create`; 4 does not).
        conn.execute(f"DROP TABLE IF EXISTS {_quote(physical)}")
    projection.create(table_maker(conn), tables)
    now = now_text(clock)
    conn.execute(
        f"INSERT INTO {BUILDS_TABLE} (name, build, version, active, state, position, tables, "  # noqa: S608
        "created_at, activated_at, rate_since, rate_position) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            projection.name,
            number,
            projection.version,
            int(active),
            BUILDING,
            0,
            msgspec.json.encode(tables).decode(),
            now,
            now if active else None,
            clock(),
            0,
        ),
    )
    if active:
        _point_views(conn, tables, previous={})
    build = load_build(conn, projection.name, number)
    assert build is not None
    return build


SWAP_LOCK_TIMEOUT = "250ms"
"""PostgreSQL: how long a swap waits for the readers under way. It gives up then
(`database.is_lock_timeout`) and the runner tries again next round, so a long
read never holds the runner up, and a reader never meets a deadlock error."""


def _exclude_readers(conn: ViewsConnection) -> None:
    """PostgreSQL: wait (a bounded time) for the readers under way to finish and hold
    new ones back until the swap commits.

    Readers read the registry first, then the views, in one snapshot; but a view
    is resolved when queried, not when the snapshot was taken, so a reader in
    the middle of a swap could report the old build's checkpoint over the new
    build's rows. Locking the registry exclusively waits for every reader that
    has read it and queues the rest behind the swap. It also keeps the swap from
    locking views one by one against readers holding some of them (a deadlock).
    SQLite needs none of this: its write transaction and readers' snapshots
    cover the schema too.
    """
    if is_postgres(conn):
        conn.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
        conn.execute(f"LOCK TABLE {BUILDS_TABLE} IN ACCESS EXCLUSIVE MODE")


def _point_views(conn: ViewsConnection, tables: Tables, previous: Tables) -> None:
    _exclude_readers(conn)
    for base in previous:
        if base not in tables:
            conn.execute(f"DROP VIEW IF EXISTS {_quote(base)}")
    for base, physical in tables.items():
        conn.execute(f"DROP VIEW IF EXISTS {_quote(base)}")
        conn.execute(
            f"CREATE VIEW {_quote(base)} AS SELECT * FROM {_quote(physical)}"  # noqa: S608
        )


def swap(
    conn: ViewsConnection, name: str, build: int, clock: Callable[[], float] = time.time
) -> Build | None:
    """Make `build` the active one of `name`, in the caller's transaction: the views
    now select from its tables; the previous active build is retired. Returns the
    retired build (its tables are dropped by `drop_retired`)."""
    new = load_build(conn, name, build)
    if new is None or new.state not in CURRENT_STATES or new.active:
        return None
    old = next((b for b in load_builds(conn, [name]) if b.active), None)
    now = now_text(clock)
    if old is not None:
        conn.execute(
            f"UPDATE {BUILDS_TABLE} SET active = 0, state = ?, retired_at = ? "  # noqa: S608
            "WHERE name = ? AND build = ?",
            (RETIRED, now, name, old.build),
        )
    conn.execute(
        f"UPDATE {BUILDS_TABLE} SET active = 1, state = ?, activated_at = ?, "  # noqa: S608
        "caught_up_at = coalesce(caught_up_at, ?) WHERE name = ? AND build = ?",
        (LIVE, now, now, name, build),
    )
    _point_views(conn, new.tables, previous=old.tables if old is not None else {})
    return old


def drop_retired(conn: ViewsConnection) -> list[str]:
    """Drop the tables of retired and cancelled builds (idempotent); returns what it dropped."""
    dropped = []
    existing = table_names(conn)
    for build in load_builds(conn, current_only=False):
        if build.state in CURRENT_STATES:
            continue
        for physical in build.tables.values():
            if physical in existing:
                with write_transaction(conn):
                    conn.execute(f"DROP TABLE IF EXISTS {_quote(physical)}")
                dropped.append(physical)
    return dropped


def record_error(
    conn: ViewsConnection,
    build: Build,
    *,
    position: int,
    event_id: str,
    event_type: str,
    error: BaseException,
    detail: str,
    clock: Callable[[], float] = time.time,
) -> None:
    conn.execute(
        f"UPDATE {BUILDS_TABLE} SET error = ?, error_detail = ?, error_position = ?, "  # noqa: S608
        "error_event_id = ?, error_type = ?, error_at = ? WHERE name = ? AND build = ?",
        (
            f"{type(error).__name__}: {error}",
            detail,
            position,
            event_id,
            event_type,
            now_text(clock),
            build.name,
            build.build,
        ),
    )


_CLEAR_ERROR = (
    "error = NULL, error_detail = NULL, error_position = NULL, error_event_id = NULL, "
    "error_type = NULL, error_at = NULL"
)


# -- operator commands (each its own transaction) ---------------------------------------


def start_rebuild(
    conn: ViewsConnection, projection: Projection, *, clock: Callable[[], float] = time.time
) -> Build:
    """Start building `projection` from zero beside the active build.

    The active build keeps serving reads (and, when its version is the running
    code's, keeps following the log); a runner builds the new one in its own
    tables and swaps it in when it reaches the head. If a rebuild of the same
    version is already under way, that one is returned; one of another version
    is cancelled first. Without any build yet, the first one is made active.
    """
    with write_transaction(conn):
        builds = load_builds(conn, [projection.name])
        pending = [b for b in builds if not b.active]
        for build in pending:
            if build.version == projection.version:
                return build
        for build in pending:
            _cancel(conn, build, clock)
        has_active = any(b.active for b in builds)
        build = create_build(conn, projection, active=not has_active, clock=clock)
    drop_retired(conn)
    return build


def _cancel(conn: ViewsConnection, build: Build, clock: Callable[[], float]) -> None:
    conn.execute(
        f"UPDATE {BUILDS_TABLE} SET state = ?, retired_at = ? "  # noqa: S608
        "WHERE name = ? AND build = ?",
        (CANCELLED, now_text(clock), build.name, build.build),
    )


def cancel_rebuild(
    conn: ViewsConnection, name: str, *, clock: Callable[[], float] = time.time
) -> Build | None:
    """Abandon the rebuild of `name` under way (if any); its tables are dropped."""
    with write_transaction(conn):
        pending = [b for b in load_builds(conn, [name]) if not b.active]
        for build in pending:
            _cancel(conn, build, clock)
    drop_retired(conn)
    return pending[0] if pending else None


def _stopped_builds(conn: ViewsConnection, name: str, build: int | None) -> list[Build]:
    builds = [
        b for b in load_builds(conn, [name]) if b.stopped and (build is None or b.build == build)
    ]
    if not builds:
        raise ProjectionStateError(
            f"projection {name!r}{'' if build is None else f' build {build}'} is not stopped"
        )
    return builds


def retry(conn: ViewsConnection, name: str, *, build: int | None = None) -> list[Build]:
    """Clear the error of a stopped projection so its runner tries the event again.

    For a failure that was not the event's fault (a full disk, a bug since fixed
    and deployed). Without `build`, every stopped build of `name` is retried.
    """
    with write_transaction(conn):
        stopped = _stopped_builds(conn, name, build)
        for b in stopped:
            conn.execute(
                f"UPDATE {BUILDS_TABLE} SET {_CLEAR_ERROR} WHERE name = ? AND build = ?",  # noqa: S608
                (name, b.build),
            )
    return stopped


def skip(
    conn: ViewsConnection,
    name: str,
    position: int,
    *,
    by: str,
    build: int | None = None,
    clock: Callable[[], float] = time.time,
) -> Skip:
    """Skip exactly the event that stopped `name` at `position`, and resume after it.

    Refused (ProjectionStateError, nothing changed) unless a build of `name` is
    stopped at exactly that position: an operator cannot skip an event by
    mistake, nor more than one. Recorded in `projection_skips` with `by` (who)
    and when; the status lists it.
    """
    if not by:
        raise ValueError("say who skips (by=...)")
    with write_transaction(conn):
        candidates = [b for b in _stopped_builds(conn, name, build) if b.error_position == position]
        if not candidates:
            raise ProjectionStateError(f"projection {name!r} is not stopped at position {position}")
        target = candidates[0]
        if target.position != position - 1:
            # The runner commits everything before the failing event, so the
            # checkpoint sits right below it; anything else would skip more.
            raise ProjectionStateError(
                f"projection {name!r} is at {target.position}, not right below {position}"
            )
        now = now_text(clock)
        conn.execute(
            f"INSERT INTO {SKIPS_TABLE} (name, build, position, event_id, type, error, "  # noqa: S608
            "skipped_by, skipped_at) VALUES (?,?,?,?,?,?,?,?)",
            (
                name,
                target.build,
                position,
                target.error_event_id,
                target.error_type,
                target.error,
                by,
                now,
            ),
        )
        conn.execute(
            f"UPDATE {BUILDS_TABLE} SET position = ?, {_CLEAR_ERROR} "  # noqa: S608
            "WHERE name = ? AND build = ?",
            (position, name, target.build),
        )
        return Skip(
            name=name,
            build=target.build,
            position=position,
            event_id=target.error_event_id,
            type=target.error_type,
            error=target.error,
            skipped_by=by,
            skipped_at=now,
        )


def active_position(conn: ViewsConnection, name: str) -> int | None:
    """The checkpoint of the active build of `name` (None before the first build)."""
    row = conn.execute(
        f"SELECT position FROM {BUILDS_TABLE} WHERE name = ? AND active = 1",  # noqa: S608
        (name,),
    ).fetchone()
    return None if row is None else int(row[0])


def set_rate_marker(conn: ViewsConnection, builds: Iterable[Build], now: float) -> None:
    """Measure rates from here (a runner process starts driving these builds)."""
    with write_transaction(conn):
        conn.executemany(
            f"UPDATE {BUILDS_TABLE} SET rate_since = ?, rate_position = position "  # noqa: S608
            "WHERE name = ? AND build = ?",
            [(now, b.name, b.build) for b in builds],
        )
