"""Rebuild equals live, and a rebuild swaps in without stopping reads or ingestion."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from eventstore import EventLog
from projections import (
    PlayersProjection,
    ProjectionRunner,
    cancel_rebuild,
    get_player,
    load_builds,
    open_views,
    start_rebuild,
)
from tests.projections.helpers import ENV, TENANT, dump, fresh_build, mixed_events

V1 = PlayersProjection.version
V2 = V1 + 1


class PlayersV2(PlayersProjection):
    version = V2


def physical_tables(runner: ProjectionRunner) -> set[str]:
    return {
        name
        for (name,) in runner.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if name.startswith("players")
    }


def test_rebuild_equals_live_row_for_row(log: EventLog, views: Path, tmp_path: Path) -> None:
    events = mixed_events(3000, seed=11)
    rng = random.Random(11)
    with ProjectionRunner(log, [PlayersProjection()], views=views, page_size=37) as runner:
        # built live: appends arrive in batches of all sizes, the runner follows
        done = 0
        while done < len(events):
            size = rng.randrange(1, 400)
            log.append_sync(events[done : done + size])
            done += size
            runner.catch_up()
        live = dump(runner.conn)
        assert runner.start_rebuild("players").build == 2
        runner.catch_up()
        assert dump(runner.conn) == live
        assert [(b.build, b.active) for b in load_builds(runner.conn, ["players"])] == [(2, True)]
        assert physical_tables(runner) == {f"{base}_b2" for base in PlayersProjection.tables}
    assert fresh_build(log, tmp_path / "fresh.views.db", page_size=1000) == live


def test_a_new_version_builds_beside_the_old_one_and_swaps(log: EventLog, views: Path) -> None:
    log.append_sync(mixed_events(600, seed=12))
    with ProjectionRunner(log, [PlayersProjection()], views=views, page_size=100) as runner:
        runner.catch_up()
        v1 = dump(runner.conn)
    with ProjectionRunner(log, [PlayersV2()], views=views, page_size=100) as runner:
        runner.step()
        builds = load_builds(runner.conn, ["players"])
        assert [(b.build, b.version, b.active, b.state) for b in builds] == [
            (1, V1, True, "live"),
            (2, V2, False, "building"),
        ]
        assert dump(runner.conn) == v1  # reads still go to version 1
        statuses = runner.status()
        assert [(s.version, s.state) for s in statuses] == [(V1, "live"), (V2, "rebuilding")]
        runner.catch_up()
        assert [(b.build, b.version, b.active) for b in load_builds(runner.conn, ["players"])] == [
            (2, V2, True)
        ]
        assert dump(runner.conn) == v1  # same rules, same rows
        assert physical_tables(runner) == {f"{base}_b2" for base in PlayersProjection.tables}
    # code older than the active build leaves it alone
    with ProjectionRunner(log, [PlayersProjection()], views=views) as runner:
        assert runner.catch_up() == 0
        assert [(b.build, b.version) for b in load_builds(runner.conn, ["players"])] == [(2, V2)]


def test_a_rebuild_can_be_cancelled(log: EventLog, views: Path) -> None:
    log.append_sync(mixed_events(300, seed=13))
    with ProjectionRunner(log, [PlayersProjection()], views=views, page_size=100) as runner:
        runner.catch_up()
        build = start_rebuild(runner.conn, PlayersProjection())
        assert start_rebuild(runner.conn, PlayersProjection()).build == build.build  # one at a time
        runner.step()
        cancelled = cancel_rebuild(runner.conn, "players")
        assert cancelled is not None
        assert cancelled.build == 2
        assert runner.catch_up() == 0
        assert [(b.build, b.active) for b in load_builds(runner.conn, ["players"])] == [(1, True)]
        assert physical_tables(runner) == {f"{base}_b1" for base in PlayersProjection.tables}


async def test_a_rebuild_under_concurrent_appends_ends_active_and_equal_to_a_fresh_build(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    events = mixed_events(6000, seed=14)
    log.append_sync(events[:3000])
    runner = ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=200, poll_interval=0.02
    )
    runner.catch_up()
    reader = open_views(views)  # readers use their own connection, as the API will
    served: list[bool] = []
    during_rebuild = 0

    async def ingest() -> None:
        nonlocal during_rebuild
        for start in range(3000, 6000, 150):
            await log.append(events[start : start + 150])
            served.append(get_player(reader, TENANT, ENV, "ply_1") is not None)
            during_rebuild += len(load_builds(reader, ["players"])) == 2
            await asyncio.sleep(0.01)

    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop=stop))
    try:
        rebuild = await asyncio.to_thread(runner.start_rebuild, "players")
        await ingest()
        for _ in range(500):
            builds = load_builds(reader, ["players"])
            if [(b.build, b.active) for b in builds] == [(rebuild.build, True)] and builds[
                0
            ].position == log.head():
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    try:
        builds = load_builds(runner.conn, ["players"])
        assert [(b.build, b.active, b.state) for b in builds] == [(2, True, "live")]
        assert builds[0].position == log.head() == 6000
        assert all(served)  # reads were answered all along
        assert during_rebuild > 0  # and appends went on while the rebuild ran
        assert physical_tables(runner) == {f"{base}_b2" for base in PlayersProjection.tables}
        assert dump(runner.conn) == fresh_build(log, tmp_path / "fresh.views.db")
    finally:
        reader.close()
        runner.close()
