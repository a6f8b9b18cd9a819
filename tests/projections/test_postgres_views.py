"""The read models in PostgreSQL: the same tables, row for row, as in SQLite."""

from __future__ import annotations

import contextlib
import logging
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from eventstore import EventLog
from projections import (
    PlayersProjection,
    ProjectionRunner,
    active_position,
    get_game,
    get_ledger,
    get_player,
    list_games,
    list_players,
    load_builds,
    open_views,
    read_transaction,
    write_transaction,
)
from projections.database import table_names
from projections.postgres_views import to_postgres
from projections.standard import standard_projections
from tests.projections.helpers import (
    ENV,
    STANDARD_TABLES,
    TENANT,
    dump_all,
    fresh_standard_build,
    mixed_events,
    money_mix_events,
)

pytestmark = pytest.mark.postgres


def test_statements_are_translated_once_for_psycopg() -> None:
    assert to_postgres("SELECT a FROM t WHERE b = ? AND c LIKE 'x%?'") == (
        "SELECT a FROM t WHERE b = %s AND c LIKE 'x%%?'"
    )
    assert to_postgres("x IN (SELECT value FROM json_each(?))") == (
        "x IN (SELECT value FROM json_array_elements_text(%s::json))"
    )
    assert to_postgres("FROM json_each(?) AS k WHERE k.value ->> 0 = a") == (
        "FROM json_array_elements(%s::json) AS k WHERE k.value ->> 0 = a"
    )
    with pytest.raises(ValueError, match="INSERT OR REPLACE"):
        to_postgres("INSERT OR REPLACE INTO t VALUES (?)")


def test_every_model_in_postgresql_equals_sqlite_row_for_row(
    log: EventLog, pg_views: str, tmp_path: Path
) -> None:
    # Pages of odd sizes split links, money and rounds differently from the fresh build.
    log.append_sync(money_mix_events(2500, seed=21) + mixed_events(800, seed=22, prefix="x"))
    with ProjectionRunner(log, standard_projections(), views=pg_views, page_size=173) as runner:
        assert runner.catch_up() == log.head() * len(runner.projections)
        in_postgres = dump_all(runner.conn)
    in_sqlite = fresh_standard_build(log, tmp_path / "fresh.views.db")
    assert all(in_sqlite.values())  # every table of every model has rows to compare
    assert in_postgres == in_sqlite


def test_reads_return_the_same_values_from_both_databases(
    log: EventLog, pg_views: str, tmp_path: Path
) -> None:
    log.append_sync(money_mix_events(1200, seed=5))
    answers = []
    for where in (pg_views, tmp_path / "v.db"):
        with ProjectionRunner(log, standard_projections(), views=where) as runner:
            runner.catch_up()
        conn = open_views(where)
        try:
            players = list_players(conn, TENANT, ENV, limit=1000)
            games = list_games(conn, TENANT, ENV, limit=1000)
            some = players.items[0].user_id
            answers.append(
                (
                    players,
                    games,
                    get_player(conn, TENANT, ENV, some),
                    get_game(conn, TENANT, ENV, games.items[0].game_id),
                    get_ledger(conn, TENANT, ENV, some, limit=1000),
                    get_player(conn, TENANT, ENV, "nobody"),
                )
            )
        finally:
            conn.close()
    in_postgres, in_sqlite = answers
    assert in_postgres == in_sqlite
    players = in_postgres[0].items
    assert any(p.money.eur.deposits.total > Decimal(0) for p in players)
    assert any(p.anonymous_ids for p in players)  # anonymous links were folded in


def test_the_tables_live_in_the_schema_of_the_url(pg_views: str) -> None:
    conn = open_views(pg_views)
    try:
        assert {"projection_builds", "projection_skips"} <= table_names(conn)
        assert not set(STANDARD_TABLES) & table_names(conn)  # views, once a build exists
    finally:
        conn.close()


@pytest.mark.parametrize(
    "first_read",
    ["SELECT count(*) FROM players", "SELECT max(position) FROM projection_builds"],
    ids=["holding-a-view", "holding-the-registry"],
)
def test_a_swap_gives_way_to_a_reader_under_way_and_happens_next_round(
    log: EventLog, pg_views: str, caplog: pytest.LogCaptureFixture, first_read: str
) -> None:
    caplog.set_level(logging.INFO, logger="playerlog.projections")
    log.append_sync(mixed_events(300, seed=7))
    reader = open_views(pg_views)
    try:
        with ProjectionRunner(log, [PlayersProjection()], views=pg_views) as runner:
            runner.catch_up()
            runner.start_rebuild("players")
            with read_transaction(reader):
                reader.execute(first_read).fetchone()
                runner.catch_up()  # the rebuild reaches the head while the reader reads
                assert [(b.build, b.active) for b in load_builds(runner.conn, ["players"])] == [
                    (1, True),
                    (2, False),
                ]
                assert "swapping next round" in caplog.text
                # the reader goes on reading the build its snapshot says is active
                assert active_position(reader, "players") == log.head()
                assert reader.execute("SELECT count(*) FROM players").fetchone()[0] > 0
            runner.catch_up()
            assert [(b.build, b.active) for b in load_builds(runner.conn, ["players"])] == [
                (2, True)
            ]
    finally:
        reader.close()


def test_a_write_transaction_whose_statement_failed_is_not_reported_committed(
    pg_views: str,
) -> None:
    def write_swallowing_an_error() -> None:
        with write_transaction(conn):
            conn.execute(
                "INSERT INTO projection_skips (name, build, position, skipped_by, "
                "skipped_at) VALUES (?, 1, 1, 'ops', 'now')",
                ("x",),
            )
            with contextlib.suppress(psycopg.errors.NotNullViolation):  # and carries on
                conn.execute("INSERT INTO projection_skips (name) VALUES (?)", ("y",))

    conn = open_views(pg_views)
    try:
        with pytest.raises(RuntimeError, match="rolled back, not committed"):
            write_swallowing_an_error()
        assert conn.execute("SELECT count(*) FROM projection_skips").fetchone() == (0,)
        assert not conn.in_transaction
    finally:
        conn.close()
