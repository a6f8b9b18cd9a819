"""The runner lock on PostgreSQL: one driver per schema across processes, a standby
takes over within seconds when the driver dies, and nothing is applied twice or
skipped across the takeover."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from eventstore import EventLog, open_log
from projections import load_builds, open_views
from projections.runner_lock import PostgresRunnerLock, runner_holder, runner_lock_for
from projections.standard import standard_projections
from projections.worker import ProjectionWorker
from tests.projections.helpers import dump_all, fresh_standard_build, money_mix_events

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
NAMES = [p.name for p in standard_projections()]


@pytest.fixture
def pg_log(pg_url: str) -> Iterator[EventLog]:
    opened = open_log(pg_url)
    yield opened
    opened.close()


def _eventually(condition: Callable[[], bool], timeout: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)
    return time.monotonic() - started


def _terminate_holder_session(pg_base_url: str, lock: PostgresRunnerLock) -> None:
    key = lock.key & 0xFFFF_FFFF_FFFF_FFFF
    with psycopg.connect(pg_base_url, autocommit=True) as admin:
        (ended,) = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' "
            "AND granted AND classid::bigint = %s AND objid::bigint = %s",
            (key >> 32, key & 0xFFFF_FFFF),
        ).fetchone() or (0,)
    assert ended == 1


def test_the_lock_of_a_postgresql_schema_is_held_by_one_object_at_a_time(pg_url: str) -> None:
    first, second = runner_lock_for(pg_url), runner_lock_for(pg_url)
    assert isinstance(first, PostgresRunnerLock)
    try:
        assert first.acquire()
        assert first.acquire(), "taking a lock one already holds is a no-op"
        assert not second.acquire()
        first.release()
        assert second.acquire()
        assert not first.acquire()
    finally:
        first.release()
        second.release()


def test_another_schema_has_a_lock_of_its_own(pg_base_url: str, pg_url: str) -> None:
    here, elsewhere = runner_lock_for(pg_url), runner_lock_for(pg_url + "_other")
    try:
        assert here.acquire()
        assert elsewhere.acquire()
    finally:
        here.release()
        elsewhere.release()
        with psycopg.connect(pg_base_url, autocommit=True) as admin:
            schema = pg_url.rsplit("schema=", 1)[1] + "_other"
            admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_the_holder_is_named_while_the_lock_is_held_and_nobody_after(pg_url: str) -> None:
    assert runner_holder(pg_url) is None
    lock = runner_lock_for(pg_url)
    assert lock.acquire()
    try:
        holder = runner_holder(pg_url)
        assert holder is not None
        assert holder.pid == os.getpid()
        assert holder.host == socket.gethostname()
        assert holder.since is not None
    finally:
        lock.release()
    assert runner_holder(pg_url) is None


def test_a_lock_whose_session_ended_is_lost_and_free_for_another(
    pg_base_url: str, pg_url: str
) -> None:
    lost, standby = PostgresRunnerLock(pg_url), PostgresRunnerLock(pg_url)
    try:
        assert lost.acquire()
        assert lost.still_held()
        _terminate_holder_session(pg_base_url, lost)
        assert not lost.still_held()
        assert not lost.held
        # the server ends the session a moment after being told to
        _eventually(standby.acquire, 5, "the lock is free once the session has ended")
        assert runner_holder(pg_url) is not None
    finally:
        lost.release()
        standby.release()


def _start(pg_url: str, stderr: Path) -> subprocess.Popen[bytes]:
    with stderr.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.projections.worker_lock_child", pg_url, pg_url, "0.2"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


def _checkpoints(views: str) -> int:
    conn = open_views(views)
    try:
        builds = [b for b in load_builds(conn, NAMES) if b.active]
        return min((b.position for b in builds), default=0) if len(builds) == len(NAMES) else 0
    finally:
        conn.close()


def test_two_worker_processes_one_drives_and_the_standby_takes_over_a_sigkill(
    pg_log: EventLog, pg_url: str, tmp_path: Path
) -> None:
    events = money_mix_events(4000, seed=41)
    pg_log.append_sync(events[:2000])
    children = {name: _start(pg_url, tmp_path / f"{name}.log") for name in ("a", "b")}
    try:
        _eventually(lambda: runner_holder(pg_url) is not None, 30, "a child drives")
        _eventually(lambda: _checkpoints(pg_url) > 0, 30, "the driver applies pages")
        holder = runner_holder(pg_url)
        assert holder is not None
        driver = next(n for n, c in children.items() if c.pid == holder.pid)
        standby = "b" if driver == "a" else "a"
        said = {n: (tmp_path / f"{n}.log").read_text(encoding="utf-8") for n in children}
        drives = [n for n, text in said.items() if "this process" in text]
        assert "standing by" in said[standby]
        assert drives == [driver], "exactly one process drives"

        pg_log.append_sync(events[2000:3500])
        children[driver].send_signal(signal.SIGKILL)
        children[driver].wait(10)
        assert _checkpoints(pg_url) < pg_log.head(), "the driver died with work under way"
        took = _eventually(
            lambda: (h := runner_holder(pg_url)) is not None and h.pid == children[standby].pid,
            10,
            "the standby takes over",
        )
        assert took < 5
        pg_log.append_sync(events[3500:])
        _eventually(lambda: _checkpoints(pg_url) == pg_log.head(), 60, "the standby catches up")
        children[standby].send_signal(signal.SIGTERM)
        assert children[standby].wait(20) == 0
    finally:
        for child in children.values():
            if child.poll() is None:
                child.kill()
                child.wait()
    assert runner_holder(pg_url) is None, "the lock is handed back on SIGTERM"
    conn = open_views(pg_url)
    try:
        after_takeover = dump_all(conn)
    finally:
        conn.close()
    assert after_takeover == fresh_standard_build(pg_log, tmp_path / "fresh.views.db")


async def test_a_driver_whose_lock_session_ends_stops_driving_and_one_process_drives_again(
    pg_base_url: str, pg_log: EventLog, pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pg_log.append_sync(money_mix_events(300, seed=42))
    driver_lock = PostgresRunnerLock(pg_url)
    driver = ProjectionWorker(
        pg_log, standard_projections(), views=pg_url, lock=driver_lock, lock_poll=0.05
    )
    standby = ProjectionWorker(pg_log, standard_projections(), views=pg_url, lock_poll=0.05)
    await driver.start()
    await standby.start()
    try:
        assert (driver.active, standby.active) == (True, False)
        _terminate_holder_session(pg_base_url, driver_lock)
        deadline = time.monotonic() + 5
        while "lost the runner lock" not in caplog.text:
            assert time.monotonic() < deadline, "the driver did not notice"
            await asyncio.sleep(0.02)
        while [driver.active, standby.active].count(True) != 1 or runner_holder(pg_url) is None:
            assert time.monotonic() < deadline, "nobody drives again"
            await asyncio.sleep(0.02)
    finally:
        await driver.stop()
        await standby.stop()
    assert runner_holder(pg_url) is None


async def test_a_worker_whose_lock_database_is_unreachable_stands_by_and_says_so_once(
    log: EventLog, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1&schema=x"
    worker = ProjectionWorker(log, standard_projections(), views=nowhere, lock_poll=0.02)
    await worker.start()
    await asyncio.sleep(0.2)  # several more tries
    assert not worker.active
    await worker.stop()
    assert caplog.text.count("cannot try the runner lock") == 1
