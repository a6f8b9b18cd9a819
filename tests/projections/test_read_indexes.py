"""Read indexes (`protocol.ReadIndexed`): a build catching up from zero does not
maintain the indexes only readers use; it gets them once it reaches the head, and a
rebuild has them before it swaps in."""

from __future__ import annotations

import sqlite3

from eventstore import EventLog
from projections import ProjectionRunner, get_player
from projections.database import ViewsConnection, ViewsLocation
from projections.ledger import get_ledger
from projections.standard import standard_projections
from tests.projections.helpers import BOTH_DATABASES, ENV, TENANT, mixed_events

NEVER = 10**9


def read_indexes(build: int, rebuilt: int | None = None) -> set[str]:
    """The read indexes of the standard projections' builds (the ledger's `rebuilt`)."""
    ledger = build if rebuilt is None else rebuilt
    return {
        f"players_b{build}_by_position",
        f"players_b{build}_by_updated_at",
        f"players_money_b{build}_by_owner",
        f"games_b{build}_by_position",
        f"games_b{build}_by_updated_at",
        f"ledger_b{ledger}_by_user",
        f"ledger_unreadable_b{ledger}_by_scope",
    }


def index_names(conn: ViewsConnection) -> set[str]:
    if isinstance(conn, sqlite3.Connection):
        found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    else:
        found = conn.execute(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        )
    return {name for (name,) in found}


@BOTH_DATABASES
def test_a_build_catching_up_from_zero_gets_its_read_indexes_when_it_reaches_the_head(
    log: EventLog, views: ViewsLocation
) -> None:
    log.append_sync(mixed_events(400, seed=41))
    with ProjectionRunner(
        log, standard_projections(), views=views, page_size=50, flush_events=NEVER
    ) as runner:
        assert runner.step() > 0
        assert not read_indexes(1) & index_names(runner.conn)
        runner.catch_up()
        assert read_indexes(1) <= index_names(runner.conn)
        assert all(state.position == 400 for state in runner.status())


@BOTH_DATABASES
def test_a_rebuild_swaps_in_with_its_read_indexes_and_reads_the_same(
    log: EventLog, views: ViewsLocation
) -> None:
    log.append_sync(mixed_events(400, seed=42))
    with ProjectionRunner(log, standard_projections(), views=views, page_size=50) as runner:
        runner.catch_up()
        players = {f"ply_{n}" for n in range(8)}
        before = {p: get_ledger(runner.conn, TENANT, ENV, p, limit=1000) for p in players}
        assert all(page.items for page in before.values())
        profiles = {p: get_player(runner.conn, TENANT, ENV, p) for p in players}
        runner.start_rebuild("ledger")
        runner.catch_up()
        (ledger,) = [s for s in runner.status() if s.name == "ledger"]
        assert ledger.build == 2
        assert read_indexes(1, rebuilt=2) <= index_names(runner.conn)
        assert {p: get_ledger(runner.conn, TENANT, ENV, p, limit=1000) for p in players} == before
        assert {p: get_player(runner.conn, TENANT, ENV, p) for p in players} == profiles
