"""The ledger: one exact row per movement, queried per player with a stable cursor."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import msgspec
import pytest

from eventstore import Envelope, EventLog
from projections import ProjectionRunner, start_rebuild
from projections.ledger import (
    InvalidLedgerCursorError,
    LedgerEntry,
    LedgerProjection,
    UnreadableEvent,
    get_ledger,
    list_unreadable,
)
from projections.rates import Rates
from tests.projections.helpers import (
    BOTH_DATABASES,
    ENV,
    RECEIVED,
    TENANT,
    at,
    deposit_item,
    gameround_item,
    identify,
    mixed_events,
    money_track,
    table_rows,
    track,
    unified,
    withdraw_item,
)

RATES = Rates.parse("date,currency,rate\n2026-05-18,USD,1.25\n")


def ledger_runner(log: EventLog, views: Path, *, page_size: int = 1000) -> ProjectionRunner:
    return ProjectionRunner(log, [LedgerProjection(RATES)], views=views, page_size=page_size)


def build(log: EventLog, views: Path, envelopes: list[Envelope]) -> ProjectionRunner:
    log.append_sync(envelopes)
    runner = ledger_runner(log, views)
    runner.catch_up()
    return runner


def entries(runner: ProjectionRunner, user_id: str, **filters: object) -> list[LedgerEntry]:
    page = get_ledger(runner.conn, TENANT, ENV, user_id, **filters)  # type: ignore[arg-type]
    assert not page.has_more
    return page.items


def test_each_movement_is_one_exact_row_with_its_eur_figure(log: EventLog, views: Path) -> None:
    events = [
        deposit_item("ply_1", when=at(0), unique_id="d-1", amount=Decimal("100.10")),
        money_track(
            "ply_1",
            "bet_placed",
            Decimal("2.50"),
            when=at(1),
            event_id="b-1",
            currency="USD",
            game_id="gates_of_olympus",
            round_id="r-1",
        ),
        gameround_item(
            "ply_1",
            when=at(2),
            unique_id="w-1",
            amount=Decimal("7.3"),
            is_win=True,
            is_bonus=True,
            round_id="r-2",
        ),
        withdraw_item("ply_1", when=at(3), unique_id="x-1", amount=Decimal(40), currency="JPY"),
        money_track("ply_1", "bet_lost", 2, when=at(4), event_id="l-1"),  # moves nothing
    ]
    with build(log, views, events) as runner:
        page = get_ledger(runner.conn, TENANT, ENV, "ply_1")
        assert page.position == 5
        assert [
            (e.kind, e.wallet, e.amount, e.currency, e.amount_eur, e.unconverted)
            for e in page.items
        ] == [
            ("deposit", "cash", Decimal("100.10"), "EUR", Decimal("100.10"), False),
            ("bet", "cash", Decimal("2.50"), "USD", Decimal("2.00"), False),
            ("win", "bonus", Decimal("7.3"), "EUR", Decimal("7.3"), False),
            ("withdrawal", "cash", Decimal(40), "JPY", None, True),
        ]
        bet = page.items[1]
        assert (bet.position, bet.event_id, bet.user_id, bet.game_id, bet.round_id) == (
            2,
            "b-1",
            "ply_1",
            "gates_of_olympus",
            "r-1",
        )
        assert (bet.occurred_at, bet.received_at) == (at(1), RECEIVED)
        # JSON: amounts are strings holding the exact decimals
        encoded = msgspec.json.decode(msgspec.json.encode(page.items[0]))
        assert (encoded["amount"], encoded["amount_eur"]) == ("100.10", "100.10")
        stored = runner.conn.execute(
            "SELECT amount, amount_eur, unconverted FROM ledger ORDER BY position"
        ).fetchall()
        assert stored == [
            ("100.10", "100.10", 0),
            ("2.50", "2.00", 0),
            ("7.3", "7.3", 0),
            ("40", None, 1),
        ]


@BOTH_DATABASES
def test_pages_follow_event_time_without_gaps_or_repeats(log: EventLog, views: Path) -> None:
    rng = random.Random(3)
    seconds = rng.sample(range(1000), 25)  # logged out of time order
    events = [
        gameround_item(
            "ply_1", when=at(s), unique_id=f"g-{i}", amount=Decimal(i) / 100, is_win=i % 3 == 0
        )
        for i, s in enumerate(seconds)
    ]
    with build(log, views, events) as runner:
        seen: list[LedgerEntry] = []
        cursor = None
        while True:
            page = get_ledger(runner.conn, TENANT, ENV, "ply_1", cursor=cursor, limit=10)
            seen.extend(page.items)
            if not page.has_more:
                break
            cursor = page.next_cursor
        assert [e.occurred_at for e in seen] == sorted(at(s) for s in seconds)
        assert len({e.event_id for e in seen}) == 25
        wins = entries(runner, "ply_1", kind="win")
        assert {e.event_id for e in wins} == {f"g-{i}" for i in range(25) if i % 3 == 0}
        window = entries(runner, "ply_1", from_=at(200), to=at(600))
        assert [e.occurred_at for e in window] == sorted(at(s) for s in seconds if 200 <= s < 600)


@BOTH_DATABASES
def test_movements_under_an_anonymous_id_linked_later_belong_to_the_player(
    log: EventLog, views: Path
) -> None:
    events = [
        money_track("anon_1", "deposit_success", 20, when=at(0), event_id="d-anon"),
        money_track("ply_1", "bet_placed", 1, when=at(1), event_id="b-1"),
        identify("ply_1", when=at(2), anonymous_id="anon_1"),
    ]
    with build(log, views, events) as runner:
        assert [(e.event_id, e.user_id) for e in entries(runner, "ply_1")] == [
            ("d-anon", "anon_1"),
            ("b-1", "ply_1"),
        ]
        assert entries(runner, "anon_1") == []  # linked: its money is ply_1's
        # a newer link moves the anonymous id to another player
        log.append_sync([identify("ply_2", when=at(3), anonymous_id="anon_1")])
        runner.catch_up()
        assert [e.event_id for e in entries(runner, "ply_1")] == ["b-1"]
        assert [e.event_id for e in entries(runner, "ply_2")] == ["d-anon"]
        # an older link arriving late changes nothing
        log.append_sync([identify("ply_1", when=at(2.5), anonymous_id="anon_1")])
        runner.catch_up()
        assert [e.event_id for e in entries(runner, "ply_2")] == ["d-anon"]


def test_rows_are_scoped_by_tenant_and_environment(log: EventLog, views: Path) -> None:
    events = [
        deposit_item("ply_1", when=at(0), unique_id="d-a"),
        deposit_item("ply_1", when=at(0), unique_id="d-b", tenant="casino-b"),
        deposit_item("ply_1", when=at(0), unique_id="d-s", environment="staging"),
    ]
    with build(log, views, events) as runner:
        assert [e.event_id for e in entries(runner, "ply_1")] == ["d-a"]
        staging = get_ledger(runner.conn, TENANT, "staging", "ply_1").items
        assert [e.event_id for e in staging] == ["d-s"]


def test_rebuild_equals_live_row_for_row(log: EventLog, views: Path, tmp_path: Path) -> None:
    events = mixed_events(2000, seed=5) + [
        money_track(
            f"ply_{i % 7}",
            "bet_placed",
            Decimal(i) / 8 if i % 2 else Decimal("0.1"),
            when=at(i),
            event_id=f"usd-{i}",
            currency="USD",
        )
        for i in range(200)
    ]
    events += [
        track(
            f"ply_{i % 7}",
            "withdrawal_completed",
            when=at(i),
            event_id=f"no-amount-{i}",
            properties={"currency": "EUR"},
        )
        for i in range(30)
    ]
    random.Random(5).shuffle(events)
    rng = random.Random(6)
    with ledger_runner(log, views, page_size=41) as runner:
        done = 0
        while done < len(events):
            size = rng.randrange(1, 300)
            log.append_sync(events[done : done + size])
            done += size
            runner.catch_up()
        live = {t: table_rows(runner.conn, t) for t in LedgerProjection.tables}
        assert len(live["ledger"]) > 800
        assert len(live["ledger_unreadable"]) == 30
        start_rebuild(runner.conn, runner.projections["ledger"])
        runner.catch_up()
        assert {t: table_rows(runner.conn, t) for t in LedgerProjection.tables} == live
    with ledger_runner(log, tmp_path / "fresh.views.db") as fresh:
        fresh.catch_up()
        assert {t: table_rows(fresh.conn, t) for t in LedgerProjection.tables} == live


def test_track_money_it_cannot_read_is_listed_as_unreadable_not_a_row(
    log: EventLog, views: Path
) -> None:
    bad = money_track("ply_1", "bet_won", 5, when=at(1), event_id="bad-1")
    bad = msgspec.structs.replace(bad, payload=bad.payload.replace(b'"win_amount"', b'"winnings"'))
    events = [
        deposit_item("ply_1", when=at(0), unique_id="d-1"),
        bad,
        money_track("ply_1", "bet_placed", 2, when=at(2), event_id="b-1"),
    ]
    with build(log, views, events) as runner:
        (state,) = runner.status()
        assert not state.stopped
        assert state.error is None
        assert state.position == 3
        assert [e.event_id for e in entries(runner, "ply_1")] == ["d-1", "b-1"]
        page = list_unreadable(runner.conn, TENANT, ENV)
        assert page.position == 3
        assert page.items == [
            UnreadableEvent(
                position=2,
                event_id="bad-1",
                user_id="ply_1",
                type="bet_won",
                reason="track bet_won event 'bad-1': properties.win_amount is missing",
            )
        ]
        assert not page.has_more


def test_unified_money_it_cannot_read_stops_the_ledger_there(log: EventLog, views: Path) -> None:
    # Unified items are validated at ingest: one without an amount here is a bug.
    bad = unified(
        "withdraw",
        {"unique_id": "w-bad", "timestamp": "2026-05-18T14:38:01Z", "player_id": "ply_1"},
    )
    with build(log, views, [deposit_item("ply_1", when=at(0), unique_id="d-1"), bad]) as runner:
        (state,) = runner.status()
        assert state.stopped
        assert state.error is not None
        assert (state.error.position, state.error.event_id) == (2, "w-bad")
        assert "data.amount is missing" in state.error.message
        assert [e.event_id for e in entries(runner, "ply_1")] == ["d-1"]
        assert list_unreadable(runner.conn, TENANT, ENV).items == []


@BOTH_DATABASES
def test_unreadable_events_page_by_position_per_tenant_and_environment(
    log: EventLog, views: Path
) -> None:
    def no_amount(event_id: str, tenant: str = TENANT, environment: str = ENV) -> Envelope:
        return track(
            "ply_1",
            "withdrawal_completed",
            when=at(0),
            event_id=event_id,
            properties={"currency": "EUR"},
            tenant=tenant,
            environment=environment,
        )

    events = [no_amount(f"u-{i}") for i in range(5)] + [
        no_amount("other-tenant", tenant="casino-b"),
        no_amount("staging", environment="staging"),
    ]
    with build(log, views, events) as runner:
        seen: list[str] = []
        cursor = None
        while True:
            page = list_unreadable(runner.conn, TENANT, ENV, limit=2, cursor=cursor)
            seen.extend(e.event_id for e in page.items)
            if not page.has_more:
                break
            cursor = page.next_cursor
        assert seen == [f"u-{i}" for i in range(5)]
        staging = list_unreadable(runner.conn, TENANT, "staging").items
        assert [(e.event_id, e.position) for e in staging] == [("staging", 7)]
        assert "properties.amount is missing" in staging[0].reason
        with pytest.raises(InvalidLedgerCursorError):
            list_unreadable(runner.conn, TENANT, ENV, cursor="not-a-cursor")
        with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
            list_unreadable(runner.conn, TENANT, ENV, limit=1001)


def test_get_ledger_refuses_bad_input_and_answers_before_any_build(
    log: EventLog, views: Path
) -> None:
    with build(log, views, [deposit_item("ply_1", when=at(0), unique_id="d-1")]) as runner:
        with pytest.raises(InvalidLedgerCursorError):
            get_ledger(runner.conn, TENANT, ENV, "ply_1", cursor="not-a-cursor")
        with pytest.raises(ValueError, match="limit must be between 1 and 1000"):
            get_ledger(runner.conn, TENANT, ENV, "ply_1", limit=0)
        with pytest.raises(ValueError, match="kind must be one of deposit, withdrawal"):
            get_ledger(runner.conn, TENANT, ENV, "ply_1", kind="deposits")
    from projections import open_views  # noqa: PLC0415

    empty = open_views(views.with_name("empty.views.db"))
    assert get_ledger(empty, TENANT, ENV, "ply_1").position == 0
    assert list_unreadable(empty, TENANT, ENV).items == []
    empty.close()
