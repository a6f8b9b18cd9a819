"""One process drives the projections at a time (the runner lock); a standby takes
over when it stops; a rebuild is driven or watched to its end."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventstore import Envelope, EventLog
from projections import (
    PlayersProjection,
    ProjectionRunner,
    load_builds,
    open_views,
    start_rebuild,
)
from projections.standard import standard_projections
from projections.worker import (
    FileRunnerLock,
    ProjectionWorker,
    follow_rebuilds,
    lock_path_for,
    runner_holder,
)
from tests.projections.helpers import dump, fresh_build, mixed_events


def _checkpoint(views: Path) -> int:
    conn = open_views(views)
    try:
        return max((b.position for b in load_builds(conn, ["players"]) if b.active), default=0)
    finally:
        conn.close()


async def _eventually(condition: object, timeout: float = 10.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {condition}")
        await asyncio.sleep(0.01)


def _broken_identify(position_hint: str) -> Envelope:
    when = datetime(2026, 5, 18, 14, 38, tzinfo=UTC)
    return Envelope(
        tenant="casino-a",
        environment="live",
        source="identify",
        type="identify",
        event_id=f"identify-broken-{position_hint}",
        subject="ply_1",
        occurred_at=when,
        received_at=when,
        client_id=None,
        payload=b'{"user_id": "ply_1", "traits": ["not", "an", "object"]}',
    )


def test_the_standard_projections_are_fresh_instances_with_distinct_names() -> None:
    first, second = standard_projections(), standard_projections()
    assert "players" in [p.name for p in first]
    assert len({p.name for p in first}) == len(first)
    assert all(a is not b for a, b in zip(first, second, strict=True))


def test_the_lock_file_sits_beside_the_views(views: Path) -> None:
    assert lock_path_for(views) == views.with_name("playerlog.views.db.lock")


def test_only_one_runner_lock_is_held_at_a_time_even_within_one_process(views: Path) -> None:
    first, second = FileRunnerLock(views), FileRunnerLock(views)
    assert first.acquire()
    assert first.acquire(), "taking a lock one already holds is a no-op"
    assert not second.acquire()
    first.release()
    assert second.acquire()
    assert not first.acquire()
    second.release()


def test_the_holder_is_named_while_the_lock_is_held_and_nobody_after(views: Path) -> None:
    assert runner_holder(views) is None, "no lock file yet"
    lock = FileRunnerLock(views)
    assert lock.acquire()
    holder = runner_holder(views)
    assert holder is not None
    assert holder.pid == os.getpid()
    assert holder.since is not None
    lock.release()
    assert runner_holder(views) is None


async def test_a_worker_catches_up_then_follows_and_stops_cleanly(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    events = mixed_events(1500, seed=31)
    log.append_sync(events[:1000])
    worker = ProjectionWorker(log, [PlayersProjection()], views=views, lock_poll=0.05)
    await worker.start()
    assert worker.active
    await _eventually(lambda: _checkpoint(views) == log.head())
    log.append_sync(events[1000:])
    await _eventually(lambda: _checkpoint(views) == log.head())
    await worker.stop()

    assert not worker.active
    assert runner_holder(views) is None, "the lock is released on stop"
    conn = open_views(views)
    try:
        assert dump(conn) == fresh_build(log, tmp_path / "fresh.views.db")
    finally:
        conn.close()


async def test_a_worker_gives_its_runner_the_options_it_was_given(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(mixed_events(600, seed=32))
    worker = ProjectionWorker(
        log,
        [PlayersProjection()],
        views=views,
        lock_poll=0.05,
        runner_options={"max_buffered_keys": 50, "processes": 1},
    )
    await worker.start()
    runner = worker._runner  # what the worker made of the options
    assert runner is not None
    assert (runner.max_buffered_keys, runner.processes) == (50, 1)
    await _eventually(lambda: _checkpoint(views) == log.head())
    await worker.stop()
    conn = open_views(views)
    try:
        assert dump(conn) == fresh_build(log, tmp_path / "fresh.views.db")
    finally:
        conn.close()


async def test_a_standby_worker_takes_over_where_the_driver_stopped(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    events = mixed_events(3000, seed=32)
    log.append_sync(events[:1000])
    driver = ProjectionWorker(log, [PlayersProjection()], views=views, lock_poll=0.05)
    standby = ProjectionWorker(log, [PlayersProjection()], views=views, lock_poll=0.05)
    await driver.start()
    await standby.start()
    assert (driver.active, standby.active) == (True, False)
    await _eventually(lambda: _checkpoint(views) == log.head())

    await driver.stop()
    log.append_sync(events[1000:])
    started = time.monotonic()
    await _eventually(lambda: standby.active, timeout=5)
    assert time.monotonic() - started < 2
    await _eventually(lambda: _checkpoint(views) == log.head())
    await standby.stop()

    conn = open_views(views)
    try:
        assert dump(conn) == fresh_build(log, tmp_path / "fresh.views.db")
    finally:
        conn.close()


def test_a_worker_refuses_a_lock_poll_that_is_not_positive(log: EventLog, views: Path) -> None:
    with pytest.raises(ValueError, match="lock_poll must be positive"):
        ProjectionWorker(log, [PlayersProjection()], views=views, lock_poll=0)


def test_following_a_rebuild_drives_it_here_when_nobody_else_does(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(mixed_events(2500, seed=33))
    with ProjectionRunner(log, [PlayersProjection()], views=views) as runner:
        runner.catch_up()
        build = runner.start_rebuild("players")
    seen: list[tuple[int, int]] = []

    (ended,) = follow_rebuilds(
        log,
        [PlayersProjection()],
        views,
        [build],
        page_size=300,
        progress_every=0.0,
        progress=lambda states: seen.extend(
            (s.progress.done, s.progress.total) for s in states if s.progress is not None
        ),
    )

    assert (ended.build, ended.active, ended.state) == (2, True, "live")
    assert runner_holder(views) is None, "the lock is handed back"
    assert seen, "progress was reported"
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)
    assert all(total == log.head() for _, total in seen)
    conn = open_views(views)
    try:
        assert dump(conn) == fresh_build(log, tmp_path / "fresh.views.db")
    finally:
        conn.close()


async def test_following_a_rebuild_watches_the_process_that_drives(
    log: EventLog, views: Path
) -> None:
    log.append_sync(mixed_events(2000, seed=34))
    driver = ProjectionWorker(log, [PlayersProjection()], views=views, lock_poll=0.05)
    await driver.start()
    await _eventually(lambda: _checkpoint(views) == log.head())
    conn = open_views(views)
    try:
        build = start_rebuild(conn, PlayersProjection())
    finally:
        conn.close()

    (ended,) = await asyncio.to_thread(
        follow_rebuilds, log, [PlayersProjection()], views, [build], poll_interval=0.01
    )

    assert driver.active, "the driver kept the lock: the follower only watched"
    assert (ended.build, ended.active) == (build.build, True)
    await driver.stop()


def test_following_a_rebuild_returns_when_it_stops_on_an_event(log: EventLog, views: Path) -> None:
    log.append_sync(mixed_events(300, seed=35))
    log.append_sync([_broken_identify("a")])
    conn = open_views(views)
    try:
        build = start_rebuild(conn, PlayersProjection())  # the first build: active at once
    finally:
        conn.close()

    (ended,) = follow_rebuilds(log, [PlayersProjection()], views, [build])

    assert ended.stopped
    assert ended.error_position == log.head()
    assert ended.position == log.head() - 1
