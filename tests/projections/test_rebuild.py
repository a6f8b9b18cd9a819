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
from projections.database import table_names
from projections.standard import standard_projections
from tests.projections.helpers import (
    BOTH_DATABASES,
    ENV,
    STANDARD_TABLES,
    TENANT,
    dump,
    dump_all,
    fresh_build,
    fresh_standard_build,
    mixed_events,
    money_mix_events,
)

V1 = PlayersProjection.version
V2 = V1 + 1


class PlayersV2(PlayersProjection):
    version = V2


def physical_tables(runner: ProjectionRunner) -> set[str]:
    return {name for name in table_names(runner.conn) if name.startswith("players")}


@BOTH_DATABASES
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


@BOTH_DATABASES
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


@BOTH_DATABASES
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


@BOTH_DATABASES
async def test_a_rebuild_under_concurrent_appends_ends_active_and_equal_to_a_fresh_build(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    # Every standard projection rebuilt at once, as `playerlog projections rebuild --all`.
    events = money_mix_events(4500, seed=14)
    half = len(events) // 2
    log.append_sync(events[:half])
    runner = ProjectionRunner(
        log, standard_projections(), views=views, page_size=200, poll_interval=0.02
    )
    runner.catch_up()
    names = sorted(runner.projections)
    reader = open_views(views)  # readers use their own connection, as the API will
    served: list[bool] = []
    during_rebuild = 0

    async def ingest() -> None:
        nonlocal during_rebuild
        for start in range(half, len(events), 150):
            await log.append(events[start : start + 150])
            served.append(get_player(reader, TENANT, ENV, "ply_1") is not None)
            during_rebuild += len(load_builds(reader, names)) > len(names)
            await asyncio.sleep(0.01)

    def swapped_in_at_head() -> bool:
        builds = load_builds(reader, names)
        return [(b.name, b.build, b.active) for b in builds] == [
            (name, 2, True) for name in names
        ] and all(b.position == log.head() for b in builds)

    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop=stop))
    try:
        for name in names:
            assert (await asyncio.to_thread(runner.start_rebuild, name)).build == 2
        await ingest()
        for _ in range(500):
            if swapped_in_at_head():
                break
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    try:
        builds = load_builds(runner.conn, names)
        assert [(b.name, b.build, b.active, b.state) for b in builds] == [
            (name, 2, True, "live") for name in names
        ]
        assert {b.position for b in builds} == {log.head()} == {len(events)}
        assert all(served)  # reads were answered all along
        assert during_rebuild > 0  # and appends went on while the rebuild ran
        tables = {
            name
            for name in table_names(runner.conn)
            if name.rsplit("_b", 1)[0] in STANDARD_TABLES
        }
        assert tables == {f"{base}_b2" for base in STANDARD_TABLES}
        fresh = fresh_standard_build(log, tmp_path / "fresh.views.db")
        assert all(fresh.values())  # every table of every model has rows to compare
        assert dump_all(runner.conn) == fresh
    finally:
        reader.close()
        runner.close()
