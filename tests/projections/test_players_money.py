"""Players' money: exact sums per currency and in EUR, bonus apart, anonymous ids included."""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import Envelope, EventLog, open_log
from projections import (
    PlayersProjection,
    Projection,
    ProjectionRunner,
    get_player,
    list_players,
)
from projections.ledger import LedgerProjection, get_ledger, list_unreadable
from projections.players import Flow, PlayerMoney
from projections.rates import Rates
from tests.projections.helpers import (
    ENV,
    TENANT,
    at,
    deposit_item,
    dump,
    gameround_item,
    identify,
    mixed_events,
    money_track,
    track,
    withdraw_item,
)

RATES = Rates.parse("date,currency,rate\n2026-05-18,USD,1.25\n2026-05-18,GBP,0.8\n")


def runner_for(log: EventLog, views: Path, *, page_size: int = 1000) -> ProjectionRunner:
    return ProjectionRunner(log, [PlayersProjection(RATES)], views=views, page_size=page_size)


def money_after(log: EventLog, views: Path, envelopes: list[Envelope], user: str) -> PlayerMoney:
    log.append_sync(envelopes)
    with runner_for(log, views) as runner:
        runner.catch_up()
        found = get_player(runner.conn, TENANT, ENV, user)
    assert found is not None
    return found.money


def test_sums_are_exact_decimals(log: EventLog, views: Path) -> None:
    money = money_after(
        log,
        views,
        [
            deposit_item("ply_1", when=at(0), unique_id="d-1", amount=Decimal("0.1")),
            deposit_item("ply_1", when=at(1), unique_id="d-2", amount=Decimal("0.2")),
        ],
        "ply_1",
    )
    deposits = money.currencies["EUR"].deposits
    assert deposits == Flow(count=2, total=Decimal("0.3"), first=at(0), last=at(1))
    assert money.eur.deposits.total == Decimal("0.3")
    assert msgspec.json.decode(msgspec.json.encode(money))["eur"]["deposits"]["total"] == "0.3"


def test_currencies_are_kept_apart_and_converted_into_eur(log: EventLog, views: Path) -> None:
    money = money_after(
        log,
        views,
        [
            deposit_item("ply_1", when=at(0), unique_id="d-eur", amount=Decimal("10.00")),
            deposit_item(
                "ply_1", when=at(1), unique_id="d-usd", amount=Decimal(50), currency="USD"
            ),
            deposit_item(
                "ply_1",
                when=at(2),
                unique_id="d-sek",
                amount=Decimal(100),
                currency="SEK",
                amount_eur=Decimal("8.73"),
            ),
            withdraw_item(
                "ply_1", when=at(3), unique_id="w-gbp", amount=Decimal(8), currency="GBP"
            ),
            deposit_item(
                "ply_1", when=at(4), unique_id="d-jpy", amount=Decimal(500), currency="JPY"
            ),
        ],
        "ply_1",
    )
    assert set(money.currencies) == {"EUR", "GBP", "JPY", "SEK", "USD"}
    assert money.currencies["USD"].deposits.total == Decimal(50)
    assert money.currencies["EUR"].deposits.total == Decimal("10.00")
    # 10.00 + 50 / 1.25 + 8.73 (as sent); the JPY deposit has no rate
    assert money.eur.deposits == Flow(count=3, total=Decimal("58.73"), first=at(0), last=at(2))
    assert money.eur.withdrawals.total == Decimal("10.00")  # 8 GBP / 0.8
    assert {code: (u.count, u.total) for code, u in money.unconverted.items()} == {
        "JPY": (1, Decimal(500))
    }


def test_bets_wins_and_ggr_with_bonus_money_apart(log: EventLog, views: Path) -> None:
    money = money_after(
        log,
        views,
        [
            gameround_item(
                "ply_1", when=at(0), unique_id="b-1", amount=Decimal("2.00"), round_id="r1"
            ),
            gameround_item(
                "ply_1",
                when=at(1),
                unique_id="w-1",
                amount=Decimal("0.50"),
                is_win=True,
                round_id="r1",
            ),
            money_track(
                "ply_1", "bet_placed", Decimal(1), when=at(2), event_id="b-2", wallet_type="bonus"
            ),
            money_track("ply_1", "bet_won", Decimal(4), when=at(3), event_id="w-2", is_bonus=True),
            money_track("ply_1", "cashback_credited", Decimal(3), when=at(4), event_id="c-1"),
            money_track("ply_1", "manual_adjustment_debit", Decimal(1), when=at(5), event_id="a-1"),
        ],
        "ply_1",
    )
    eur = money.currencies["EUR"]
    assert (eur.bets.total, eur.wins.total, eur.ggr) == (
        Decimal("2.00"),
        Decimal("0.50"),
        Decimal("1.50"),
    )
    assert (eur.bonus_bets.total, eur.bonus_wins.total, eur.bonus_ggr) == (
        Decimal(1),
        Decimal(4),
        Decimal(-3),
    )
    assert (eur.cashback.count, eur.adjustment_debits.total) == (1, Decimal(1))
    assert eur.deposits == Flow(count=0, total=Decimal(0), first=None, last=None)
    assert money.eur == eur  # all in EUR: the EUR view is the same figures


def test_anonymous_money_linked_after_equals_linked_before(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    money_events = [
        deposit_item("anon_7", when=at(10), unique_id="d-anon", amount=Decimal("25.5")),
        money_track(
            "anon_7", "bet_placed", Decimal("0.1"), when=at(11), event_id="b-anon", currency="USD"
        ),
        deposit_item("ply_7", when=at(12), unique_id="d-own", amount=Decimal("0.5")),
    ]
    link = identify("ply_7", when=at(1), anonymous_id="anon_7")
    after = money_after(log, views, [*money_events, link], "ply_7")
    other_log = open_log(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        before = money_after(other_log, tmp_path / "other.views.db", [link, *money_events], "ply_7")
    finally:
        other_log.close()
    assert after == before
    assert after.currencies["EUR"].deposits.total == Decimal("26.0")
    assert after.eur.bets.total == Decimal("0.08")  # 0.1 USD / 1.25


def test_a_moved_link_moves_the_money(log: EventLog, views: Path) -> None:
    log.append_sync(
        [
            deposit_item("anon_1", when=at(0), unique_id="d-1", amount=Decimal(5)),
            identify("ply_a", when=at(1), anonymous_id="anon_1"),
        ]
    )
    with runner_for(log, views) as runner:
        runner.catch_up()
        log.append_sync([identify("ply_b", when=at(2), anonymous_id="anon_1")])
        runner.catch_up()
        a = get_player(runner.conn, TENANT, ENV, "ply_a")
        b = get_player(runner.conn, TENANT, ENV, "ply_b")
        assert a is not None
        assert b is not None
        assert a.money.currencies == {}
        assert b.money.currencies["EUR"].deposits.total == Decimal(5)
        listed = {p.user_id: p.money for p in list_players(runner.conn, TENANT, ENV).items}
        assert listed["ply_b"] == b.money


AMOUNTS = st.decimals(min_value=0, max_value=10**9, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(AMOUNTS, st.sampled_from(["EUR", "USD", "BTC"])), min_size=1, max_size=40),
    st.integers(min_value=1, max_value=12),
)
def test_many_random_amounts_sum_exactly_per_currency(
    movements: list[tuple[Decimal, str]], page_size: int
) -> None:
    events = [
        gameround_item("ply_1", when=at(i), unique_id=f"g-{i}", amount=amount, currency=currency)
        for i, (amount, currency) in enumerate(movements)
    ]
    with tempfile.TemporaryDirectory() as folder:
        log = open_log(f"sqlite:///{folder}/log.db")
        try:
            log.append_sync(events)
            with runner_for(log, Path(folder) / "views.db", page_size=page_size) as runner:
                runner.catch_up()
                found = get_player(runner.conn, TENANT, ENV, "ply_1")
        finally:
            log.close()
    assert found is not None
    expected: dict[str, Decimal] = {}
    for amount, currency in movements:
        expected[currency] = expected.get(currency, Decimal(0)) + amount
    totals = {code: t.bets.total for code, t in found.money.currencies.items()}
    assert totals == expected
    # EUR: each USD bet converted and rounded to the cent on its own, then summed exactly
    usd_in_eur = sum(
        ((a / Decimal("1.25")).quantize(Decimal("0.01")) for a, c in movements if c == "USD"),
        Decimal(0),
    )
    assert found.money.eur.bets.total == expected.get("EUR", Decimal(0)) + usd_in_eur
    btc_count = sum(currency == "BTC" for _, currency in movements)
    btc = found.money.unconverted.get("BTC")
    if btc_count:
        assert btc is not None
        assert (btc.count, btc.total) == (btc_count, expected["BTC"])
    else:
        assert btc is None


def test_track_money_without_an_amount_stops_nothing_and_counts_only_as_activity(
    log: EventLog, views: Path
) -> None:
    no_amount = track(
        "ply_1",
        "withdrawal_completed",
        when=at(5),
        event_id="t-no-amount",
        properties={"currency": "EUR", "method": "Bank Transfer"},
    )
    before = [
        deposit_item("ply_1", when=at(0), unique_id="d-1", amount=Decimal("40.00")),
        money_track("ply_1", "bet_placed", 2, when=at(1), event_id="b-1"),
    ]
    projections: list[Projection] = [PlayersProjection(RATES), LedgerProjection(RATES)]
    log.append_sync(before)
    with ProjectionRunner(log, projections, views=views) as runner:
        runner.catch_up()
        earlier = get_player(runner.conn, TENANT, ENV, "ply_1")
        log.append_sync([no_amount])
        runner.catch_up()
        assert {s.name: (s.error, s.stopped, s.position) for s in runner.status()} == {
            "players": (None, False, 3),
            "ledger": (None, False, 3),
        }
        player = get_player(runner.conn, TENANT, ENV, "ply_1")
        (unreadable,) = list_unreadable(runner.conn, TENANT, ENV).items
        ledger = get_ledger(runner.conn, TENANT, ENV, "ply_1").items
    assert earlier is not None
    assert player is not None
    assert player.money == earlier.money  # no withdrawal, not even one of 0
    assert player.money.currencies["EUR"].withdrawals.count == 0
    assert (player.event_count, player.last_seen) == (earlier.event_count + 1, at(5))
    assert [e.event_id for e in ledger] == ["d-1", "b-1"]
    assert (unreadable.position, unreadable.event_id, unreadable.type) == (
        3,
        "t-no-amount",
        "withdrawal_completed",
    )
    assert "properties.amount is missing" in unreadable.reason


def test_rebuild_equals_live_for_players_money(log: EventLog, views: Path, tmp_path: Path) -> None:
    rng = random.Random(9)
    extra: list[Envelope] = []
    for i in range(600):
        user = rng.choice(["ply_1", "ply_2", "anon_3", "anon_4"])
        when = datetime(2026, 5, 18, tzinfo=UTC).replace(second=i % 60, minute=i // 60)
        if i % 50 == 0:
            extra.append(
                identify(
                    rng.choice(["ply_1", "ply_2"]),
                    when=when,
                    anonymous_id=rng.choice(["anon_3", "anon_4"]),
                )
            )
        elif i % 37 == 0:  # money nobody can read: activity only
            extra.append(
                track(
                    user,
                    "deposit_success",
                    when=when,
                    event_id=f"m-{i}",
                    properties={"amount": "lots", "currency": "EUR"},
                )
            )
        else:
            extra.append(
                money_track(
                    user,
                    rng.choice(["bet_placed", "bet_won", "deposit_success"]),
                    Decimal(rng.randrange(1, 10**6)) / 1000,
                    when=when,
                    event_id=f"m-{i}",
                    currency=rng.choice(["EUR", "USD", "GBP", "JPY"]),
                )
            )
    events = mixed_events(1500, seed=9) + extra
    rng.shuffle(events)
    with runner_for(log, views, page_size=53) as runner:
        done = 0
        while done < len(events):
            size = rng.randrange(1, 250)
            log.append_sync(events[done : done + size])
            done += size
            runner.catch_up()
        live = dump(runner.conn)
        assert len(live["players_money"]) > 20
        runner.start_rebuild("players")
        runner.catch_up()
        assert dump(runner.conn) == live
    with runner_for(log, tmp_path / "fresh.views.db") as fresh:
        fresh.catch_up()
        assert dump(fresh.conn) == live
