"""Helper processes: projections far behind the head fold in parallel, to the same
tables, and end with the runner that started them."""

from __future__ import annotations

import logging
import multiprocessing
from pathlib import Path

import pytest

from eventstore import EventLog
from projections import GamesProjection, PlayersProjection, ProjectionRunner
from projections.database import ViewsLocation, open_views
from projections.helpers import catch_up_cost, plan_groups
from projections.registry import load_builds
from projections.standard import standard_projections
from tests.projections.helpers import (
    BOTH_DATABASES,
    dump_all,
    fresh_standard_build,
    money_mix_events,
)

EVENTS = 3000


def helped_runner(log: EventLog, views: ViewsLocation) -> ProjectionRunner:
    """Small pages and a low threshold, so that a few thousand events need helpers."""
    return ProjectionRunner(
        log,
        standard_projections(),
        views=views,
        page_size=100,
        flush_events=700,
        processes=2,
        helper_min_events=500,
    )


def started_helpers(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "helper process" in r.getMessage()]


def test_groups_put_the_costliest_projection_alone_and_keep_the_given_order() -> None:
    players, games, ledger = standard_projections()
    assert catch_up_cost(players) > catch_up_cost(ledger) > catch_up_cost(games)
    assert plan_groups([players, games, ledger], 2) == [[players], [games, ledger]]
    assert plan_groups([players, games, ledger], 3) == [[players], [games], [ledger]]
    assert plan_groups([players, games, ledger], 8) == [[players], [games], [ledger]]
    assert plan_groups([players, games, ledger], 1) == [[players, games, ledger]]
    with pytest.raises(ValueError, match="processes"):
        plan_groups([players], 0)


def test_a_projection_without_a_cost_counts_as_one() -> None:
    class Plain(GamesProjection):
        catch_up_cost = None  # type: ignore[assignment]

    assert catch_up_cost(Plain()) == 1.0


def test_a_runner_needs_at_least_one_process(log: EventLog, views: Path) -> None:
    with pytest.raises(ValueError, match="processes"):
        ProjectionRunner(log, [PlayersProjection()], views=views, processes=0)


@BOTH_DATABASES
def test_helpers_bring_every_build_to_the_head_and_count_every_event_once(
    log: EventLog, views: ViewsLocation, caplog: pytest.LogCaptureFixture
) -> None:
    log.append_sync(money_mix_events(EVENTS, seed=31))
    head = log.head()
    caplog.set_level(logging.INFO, logger="playerlog.projections")
    with helped_runner(log, views) as runner:
        applied = runner.catch_up()
        assert runner.helping == frozenset()
    assert len(started_helpers(caplog)) == 2  # players; games and ledger
    # each build's events counted once, whoever applied them
    assert applied == head * 3
    conn = open_views(views)
    try:
        builds = load_builds(conn, ["players", "games", "ledger"])
    finally:
        conn.close()
    assert sorted((b.name, b.position, b.stopped, b.state) for b in builds) == [
        (name, head, False, "live") for name in ("games", "ledger", "players")
    ]


def test_what_helpers_build_equals_a_build_in_one_process(
    log: EventLog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log.append_sync(money_mix_events(EVENTS, seed=32))
    caplog.set_level(logging.INFO, logger="playerlog.projections")
    views = tmp_path / "helped.views.db"
    with helped_runner(log, views) as runner:
        runner.catch_up()
        helped = dump_all(runner.conn)
    assert started_helpers(caplog)
    assert helped == fresh_standard_build(log, tmp_path / "alone.views.db")
    assert all(helped.values())


def test_a_helper_that_cannot_start_leaves_its_projections_to_the_runner(
    log: EventLog, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log.append_sync(money_mix_events(EVENTS, seed=33))
    # the helpers open the log by its URL: one nobody can connect to
    log.backend.url = "postgresql://nobody@127.0.0.1:1/none"
    caplog.set_level(logging.INFO, logger="playerlog.projections")
    views = tmp_path / "helped.views.db"
    with helped_runner(log, views) as runner:
        runner.catch_up()
        built = dump_all(runner.conn)
    failed = [r.getMessage() for r in caplog.records if "exited with code" in r.getMessage()]
    assert len(failed) == 2
    assert built == fresh_standard_build(log, tmp_path / "alone.views.db")


def test_closing_the_runner_stops_its_helpers_and_keeps_what_they_flushed(
    log: EventLog, tmp_path: Path
) -> None:
    log.append_sync(money_mix_events(EVENTS, seed=34))
    views = tmp_path / "helped.views.db"
    runner = helped_runner(log, views)
    try:
        for _ in range(3):  # a page in this process, then the helpers start
            runner.step()
            if runner.helping:
                break
        assert runner.helping == {"players", "games", "ledger"}
    finally:
        runner.close()
    assert multiprocessing.active_children() == []
    # whatever they folded and flushed (or not) before stopping, the next run goes
    # on from their checkpoints to the same tables
    with ProjectionRunner(log, standard_projections(), views=views, processes=1) as again:
        again.catch_up()
        assert dump_all(again.conn) == fresh_standard_build(log, tmp_path / "alone.views.db")


def test_helpers_open_the_log_by_the_url_the_runner_was_given(
    log: EventLog, log_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The log's own URL leaves a PostgreSQL password out: callers pass theirs."""
    log.append_sync(money_mix_events(EVENTS, seed=35))
    log.backend.url = "postgresql://nobody@127.0.0.1:1/none"
    caplog.set_level(logging.INFO, logger="playerlog.projections")
    with ProjectionRunner(
        log,
        standard_projections(),
        views=tmp_path / "helped.views.db",
        page_size=100,
        processes=2,
        helper_min_events=500,
        log_url=log_url,
    ) as runner:
        runner.catch_up()
    assert len(started_helpers(caplog)) == 2
    assert not [r for r in caplog.records if "exited with code" in r.getMessage()]
