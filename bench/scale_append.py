"""bench/scale, the append ceiling: how many events/s one PostgreSQL log takes from
several processes, and what the table lock caps it at.

Three writers, each run in 1, 2 and 4 processes (spawned, one connection or one log
each), every process appending its own share of fresh track events in calls of 50
(the HTTP batch; the two raw writers also in calls of 1,000):

* `playerlog`: `open_log(url)` and `await log.append(batch)` from 8 asyncio tasks per
  process (as `playerlog serve` does with concurrent requests: the group commit may
  put several calls in one transaction).
* `COPY + lock` (nothing of ours): per call, one transaction of `LOCK TABLE events IN
  EXCLUSIVE MODE`, `SELECT max(position)`, a binary COPY of the call's rows with the
  next positions, COMMIT: the serialised path without the dedup lookup or any Python
  of ours. The lock is held until the commit, so commits (and their WAL flushes)
  happen one at a time: its transactions/s is the ceiling the lock sets.
* `COPY, no lock` (the database's ceiling): the same COPY with positions assigned
  before the clock starts (a disjoint range per process), no lock, no head: commits
  of different processes overlap and share WAL flushes.

All three write into our schema (the migrations of `eventstore/`, every index kept).
Processes start together (a barrier); the time is from the barrier (the earliest
process past it) to the last process's last commit (CLOCK_MONOTONIC, shared between
processes), then the stored count is checked.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.synchronize import Barrier
from typing import Any, Literal

import psycopg
from psycopg.sql import SQL, Composed, Identifier

from bench._common import chunks, track_events
from bench._stores import PgServer, event_loop_factory
from eventstore import Envelope, open_log

Writer = Literal["playerlog", "locked", "unlocked"]
WRITERS: tuple[Writer, ...] = ("playerlog", "locked", "unlocked")
WRITER_NAMES = {
    "playerlog": "playerlog EventLog.append",
    "locked": "COPY + table lock (ceiling of the lock)",
    "unlocked": "COPY, no lock (database ceiling)",
}
CALL_SIZE = 50
"""The HTTP batch: every writer appends in calls of 50."""
BIG_CALL_SIZE = 1_000
"""The raw writers also in calls of 1,000: the lock's ceiling with larger transactions."""
CONFIGS: tuple[tuple[Writer, int], ...] = (
    ("playerlog", CALL_SIZE),
    ("locked", CALL_SIZE),
    ("locked", BIG_CALL_SIZE),
    ("unlocked", CALL_SIZE),
    ("unlocked", BIG_CALL_SIZE),
)
TASKS_PER_PROCESS = 8
_COLUMNS = (
    "position, tenant, environment, source, type, event_id, subject, "
    "occurred_at, received_at, client_id, payload"
)
_COPY_TYPES = ["int8", "text", "text", "text", "text", "text", "text",
               "timestamptz", "timestamptz", "text", "bytea"]  # fmt: skip


@dataclass
class AppendSample:
    writer: str
    processes: int
    call_size: int
    run: int
    events: int
    seconds: float
    transactions: int
    """Commits made (0 when not counted: playerlog's group commit decides)."""
    stored: int
    wal_bytes: int

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    @property
    def transactions_per_second(self) -> float | None:
        return self.transactions / self.seconds if self.transactions and self.seconds else None


def _rows(events: Sequence[Envelope]) -> list[tuple[Any, ...]]:
    return [
        (e.tenant, e.environment, e.source, e.type, e.event_id, e.subject,
         e.occurred_at, e.received_at, e.client_id, e.payload)
        for e in events
    ]  # fmt: skip


def _copy_rows(
    cursor: psycopg.Cursor[Any], copy_sql: Composed, rows: Sequence[tuple[Any, ...]], first: int
) -> None:
    with cursor.copy(copy_sql) as copy:
        copy.set_types(_COPY_TYPES)
        for offset, row in enumerate(rows):
            copy.write_row((first + offset, *row))


def _child(
    writer: Writer,
    base_url: str,
    schema: str,
    seed: int,
    count: int,
    call_size: int,
    first_position: int,
    barrier: Barrier,
    out: Any,
) -> None:
    """One writing process: build its calls, wait at the barrier, write, report."""
    events = track_events(count, seed)
    calls = chunks(events, call_size)
    try:
        if writer == "playerlog":
            log = open_log(f"{base_url}?schema={schema}")
            try:
                log.head()  # opens the pool before the clock starts
                barrier.wait()
                began = time.monotonic()
                with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                    runner.run(_append_tasks(log, calls))
                out.put(("done", began, time.monotonic(), 0))
            finally:
                log.close()
            return
        target = Identifier(schema, "events")
        copy_sql = SQL("COPY {} (" + _COLUMNS + ") FROM STDIN (FORMAT BINARY)").format(target)
        lock_sql = SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(target)
        head_sql = SQL("SELECT coalesce(max(position), 0) FROM {}").format(target)
        rows = [_rows(call) for call in calls]
        with psycopg.connect(base_url, autocommit=True) as conn:
            barrier.wait()
            began = time.monotonic()
            with conn.cursor() as cursor:
                next_position = first_position
                for call in rows:
                    with conn.transaction():
                        if writer == "locked":
                            cursor.execute(lock_sql)
                            cursor.execute(head_sql)
                            head = cursor.fetchone()
                            next_position = int(head[0] if head else 0) + 1
                        _copy_rows(cursor, copy_sql, call, next_position)
                    next_position += len(call)
        out.put(("done", began, time.monotonic(), len(rows)))
    except BaseException as error:
        out.put(("error", 0.0, 0.0, f"{type(error).__name__}: {error}"))
        raise


async def _append_tasks(log: Any, calls: Sequence[Sequence[Envelope]]) -> None:
    async def task(mine: Sequence[Sequence[Envelope]]) -> None:
        for call in mine:
            await log.append(call)

    await asyncio.gather(*(task(calls[i::TASKS_PER_PROCESS]) for i in range(TASKS_PER_PROCESS)))


def wal_lsn(server: PgServer) -> str:
    with server.connect() as conn:
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    return str(row[0]) if row else "0/0"


def wal_bytes_since(server: PgServer, lsn: str) -> int:
    with server.connect() as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (lsn,)).fetchone()
    return int(row[0]) if row else 0


def measure_append(
    server: PgServer,
    schema: str,
    writer: Writer,
    processes: int,
    events: int,
    run: int,
    call_size: int = CALL_SIZE,
) -> AppendSample:
    """One measurement in a fresh schema (made here, dropped by the caller)."""
    from eventstore.postgres_schema import apply_postgres_migrations  # noqa: PLC0415

    with server.connect() as conn:
        apply_postgres_migrations(conn, schema)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes + 1)
    out = context.Queue()
    share = events // processes
    children = [
        context.Process(
            target=_child,
            args=(
                writer,
                server.url,
                schema,
                1_000 * run + index,
                share,
                call_size,
                index * share + 1,
                barrier,
                out,
            ),
            name=f"bench-scale-{writer}-{index}",
        )
        for index in range(processes)
    ]
    for child in children:
        child.start()
    try:
        lsn = wal_lsn(server)
        barrier.wait(timeout=120)
        start = time.monotonic()
        reports = [out.get(timeout=600) for _ in children]
    finally:
        for child in children:
            child.join(timeout=60)
            if child.is_alive():
                child.kill()
                child.join()
    wal = wal_bytes_since(server, lsn)
    errors = [str(r[3]) for r in reports if r[0] == "error"]
    if errors:
        raise RuntimeError(f"{writer} with {processes} processes failed: {errors[0]}")
    start = min(start, *(float(r[1]) for r in reports))
    end = max(float(r[2]) for r in reports)
    with server.connect() as conn:
        row = conn.execute(SQL("SELECT count(*) FROM {}").format(Identifier(schema, "events")))
        found = row.fetchone()
    stored = int(found[0]) if found else 0
    if stored != share * processes:
        raise RuntimeError(f"{writer}: {stored:,} events stored of {share * processes:,}")
    return AppendSample(
        writer=writer,
        processes=processes,
        call_size=call_size,
        run=run,
        events=share * processes,
        seconds=end - start,
        transactions=sum(int(r[3]) for r in reports),
        stored=stored,
        wal_bytes=wal,
    )
