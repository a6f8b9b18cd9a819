"""Builders for the games model's tests: catalogue items, rounds, table dumps."""

from __future__ import annotations

import itertools
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlite_utils

from eventstore import Envelope, EventLog, RecordedEvent
from projections import ProjectionRunner, physical_name
from projections.games import GamesProjection
from tests.projections.helpers import ENV, TENANT, iso, table_rows, track, unified

GAME_TABLES = GamesProjection.tables


def catalogue_item(
    game_id: str,
    *,
    when: datetime,
    unique_id: str,
    tenant: str = TENANT,
    environment: str = ENV,
    received: datetime | None = None,
    **fields: Any,
) -> Envelope:
    """A unified `game` item carrying exactly `fields` (pass None to send a JSON null)."""
    return unified(
        "game",
        {"unique_id": unique_id, "timestamp": iso(when), "game_id": game_id, **fields},
        tenant=tenant,
        environment=environment,
        received=received,
    )


def round_item(
    player_id: str,
    game_id: str,
    amount: Decimal | int,
    *,
    when: datetime,
    unique_id: str,
    round_id: str,
    is_win: bool = False,
    currency: str = "EUR",
    is_bonus: bool = False,
    tenant: str = TENANT,
    environment: str = ENV,
    received: datetime | None = None,
) -> Envelope:
    """A unified `gameround` bet (or win, with `is_win`)."""
    return unified(
        "gameround",
        {
            "unique_id": unique_id,
            "timestamp": iso(when),
            "player_id": player_id,
            "game_id": game_id,
            "round_id": round_id,
            "amount": amount,
            "currency": currency,
            "is_win": is_win,
            "is_bonus": is_bonus,
        },
        tenant=tenant,
        environment=environment,
        received=received,
    )


def track_bet(
    user_id: str,
    game_id: str,
    amount: Decimal | int,
    *,
    when: datetime,
    event_id: str,
    currency: str = "EUR",
    event_name: str = "bet_placed",
    tenant: str = TENANT,
    environment: str = ENV,
    received: datetime | None = None,
    **properties: Any,
) -> Envelope:
    """A track `bet_placed` (or `bet_won`) with the game it was played on."""
    field = "win_amount" if event_name == "bet_won" else "bet_amount"
    return track(
        user_id,
        event_name,
        when=when,
        event_id=event_id,
        properties={field: amount, "currency": currency, "game_id": game_id, **properties},
        tenant=tenant,
        environment=environment,
        received=received,
    )


def tie_consistent(order: list[int], times: list[int]) -> list[int]:
    """`order` with events of equal time put back in their original relative order: the
    merge breaks equal times by position, so only such orders must agree."""
    slots: dict[int, list[int]] = {}
    for index in order:
        slots.setdefault(times[index], []).append(index)
    taken = {t: iter(sorted(v)) for t, v in slots.items()}
    return [next(taken[times[index]]) for index in order]


def dump_games(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """All the games model's tables, through the views (the active build)."""
    return {base: table_rows(conn, base) for base in GAME_TABLES}


def fresh_games(log: EventLog, views: Path, *, page_size: int = 1000) -> dict[str, Any]:
    """Build the games model from zero into a new file; returns its tables."""
    with ProjectionRunner(log, [GamesProjection()], views=views, page_size=page_size) as runner:
        runner.catch_up()
        return dump_games(runner.conn)


def apply_in_memory(
    events: list[RecordedEvent], bounds: list[int]
) -> tuple[sqlite3.Connection, dict[str, str]]:
    """`events` applied straight to a fresh in-memory build, a page between each pair of
    `bounds`; returns the connection and the build's physical table names."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    projection = GamesProjection()
    tables = {base: physical_name(base, 1) for base in projection.tables}
    projection.create(sqlite_utils.Database(conn), tables)
    conn.execute("BEGIN")
    for lo, hi in itertools.pairwise(bounds):
        projection.apply(events[lo:hi], conn, tables)
    conn.execute("COMMIT")
    return conn, tables
