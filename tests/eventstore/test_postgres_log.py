"""The PostgreSQL backend against the log's contract, plus what only it has:
migrating under an advisory lock, NOTIFY wake-ups, the table lock, retries."""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest
from eventsourcing.persistence import PersistenceError
from psycopg import sql

from eventstore import EventLog, UnsupportedDatabaseURL, open_log
from eventstore.postgres_log import PostgresLog
from eventstore.postgres_schema import POSTGRES_MIGRATIONS, schema_version
from eventstore.results import AppendResult
from tests.eventstore.contract import LogContract
from tests.eventstore.helpers import batch, envelope
from tests.eventstore.test_crash import ROUNDS, crash_rounds

pytestmark = pytest.mark.postgres


class TestPostgresLog(LogContract):
    @pytest.fixture
    def url(self, pg_url: str) -> str:
        return pg_url


@pytest.fixture
def log(pg_url: str) -> Iterator[EventLog]:
    log = open_log(pg_url)
    yield log
    log.close()


def _wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.01)


# -- the URL -----------------------------------------------------------------------------


def test_url_keeps_everything_but_the_password() -> None:
    backend = PostgresLog.from_url(
        "postgres://app:s%40cret@db.example:6543/events?schema=tenant_a&sslmode=require"
    )
    try:
        assert (
            backend.url == "postgres://app@db.example:6543/events?schema=tenant_a&sslmode=require"
        )
        assert backend.schema == "tenant_a"
    finally:
        backend.close()


def test_url_without_a_database_name_is_refused() -> None:
    with pytest.raises(UnsupportedDatabaseURL, match="database name"):
        PostgresLog.from_url("postgresql://app:secret@db.example:5432/")


# -- schema --------------------------------------------------------------------------------


def _migrate(url: str, barrier: Any) -> list[int]:
    backend = PostgresLog.from_url(url)
    try:
        barrier.wait(30)
        backend.migrate()
        return backend.applied_migrations
    finally:
        backend.close()


def test_processes_starting_at_once_apply_each_migration_once(
    pg_url: str, pg_base_url: str, pg_schema: str
) -> None:
    context = multiprocessing.get_context("spawn")
    processes = 4
    with context.Manager() as manager, ProcessPoolExecutor(processes, mp_context=context) as pool:
        barrier = manager.Barrier(processes)
        applied = list(pool.map(_migrate, [pg_url] * processes, [barrier] * processes))
    versions = [version for by_one_process in applied for version in by_one_process]
    assert sorted(versions) == [version for version, _ in POSTGRES_MIGRATIONS]
    with psycopg.connect(pg_base_url) as conn:
        assert schema_version(conn, pg_schema) == POSTGRES_MIGRATIONS[-1][0]
        rows = conn.execute(f'SELECT count(*) FROM "{pg_schema}".schema_migrations').fetchone()
        assert rows == (len(POSTGRES_MIGRATIONS),)


# -- ordering and failure ------------------------------------------------------------------


def test_an_empty_write_returns_empty_lists(log: EventLog) -> None:
    assert log.backend.write([]) == ([], [])
    assert log.head() == 0


def test_events_and_idempotency_records_commit_together(log: EventLog) -> None:
    record = log.new_idempotency_record(
        tenant="casino-a",
        environment="live",
        key="k",
        fingerprint="fp",
        status_code=202,
        content_type="application/json",
        body=b"{}",
    )
    results, stored = log.backend.write(batch("e", 2), [record])
    assert [r.position for r in results] == [1, 2]
    assert stored == [record]
    doomed = [envelope("x", subject="\x00")]
    other = msgspec.structs.replace(record, key="k2")
    with pytest.raises(PersistenceError):
        log.backend.write(doomed, [other])
    assert log.get_idempotency("casino-a", "live", "k2") is None


def test_timestamps_come_back_as_utc(log: EventLog) -> None:
    paris = timezone(timedelta(hours=2))
    sent = msgspec.structs.replace(
        envelope("e"), occurred_at=datetime(2026, 5, 18, 17, 10, 0, 123456, tzinfo=paris)
    )
    log.append_sync([sent])
    (got,) = log.read()
    assert got.occurred_at == sent.occurred_at
    assert got.occurred_at.tzinfo is UTC
    assert got.occurred_at.hour == 15


def test_a_write_failing_after_the_lock_leaves_no_gap_and_nothing_visible(log: EventLog) -> None:
    log.append_sync(batch("before", 3))
    # PostgreSQL text cannot hold NUL: this envelope passes validation and the
    # key lookup, then fails inside the COPY, after the lock and the head read.
    doomed = [*batch("doomed", 5), envelope("doomed-nul", subject="ply\x00776192")]
    with pytest.raises(PersistenceError):
        log.backend.write(doomed)
    assert log.head() == 3
    assert [e.event_id for e in log.read()] == ["before-0", "before-1", "before-2"]
    after = log.append_sync(batch("after", 2))
    assert [r.position for r in after] == [4, 5]
    again = log.append_sync(batch("doomed", 5))
    assert [(r.status, r.position) for r in again] == [("stored", p) for p in range(6, 11)]
    assert [e.position for e in log.read()] == list(range(1, 11))


def test_writers_racing_on_the_same_keys_store_each_once(pg_url: str, log: EventLog) -> None:
    writers = 4
    backends = [PostgresLog.from_url(pg_url) for _ in range(writers)]
    start = threading.Barrier(writers)

    def write(backend: PostgresLog) -> list[AppendResult]:
        start.wait(10)
        results: list[AppendResult] = []
        for b in range(5):
            results += backend.write(batch(f"same-{b}", 40))[0]
        return results

    try:
        with ThreadPoolExecutor(writers) as pool:
            outcomes = list(pool.map(write, backends))
    finally:
        for backend in backends:
            backend.close()
    assert log.head() == 200
    stored = sorted(r.position for results in outcomes for r in results if r.status == "stored")
    assert stored == list(range(1, 201))
    for results in outcomes:  # every writer got the same position for each key
        assert [r.position for r in results] == [r.position for r in outcomes[0]]
    assert {r.status for results in outcomes for r in results} == {"stored", "duplicate"}


def test_a_write_whose_connection_dies_while_waiting_for_the_lock_is_retried(
    pg_base_url: str, pg_schema: str, log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    outcome: list[list[AppendResult]] = []
    with (
        psycopg.connect(pg_base_url, autocommit=True) as blocker,
        psycopg.connect(pg_base_url, autocommit=True) as admin,
    ):

        def waiting_writers() -> set[int]:
            rows = admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'playerlog'"
                " AND wait_event_type = 'Lock' AND query LIKE %s",
                (f'LOCK TABLE "{pg_schema}".events%',),
            ).fetchall()
            return {int(pid) for (pid,) in rows}

        with blocker.transaction():
            blocker.execute(f'LOCK TABLE "{pg_schema}".events IN EXCLUSIVE MODE')
            writer = threading.Thread(
                target=lambda: outcome.append(log.backend.write(batch("k", 3))[0])
            )
            writer.start()
            _wait_until(lambda: len(waiting_writers()) == 1)
            (killed,) = waiting_writers()
            admin.execute("SELECT pg_terminate_backend(%s)", (killed,))
            # The retry takes a fresh connection and queues for the lock again.
            _wait_until(lambda: len(waiting_writers() - {killed}) == 1)
        writer.join(30)
    assert [(r.status, r.position) for r in outcome[0]] == [
        ("stored", 1),
        ("stored", 2),
        ("stored", 3),
    ]
    assert [e.position for e in log.read()] == [1, 2, 3]
    assert any("retry 1" in record.getMessage() for record in caplog.records)


def test_log_survives_sigkill_of_a_writer_under_load(
    pg_url: str, pg_base_url: str, pg_schema: str, tmp_path: Path
) -> None:
    def reopen() -> EventLog:
        # The killed client's last transaction may still be finishing on the
        # server (a COMMIT it sent just before dying): wait for the table lock,
        # so the checks see the log as it will stay.
        with psycopg.connect(pg_base_url) as conn:
            conn.execute(
                sql.SQL("LOCK TABLE {}.events IN EXCLUSIVE MODE").format(
                    sql.Identifier(pg_schema)
                )
            )
        return open_log(pg_url)

    crash_rounds(pg_url, tmp_path, min(ROUNDS, 3), reopen)


# -- following other processes ---------------------------------------------------------------


async def test_follower_is_woken_by_notify_from_another_connection(
    pg_url: str, log: EventLog
) -> None:
    other = PostgresLog.from_url(pg_url)  # its own pool, and no in-process wake-up
    seen: list[int] = []

    async def consume() -> None:
        async for event in log.follow(poll_interval=60):  # only NOTIFY can wake it in time
            seen.append(event.position)
            return

    task = asyncio.create_task(consume())
    try:
        for _ in range(500):
            if log.changes._waiters:
                break
            await asyncio.sleep(0.01)
        assert log.changes._waiters, "the follower never started waiting"
        await asyncio.to_thread(other.write, batch("n", 1))
        await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
        other.close()
    assert seen == [1]


def test_watcher_reconnects_and_signals_after_losing_its_connection(
    pg_base_url: str, pg_url: str
) -> None:
    backend = PostgresLog.from_url(pg_url)
    backend.migrate()
    calls: list[float] = []
    stop = backend.watch(lambda: calls.append(time.monotonic()))
    try:
        with psycopg.connect(pg_base_url, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'playerlog-watch' AND query LIKE %s",
                (f'LISTEN "{backend.channel}"',),
            )
        _wait_until(lambda: len(calls) >= 1)  # on reconnecting: "you may have missed some"
        before = len(calls)
        backend.write(batch("after-reconnect", 1))
        _wait_until(lambda: len(calls) > before)
    finally:
        started = time.monotonic()
        stop()
        assert time.monotonic() - started < 1.0  # stopping does not wait out a timeout
        backend.close()
