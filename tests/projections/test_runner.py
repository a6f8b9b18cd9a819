"""The runner: a page and its checkpoint in one transaction, failures stop, follow."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from eventstore import Envelope, EventLog, RecordedEvent, open_log
from projections import (
    PlayersProjection,
    ProjectionRunner,
    ProjectionStateError,
    Tables,
    get_player,
    open_views,
    retry,
    skip,
    status,
    views_path_for,
)
from projections.registry import load_builds
from tests.projections.helpers import (
    BOTH_DATABASES,
    ENV,
    TENANT,
    ApplyOnly,
    at,
    dump,
    fresh_build,
    identify,
    mixed_events,
    track,
)


class Crash(BaseException):
    """Stands for the process dying in the middle of a page."""


class CrashingPlayers(ApplyOnly):
    """Writes half of the `crash_on`-th page, then dies."""

    def __init__(self, crash_on: int) -> None:
        super().__init__()
        self.calls = 0
        self.crash_on = crash_on

    def apply(
        self, page: Sequence[RecordedEvent], conn: sqlite3.Connection, tables: Tables
    ) -> None:
        self.calls += 1
        if self.calls == self.crash_on:
            super().apply(page[: len(page) // 2], conn, tables)
            raise Crash
        super().apply(page, conn, tables)


class FailingPlayers(ApplyOnly):
    """Fails on one event id (a bug, say) until `fixed` is set."""

    def __init__(self, bad_event_id: str) -> None:
        super().__init__()
        self.bad_event_id = bad_event_id
        self.fixed = False

    def apply(
        self, page: Sequence[RecordedEvent], conn: sqlite3.Connection, tables: Tables
    ) -> None:
        if not self.fixed and any(e.event_id == self.bad_event_id for e in page):
            super().apply([e for e in page if e.event_id != self.bad_event_id], conn, tables)
            raise RuntimeError("the rules have a bug")
        super().apply(page, conn, tables)


def checkpoint(runner: ProjectionRunner) -> int:
    (build,) = [b for b in load_builds(runner.conn, ["players"]) if b.active]
    return build.position


def test_views_live_beside_the_log() -> None:
    assert views_path_for("sqlite:///x/playerlog.db") == Path("x/playerlog.views.db")
    assert views_path_for("sqlite:////var/lib/pl/log.db?synchronous=NORMAL") == Path(
        "/var/lib/pl/log.views.db"
    )
    assert views_path_for("sqlite:///data/events") == Path("data/events.views.db")
    for url in ("postgresql://u@h/db", "sqlite:///:memory:"):
        with pytest.raises(ValueError, match="read models"):
            views_path_for(url)


def test_the_default_views_file_is_derived_from_the_log(log: EventLog, tmp_path: Path) -> None:
    with ProjectionRunner(log, [PlayersProjection()]) as runner:
        assert runner.views == tmp_path / "playerlog.views.db"
        mode = runner.conn.execute("PRAGMA journal_mode").fetchone()[0]
        sync = runner.conn.execute("PRAGMA synchronous").fetchone()[0]
    assert (mode, sync) == ("wal", 1)  # 1 = NORMAL


@BOTH_DATABASES
def test_a_crash_mid_page_leaves_the_last_good_page_and_nothing_of_the_next(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    envelopes = mixed_events(1000, seed=1)
    log.append_sync(envelopes)
    with ProjectionRunner(log, [CrashingPlayers(crash_on=4)], views=views, page_size=100) as runner:
        with pytest.raises(Crash):
            runner.catch_up()
        assert checkpoint(runner) == 300
        partial = dump(runner.conn)
    # exactly what a build of the first 300 events holds: no event of page 4
    prefix = open_log(f"sqlite:///{tmp_path / 'prefix.db'}")
    try:
        prefix.append_sync(envelopes[:300])
        assert partial == fresh_build(prefix, tmp_path / "prefix.views.db")
    finally:
        prefix.close()
    # a restart resumes exactly at the checkpoint
    with ProjectionRunner(log, [PlayersProjection()], views=views, page_size=100) as runner:
        assert runner.catch_up() == 700
        resumed = dump(runner.conn)
    assert resumed == fresh_build(log, tmp_path / "fresh.views.db")


@BOTH_DATABASES
def test_an_event_that_cannot_be_applied_stops_the_projection_at_its_position(
    log: EventLog, views: Path
) -> None:
    good = [track(f"ply_{i}", "bet_placed", when=at(i), event_id=f"t-{i}") for i in range(5)]
    bad = Envelope(
        tenant=TENANT,
        environment=ENV,
        source="identify",
        type="identify",
        event_id="identify-bad",
        subject="ply_9",
        occurred_at=at(9),
        received_at=at(9),
        client_id=None,
        payload=b'{"user_id": "ply_9", "timestamp": "2026-05-18T14:38:09Z", "traits": [1, 2]}',
    )
    after = [track("ply_after", "bet_placed", when=at(20), event_id="t-after")]
    log.append_sync([*good, bad, *after])
    with ProjectionRunner(log, [PlayersProjection()], views=views, page_size=100) as runner:
        assert runner.catch_up() == 5  # the events before it, then it stops
        (state,) = runner.status()
        assert state.stopped
        assert state.position == 5
        assert state.error is not None
        assert (state.error.position, state.error.event_id, state.error.type) == (
            6,
            "identify-bad",
            "identify",
        )
        assert "traits" in state.error.message
        assert get_player(runner.conn, TENANT, ENV, "ply_4") is not None
        assert get_player(runner.conn, TENANT, ENV, "ply_after") is None
        # retrying an event that is really bad stops again, at the same place
        retry(runner.conn, "players")
        assert runner.catch_up() == 0
        assert runner.status()[0].error is not None
        # skipping needs the exact position
        with pytest.raises(ProjectionStateError):
            skip(runner.conn, "players", 7, by="ops@casino-a")
        skipped = skip(runner.conn, "players", 6, by="ops@casino-a")
        assert (skipped.position, skipped.event_id, skipped.skipped_by) == (
            6,
            "identify-bad",
            "ops@casino-a",
        )
        assert runner.catch_up() == 1
        (state,) = runner.status()
        assert not state.stopped
        assert state.position == 7
        assert [(s.position, s.skipped_by) for s in state.skipped] == [(6, "ops@casino-a")]
        assert get_player(runner.conn, TENANT, ENV, "ply_after") is not None
        assert get_player(runner.conn, TENANT, ENV, "ply_9") is None
        with pytest.raises(ProjectionStateError):
            retry(runner.conn, "players")


@BOTH_DATABASES
def test_retry_applies_the_event_once_the_cause_is_fixed(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    events = mixed_events(300, seed=3)
    log.append_sync(events)
    bad_id = events[150].event_id
    projection = FailingPlayers(bad_id)
    with ProjectionRunner(log, [projection], views=views, page_size=64) as runner:
        assert runner.catch_up() == 150
        (state,) = runner.status()
        assert state.error is not None
        assert state.error.position == 151
        assert "the rules have a bug" in state.error.message
        assert state.error.detail is not None
        assert "RuntimeError" in state.error.detail
        projection.fixed = True
        assert runner.catch_up() == 0  # still stopped: an operator decides
        retry(runner.conn, "players")
        assert runner.catch_up() == 150
        assert runner.status()[0].error is None
        assert dump(runner.conn) == fresh_build(log, tmp_path / "fresh.views.db")


@BOTH_DATABASES
def test_a_transient_failure_of_a_page_does_not_stop_the_projection(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    class Flaky(ApplyOnly):
        failures = 1

        def apply(
            self, page: Sequence[RecordedEvent], conn: sqlite3.Connection, tables: Tables
        ) -> None:
            if len(page) > 1 and self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("disk I/O error")
            super().apply(page, conn, tables)

    log.append_sync(mixed_events(200, seed=4))
    with ProjectionRunner(log, [Flaky()], views=views, page_size=50) as runner:
        assert runner.catch_up() == 200
        assert runner.status()[0].error is None
        assert dump(runner.conn) == fresh_build(log, tmp_path / "fresh.views.db")


@BOTH_DATABASES
def test_a_runner_whose_checkpoint_moved_underneath_rereads_instead_of_applying_twice(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(mixed_events(400, seed=5))
    # every page flushed, as at the head (the buffered variant: test_runner_buffer.py)
    # one process each: the racing log below can only read
    first = ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=100, flush_events=1, processes=1
    )
    second = ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=70, flush_events=1, processes=1
    )
    first.step()  # creates the build, applies 1..100

    real_read = log.read

    def read_then_race(after: int = 0, limit: int = 1000, **kw: object) -> list[RecordedEvent]:
        page = real_read(after, limit)
        second.step()  # another worker moves the checkpoint meanwhile
        return page

    first.log = type("RacingLog", (), {"read": staticmethod(read_then_race)})()  # type: ignore[assignment]
    assert first.step() == 0  # page read at 100, checkpoint now 170: rolled back
    first.log = log
    first.catch_up()
    second.catch_up()
    assert dump(first.conn) == fresh_build(log, tmp_path / "fresh.views.db")
    first.close()
    second.close()


def test_status_reports_position_head_lag_and_state(log: EventLog, views: Path) -> None:
    log.append_sync(mixed_events(250, seed=6))
    clock_now = [at(0).timestamp() + 86_400 * 400]
    with ProjectionRunner(
        log,
        [PlayersProjection()],
        views=views,
        page_size=100,
        flush_events=1,  # the status of a build that flushed its first page
        clock=lambda: clock_now[0],
    ) as runner:
        runner.step()
        (state,) = status(runner.conn, log, ["players"], clock=lambda: clock_now[0] + 10)
        assert (state.name, state.version, state.build, state.active) == (
            "players",
            PlayersProjection.version,
            1,
            True,
        )
        assert state.state == "rebuilding"
        assert (state.position, state.head, state.lag_events) == (100, 250, 150)
        assert state.lag_seconds > 0
        assert state.progress is not None
        assert (state.progress.done, state.progress.total) == (100, 250)
        assert state.progress.rate == pytest.approx(10.0)
        assert state.progress.eta_seconds == pytest.approx(15.0)
        runner.catch_up()
        (state,) = runner.status()
        assert (state.state, state.lag_events, state.lag_seconds, state.progress) == (
            "live",
            0,
            0.0,
            None,
        )


async def test_follow_picks_up_new_events(log: EventLog, views: Path) -> None:
    log.append_sync([identify("ply_1", when=at(0), traits={"vip_level": "gold"})])
    runner = ProjectionRunner(log, [PlayersProjection()], views=views, poll_interval=0.05)
    reader = open_views(views)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop=stop))
    try:
        await log.append([track("ply_2", "bet_placed", when=at(5), event_id="t-live")])
        for _ in range(200):
            if get_player(reader, TENANT, ENV, "ply_2") is not None:
                break
            await asyncio.sleep(0.02)
        found = get_player(reader, TENANT, ENV, "ply_2")
        assert found is not None
        assert found.event_count == 1
        assert runner.status()[0].state == "live"
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
        reader.close()
        runner.close()


async def test_run_stops_promptly_when_cancelled(log: EventLog, views: Path) -> None:
    runner = ProjectionRunner(log, [PlayersProjection()], views=views, poll_interval=10)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
    runner.close()


def test_projections_need_distinct_names_and_tables(log: EventLog, views: Path) -> None:
    with pytest.raises(ValueError, match="distinct"):
        ProjectionRunner(log, [PlayersProjection(), PlayersProjection()], views=views)
    with pytest.raises(ValueError, match="page_size"):
        ProjectionRunner(log, [PlayersProjection()], views=views, page_size=0)
