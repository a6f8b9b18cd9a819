"""The games model: catalogue merge, play per currency, rebuilds, scoping and listing."""

from __future__ import annotations

import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import Envelope, EventLog
from projections import InvalidCursorError, ProjectionRunner, open_views
from projections.games import Game, GamesProjection, GameStats, get_game, list_games
from tests.projections.games_helpers import (
    apply_in_memory,
    catalogue_item,
    dump_games,
    fresh_games,
    round_item,
    tie_consistent,
    track_bet,
)
from tests.projections.helpers import (
    BOTH_DATABASES,
    ENV,
    RECEIVED,
    TENANT,
    at,
    identify,
    mixed_events,
    recorded,
    track,
)


def build(
    log: EventLog, views: Path, envelopes: list[Envelope], page_size: int = 1000
) -> ProjectionRunner:
    log.append_sync(envelopes)
    runner = ProjectionRunner(log, [GamesProjection()], views=views, page_size=page_size)
    runner.catch_up()
    return runner


def game(
    runner: ProjectionRunner, game_id: str, tenant: str = TENANT, environment: str = ENV
) -> Game:
    found = get_game(runner.conn, tenant, environment, game_id)
    assert found is not None, f"{game_id} not found"
    return found


SEED = catalogue_item(
    "GD8",
    when=at(0),
    unique_id="g-seed",
    name="Gates of Olympus",
    provider="Pragmatic Play",
    categories=["video-slots"],
    features=["bonus-buy", "tumble"],
    themes=["mythology"],
    device="desktop",
    has_freespins="yes",
)
RENAME = catalogue_item("GD8", when=at(60), unique_id="g-rename", name="Gates of Olympus 1000")
STALE = catalogue_item(
    "GD8", when=at(30), unique_id="g-stale", name="Gates (old)", device="mobile", themes=None
)


# -- catalogue ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order",
    [[SEED, STALE, RENAME], [RENAME, STALE, SEED], [STALE, RENAME, SEED]],
    ids=["in-order", "newest-first", "shuffled"],
)
def test_catalogue_fields_merge_by_event_time_whatever_the_arrival_order(
    log: EventLog, views: Path, order: list[Envelope]
) -> None:
    with build(log, views, order, page_size=1) as runner:
        got = game(runner, "GD8")
    assert got.name == "Gates of Olympus 1000"  # t=60 beats the stale t=30
    assert got.provider == "Pragmatic Play"
    assert got.categories == ["video-slots"]
    assert got.features == ["bonus-buy", "tumble"]
    assert got.themes is None  # t=30 sent null, after the seed's t=0
    assert got.device == "mobile"
    assert got.has_freespins == "yes"
    assert got.stats == {}
    assert got.position == 3


def test_an_absent_field_keeps_the_stored_value_and_a_null_clears_it(
    log: EventLog, views: Path
) -> None:
    update = catalogue_item("GD8", when=at(10), unique_id="g-2", provider=None, device="tablet")
    with build(log, views, [SEED, update]) as runner:
        got = game(runner, "GD8")
        stored = runner.conn.execute(
            "SELECT field, value FROM games_fields WHERE game_id = 'GD8' AND position = 2"
        ).fetchall()
    assert (got.name, got.provider, got.device) == ("Gates of Olympus", None, "tablet")
    assert sorted(stored) == [("device", '"tablet"'), ("provider", "null")]


def test_equal_timestamps_go_to_the_later_log_position(log: EventLog, views: Path) -> None:
    first = catalogue_item("GD8", when=at(5), unique_id="g-1", name="First")
    second = catalogue_item("GD8", when=at(5), unique_id="g-2", name="Second")
    with build(log, views, [first, second]) as runner:
        assert game(runner, "GD8").name == "Second"


def test_a_bad_catalogue_field_stops_the_projection_naming_the_field(
    log: EventLog, views: Path
) -> None:
    bad = catalogue_item("GD9", when=at(1), unique_id="g-bad", has_freespins="maybe")
    with build(log, views, [SEED, bad]) as runner:
        (state,) = runner.status()
        assert game(runner, "GD8").name == "Gates of Olympus"
        assert get_game(runner.conn, TENANT, ENV, "GD9") is None
    assert state.stopped
    assert state.error is not None
    assert (state.error.position, state.error.event_id) == (2, "g-bad")
    assert "data.has_freespins" in state.error.message
    assert '"maybe"' in state.error.message


# -- play ---------------------------------------------------------------------------------------


def test_a_game_seen_only_in_play_appears_with_an_empty_catalogue(
    log: EventLog, views: Path
) -> None:
    events = [
        round_item("StQ-1", "GD1", Decimal("0.5"), when=at(1), unique_id="b-1", round_id="r1"),
        track_bet("ply_1", "gates_of_olympus", 2, when=at(2), event_id="t-1"),
    ]
    with build(log, views, events) as runner:
        unified_only, track_only = game(runner, "GD1"), game(runner, "gates_of_olympus")
    for got in (unified_only, track_only):
        assert (got.name, got.provider, got.categories, got.has_freespins) == (
            None,
            None,
            None,
            None,
        )
    assert unified_only.stats["EUR"].bets == Decimal("0.5")
    assert track_only.stats["EUR"].bets == Decimal(2)


def test_events_that_move_no_money_on_a_game_do_not_create_it(log: EventLog, views: Path) -> None:
    events = [
        track(
            "ply_1",
            "game_opened",
            when=at(1),
            event_id="t-1",
            properties={"game_id": "GX", "provider_id": "p", "game_type": "slot"},
        ),
        track(
            "ply_1",
            "bet_lost",  # repeats a stake already counted by its bet_placed
            when=at(2),
            event_id="t-2",
            properties={"bet_amount": 2, "currency": "EUR", "game_id": "GY"},
        ),
        track(
            "ply_1",
            "bet_placed",
            when=at(3),
            event_id="t-3",
            properties={"bet_amount": 1, "currency": "EUR"},
        ),
        identify("ply_1", when=at(4), traits={"favourite_game": "GZ"}),
    ]
    with build(log, views, events) as runner:
        assert runner.conn.execute("SELECT count(*) FROM games").fetchone()[0] == 0
        (state,) = runner.status()
    assert not state.stopped
    assert state.position == 4


@BOTH_DATABASES
def test_stats_are_exact_and_kept_apart_per_currency(log: EventLog, views: Path) -> None:
    events = [
        round_item("p1", "GD8", Decimal("0.1"), when=at(1), unique_id="b-1", round_id="r1"),
        round_item("p1", "GD8", Decimal("0.2"), when=at(2), unique_id="b-2", round_id="r2"),
        round_item(
            "p1", "GD8", Decimal("0.30"), when=at(3), unique_id="w-2", round_id="r2", is_win=True
        ),
        round_item(
            "p2",
            "GD8",
            Decimal("10.005"),
            when=at(4),
            unique_id="b-3",
            round_id="r3",
            currency="USD",
        ),
    ]
    with build(log, views, [SEED, *events], page_size=2) as runner:
        got = game(runner, "GD8")
        stored = runner.conn.execute(
            "SELECT currency, bets, wins, ggr FROM games_stats ORDER BY currency"
        ).fetchall()
    assert got.stats == {
        "EUR": GameStats(
            rounds=2,
            bets=Decimal("0.3"),
            wins=Decimal("0.30"),
            ggr=Decimal("0.00"),
            bonus_bets=Decimal(0),
            bonus_wins=Decimal(0),
            win_count=1,
            players=1,
        ),
        "USD": GameStats(
            rounds=1,
            bets=Decimal("10.005"),
            wins=Decimal(0),
            ggr=Decimal("10.005"),
            bonus_bets=Decimal(0),
            bonus_wins=Decimal(0),
            win_count=0,
            players=1,
        ),
    }
    assert stored == [("EUR", "0.3", "0.30", "0.00"), ("USD", "10.005", "0", "10.005")]
    # in JSON, amounts are strings holding the exact decimal
    wire = msgspec.json.decode(msgspec.json.encode(got))
    assert wire["stats"]["EUR"]["bets"] == "0.3"
    assert wire["stats"]["USD"]["ggr"] == "10.005"


def test_every_bet_is_a_round_and_wins_pair_with_them_without_adding_rounds(
    log: EventLog, views: Path
) -> None:
    events = [
        # a bet and its win (one round), each in a page of its own
        round_item("p1", "GD8", 1, when=at(1), unique_id="b-1", round_id="r1"),
        round_item("p1", "GD8", 3, when=at(2), unique_id="w-1", round_id="r1", is_win=True),
        # a win alone adds to the wins, not to the rounds
        round_item("p1", "GD8", 5, when=at(3), unique_id="w-2", round_id="r2", is_win=True),
        # track bets: paired by round_id, and one without any round id (still a round)
        track_bet("p1", "GD8", 2, when=at(4), event_id="t-1", round_id="r3"),
        track_bet("p1", "GD8", 4, when=at(5), event_id="t-2", event_name="bet_won", round_id="r3"),
        track_bet("p1", "GD8", 2, when=at(6), event_id="t-3"),
        track_bet("p1", "GD8", 1, when=at(7), event_id="t-4", event_name="bet_won"),
    ]
    with build(log, views, events, page_size=1) as runner:
        stats = game(runner, "GD8").stats["EUR"]
    assert (stats.rounds, stats.win_count) == (3, 4)
    assert (stats.bets, stats.wins, stats.ggr) == (Decimal(5), Decimal(13), Decimal(-8))


def test_players_are_counted_once_per_game_and_currency(log: EventLog, views: Path) -> None:
    events = [
        round_item(p, g, 1, when=at(i), unique_id=f"b-{i}", round_id=f"r{i}", currency=c)
        for i, (p, g, c) in enumerate(
            [
                ("p1", "GD8", "EUR"),
                ("p1", "GD8", "EUR"),
                ("p2", "GD8", "EUR"),
                ("p1", "GD8", "USD"),
                ("p3", "GD1", "EUR"),
                ("p2", "GD8", "EUR"),
                ("p1", "GD1", "EUR"),
            ]
        )
    ]
    with build(log, views, events, page_size=3) as runner:
        gd8, gd1 = game(runner, "GD8"), game(runner, "GD1")
        members = runner.conn.execute(
            "SELECT game_id, currency, user_id FROM games_players ORDER BY 1, 2, 3"
        ).fetchall()
    assert (gd8.stats["EUR"].players, gd8.stats["USD"].players, gd1.stats["EUR"].players) == (
        2,
        1,
        2,
    )
    assert members == [
        ("GD1", "EUR", "p1"),
        ("GD1", "EUR", "p3"),
        ("GD8", "EUR", "p1"),
        ("GD8", "EUR", "p2"),
        ("GD8", "USD", "p1"),
    ]


def test_bonus_wallet_play_is_part_of_the_totals_and_shown_apart(
    log: EventLog, views: Path
) -> None:
    events = [
        round_item("p1", "GD8", Decimal("1.25"), when=at(1), unique_id="b-1", round_id="r1"),
        round_item(
            "p1", "GD8", Decimal("0.75"), when=at(2), unique_id="b-2", round_id="r2", is_bonus=True
        ),
        round_item(
            "p1", "GD8", 2, when=at(3), unique_id="w-2", round_id="r2", is_win=True, is_bonus=True
        ),
        track_bet("p1", "GD8", Decimal("0.5"), when=at(4), event_id="t-1", wallet_type="bonus"),
    ]
    with build(log, views, events) as runner:
        stats = game(runner, "GD8").stats["EUR"]
    assert (stats.bets, stats.bonus_bets) == (Decimal("2.50"), Decimal("1.25"))
    assert (stats.wins, stats.bonus_wins, stats.ggr) == (Decimal(2), Decimal(2), Decimal("0.50"))


def test_track_money_it_cannot_read_counts_nowhere_and_stops_nothing(
    log: EventLog, views: Path
) -> None:
    events = [
        SEED,
        track(
            "p1",
            "bet_placed",
            when=at(2),
            event_id="t-bad",
            properties={"bet_amount": "lots", "currency": "EUR", "game_id": "GD8"},
        ),
        track_bet("p2", "GD9", 1, when=at(3), event_id="t-no-currency", currency=""),
        track_bet("p1", "GD8", Decimal("1.50"), when=at(4), event_id="t-ok"),
    ]
    with build(log, views, events) as runner:
        (state,) = runner.status()
        stats = game(runner, "GD8").stats
        unknown = get_game(runner.conn, TENANT, ENV, "GD9")
    assert (state.error, state.stopped, state.position) == (None, False, 4)
    assert set(stats) == {"EUR"}
    assert (stats["EUR"].rounds, stats["EUR"].bets, stats["EUR"].players) == (
        1,
        Decimal("1.50"),
        1,
    )
    assert unknown is None  # a game named only by unreadable money is not created


def test_bad_money_in_a_unified_round_stops_the_projection(log: EventLog, views: Path) -> None:
    # Unified items are validated at ingest: bad money here is a bug, so it stops.
    bad = round_item("p1", "GD8", 1, when=at(2), unique_id="r-bad", round_id="r", currency="")
    with build(log, views, [SEED, bad]) as runner:
        (state,) = runner.status()
        assert game(runner, "GD8").stats == {}
    assert state.error is not None
    assert (state.error.position, state.error.event_id) == (2, "r-bad")
    assert "data.currency" in state.error.message


# -- any order, any page split (hypothesis) -----------------------------------------------------

GAMES = ["GD1", "GD2"]
NAMES = st.one_of(st.none(), st.sampled_from(["Gates", "Sweet Bonanza"]))
LISTS = st.one_of(st.none(), st.lists(st.sampled_from(["slots", "live", "megaways"]), max_size=2))
AMOUNTS = st.sampled_from([Decimal("0.1"), Decimal("0.2"), Decimal("1.50"), Decimal(2)])


@st.composite
def operation(draw: st.DrawFn) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(["game", "bet", "win"]))
    time = draw(st.integers(0, 3))  # few distinct times: ties are common
    game_id = draw(st.sampled_from(GAMES))
    if kind == "game":
        fields = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "name": NAMES,
                    "provider": st.one_of(st.none(), st.just("NetEnt")),
                    "categories": LISTS,
                    "has_freespins": st.one_of(st.none(), st.sampled_from(["yes", "no"])),
                },
            )
        )
        return (kind, game_id, time, fields)
    return (
        kind,
        game_id,
        time,
        draw(st.sampled_from(["p1", "p2", "p3"])),
        draw(st.sampled_from(["EUR", "USD"])),
        draw(st.one_of(st.none(), st.sampled_from(["r1", "r2", "r3"]))),
        draw(AMOUNTS),
        draw(st.booleans()),  # bonus
    )


def envelope(op: tuple[Any, ...], n: int) -> Envelope:
    kind, game_id, time = op[0], op[1], op[2]
    if kind == "game":
        return catalogue_item(game_id, when=at(time), unique_id=f"g-{n}", **op[3])
    _, _, _, player, currency, round_id, amount, bonus = op
    name = "bet_placed" if kind == "bet" else "bet_won"
    extra = {} if round_id is None else {"round_id": round_id}
    return track_bet(
        player,
        game_id,
        amount,
        when=at(time),
        event_id=f"t-{n}",
        currency=currency,
        event_name=name,
        wallet_type="bonus" if bonus else "cash",
        **extra,
    )


def project(envelopes: list[Envelope], cuts: list[bool]) -> dict[str, list[tuple[Any, ...]]]:
    """Every table, after applying `envelopes` in pages (a new page after event i where
    `cuts[i]`)."""
    events = recorded(envelopes)
    bounds = [0, *(i + 1 for i, cut in enumerate(cuts) if cut), len(events)]
    conn, tables = apply_in_memory(events, bounds)
    return {
        base: conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2, 3, 4, 5").fetchall()
        for base, name in tables.items()
    }


def without_positions(tables: dict[str, list[tuple[Any, ...]]]) -> dict[str, Any]:
    """The columns that must not depend on arrival order (positions and times do)."""
    return {
        "games": [row[:10] for row in tables["games"]],
        "stats": [row[:12] for row in tables["games_stats"]],
        "players": tables["games_players"],
    }


def oracle(ops: list[tuple[Any, ...]]) -> tuple[dict[str, dict[str, Any]], dict[Any, Any]]:
    """The expected catalogue and stats, straight from the rules (index = tie order)."""
    fields: dict[tuple[str, str], tuple[int, int, Any]] = {}
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    for i, op in enumerate(ops):
        if op[0] == "game":
            for name, value in op[3].items():
                slot = (op[1], name)
                if slot not in fields or (op[2], i) > fields[slot][:2]:
                    fields[slot] = (op[2], i, value)
            continue
        kind, game_id, _, player, currency, _, amount, bonus = op
        s = stats.setdefault(
            (game_id, currency),
            {"bets": Decimal(0), "wins": Decimal(0), "bonus": Decimal(0), "rounds": 0},
        )
        s["bets" if kind == "bet" else "wins"] += amount
        s["bonus"] += amount if bonus and kind == "bet" else 0
        s["players"] = s.get("players", set()) | {player}
        s["rounds"] += kind == "bet"
    catalogue = {g: {n: v[2] for (gg, n), v in fields.items() if gg == g} for g in GAMES}
    return catalogue, stats


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(operation(), min_size=1, max_size=14), data=st.data())
def test_any_order_and_any_page_split_give_the_same_games(
    ops: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    envelopes = [envelope(op, n) for n, op in enumerate(ops)]
    order = tie_consistent(data.draw(st.permutations(range(len(ops)))), [op[2] for op in ops])
    cuts = data.draw(st.lists(st.booleans(), min_size=len(ops) - 1, max_size=len(ops) - 1))
    one_page = project(envelopes, [])
    assert project(envelopes, cuts) == one_page  # where pages are cut changes nothing at all
    shuffled = project([envelopes[i] for i in order], cuts)
    assert without_positions(shuffled) == without_positions(one_page)

    catalogue, stats = oracle(ops)
    for row in one_page["games"]:
        game_id, name, provider, categories, has_freespins = (
            row[2],
            row[3],
            row[4],
            row[5],
            row[9],
        )
        expected = catalogue[game_id]
        assert name == expected.get("name")
        assert provider == expected.get("provider")
        expected_categories = expected.get("categories")
        assert categories == (
            None
            if expected_categories is None
            else msgspec.json.encode(expected_categories).decode()
        )
        assert has_freespins == expected.get("has_freespins")
    assert {row[2] for row in one_page["games"]} == {op[1] for op in ops}
    for row in one_page["games_stats"]:
        game_id, currency, rounds, bets, wins, ggr, bonus_bets = row[2:9]
        s = stats[(game_id, currency)]
        assert Decimal(bets) == s["bets"]
        assert Decimal(wins) == s["wins"]
        assert Decimal(ggr) == s["bets"] - s["wins"]
        assert Decimal(bonus_bets) == s["bonus"]
        assert rounds == s["rounds"]
        assert row[11] == len(s["players"])
    assert len(one_page["games_stats"]) == len(stats)


# -- rebuild, scoping -------------------------------------------------------------------------


def played_events(count: int, seed: int) -> list[Envelope]:
    """Rounds and catalogue updates over a few games, players and currencies."""
    rng = random.Random(seed)
    out: list[Envelope] = []
    for i in range(count):
        game_id = f"game_{rng.randrange(6)}"
        when = at(rng.randrange(0, 3600))
        roll = rng.random()
        if roll < 0.1:
            out.append(
                catalogue_item(
                    game_id,
                    when=when,
                    unique_id=f"c-{i}",
                    name=rng.choice(["A", "B", None]),
                    categories=rng.choice([["slots"], None]),
                    has_freespins=rng.choice(["yes", "no", "unknown"]),
                )
            )
        else:
            out.append(
                round_item(
                    f"p{rng.randrange(30)}",
                    game_id,
                    Decimal(rng.randrange(1, 1000)) / 100,
                    when=when,
                    unique_id=f"r-{i}",
                    round_id=f"round-{rng.randrange(count // 2)}",
                    is_win=rng.random() < 0.4,
                    currency=rng.choice(["EUR", "USD", "BTC"]),
                    is_bonus=rng.random() < 0.2,
                )
            )
    return out


def test_rebuild_equals_live_row_for_row(log: EventLog, views: Path, tmp_path: Path) -> None:
    unreadable = [
        track_bet(f"p{i}", "game_1", 1, when=at(i), event_id=f"u-{i}", currency="not a code")
        for i in range(20)
    ]
    events = played_events(1500, seed=3) + mixed_events(1500, seed=4, prefix="m") + unreadable
    random.Random(5).shuffle(events)
    rng = random.Random(6)
    with ProjectionRunner(log, [GamesProjection()], views=views, page_size=29) as runner:
        done = 0
        while done < len(events):
            size = rng.randrange(1, 300)
            log.append_sync(events[done : done + size])
            done += size
            runner.catch_up()
        live = dump_games(runner.conn)
        assert runner.start_rebuild("games").build == 2
        runner.catch_up()
        assert dump_games(runner.conn) == live
    assert fresh_games(log, tmp_path / "fresh.views.db", page_size=1000) == live
    assert len(live["games"]) > 6  # the mix's own games too


def test_rows_are_scoped_by_tenant_and_environment(log: EventLog, views: Path) -> None:
    events = [
        catalogue_item("GD8", when=at(1), unique_id="a-1", name="A"),
        catalogue_item("GD8", when=at(1), unique_id="b-1", name="B", tenant="casino-b"),
        catalogue_item("GD8", when=at(1), unique_id="s-1", name="S", environment="staging"),
        round_item("p1", "GD8", 7, when=at(2), unique_id="b-2", round_id="r1", tenant="casino-b"),
        round_item("p1", "GD8", 1, when=at(2), unique_id="a-2", round_id="r1"),
    ]
    with build(log, views, events) as runner:
        mine, theirs = game(runner, "GD8"), game(runner, "GD8", tenant="casino-b")
        staging = game(runner, "GD8", environment="staging")
        assert get_game(runner.conn, "casino-c", ENV, "GD8") is None
        listed = list_games(runner.conn, TENANT, ENV)
    assert (mine.name, theirs.name, staging.name) == ("A", "B", "S")
    assert (mine.stats["EUR"].bets, theirs.stats["EUR"].bets) == (Decimal(1), Decimal(7))
    assert (mine.stats["EUR"].rounds, theirs.stats["EUR"].rounds) == (1, 1)
    assert staging.stats == {}
    assert [(g.tenant, g.environment, g.name) for g in listed.items] == [(TENANT, ENV, "A")]


def test_position_and_updated_at_follow_the_last_event_touching_the_game(
    log: EventLog, views: Path
) -> None:
    events = [
        catalogue_item("GD8", when=at(1), unique_id="c-1", name="A", received=RECEIVED),
        round_item(
            "p1",
            "GD1",
            1,
            when=at(2),
            unique_id="b-1",
            round_id="r1",
            received=RECEIVED + timedelta(seconds=5),
        ),
        round_item(
            "p1",
            "GD8",
            1,
            when=at(0),  # an old round arriving late still changes the stats
            unique_id="b-2",
            round_id="r2",
            received=RECEIVED + timedelta(seconds=9),
        ),
    ]
    with build(log, views, events) as runner:
        gd8, gd1 = game(runner, "GD8"), game(runner, "GD1")
    assert (gd8.position, gd8.updated_at) == (3, RECEIVED + timedelta(seconds=9))
    assert (gd1.position, gd1.updated_at) == (2, RECEIVED + timedelta(seconds=5))


@BOTH_DATABASES
def test_reads_before_any_build_find_nothing(views: Path) -> None:
    conn = open_views(views)
    try:
        assert get_game(conn, TENANT, ENV, "GD8") is None
        page = list_games(conn, TENANT, ENV)
        assert (page.items, page.has_more, page.position) == ([], False, 0)
    finally:
        conn.close()


# -- listing ------------------------------------------------------------------------------------


def _catalogue_of_ten(log: EventLog, views: Path) -> ProjectionRunner:
    events = [
        catalogue_item(
            f"game_{i}",
            when=at(i),
            unique_id=f"c-{i}",
            name=f"Game {i}",
            received=RECEIVED + timedelta(seconds=i),
        )
        for i in range(10)
    ]
    return build(log, views, events)


def test_list_games_pages_by_cursor_without_gaps_or_repeats(log: EventLog, views: Path) -> None:
    with _catalogue_of_ten(log, views) as runner:
        seen: list[str] = []
        cursor = None
        while True:
            page = list_games(runner.conn, TENANT, ENV, limit=3, cursor=cursor)
            seen.extend(g.game_id for g in page.items)
            cursor = page.next_cursor
            if not page.has_more:
                break
        assert seen == [f"game_{i}" for i in range(10)]
        assert page.position == 10
        # a round on a listed game brings it back on the next poll, with its stats
        log.append_sync([round_item("p1", "game_3", 2, when=at(99), unique_id="b", round_id="r")])
        runner.catch_up()
        again = list_games(runner.conn, TENANT, ENV, limit=3, cursor=cursor)
        assert [(g.game_id, g.stats["EUR"].bets) for g in again.items] == [("game_3", Decimal(2))]
        assert list_games(runner.conn, TENANT, ENV, cursor=again.next_cursor).items == []


@BOTH_DATABASES
def test_pagination_misses_nothing_while_games_change_underneath(
    log: EventLog, views: Path
) -> None:
    with _catalogue_of_ten(log, views) as runner:
        latest: dict[str, int] = {}
        cursor = None
        step = 0
        while True:
            page = list_games(runner.conn, TENANT, ENV, limit=2, cursor=cursor)
            for item in page.items:
                assert item.position > latest.get(item.game_id, 0)  # never goes back
                latest[item.game_id] = item.position
            cursor = page.next_cursor
            if not page.has_more and step >= 6:
                break
            if step < 6:
                # between two pages: a game already listed changes, a new one appears
                log.append_sync(
                    [
                        round_item(
                            "p1",
                            f"game_{step}",
                            1,
                            when=at(100 + step),
                            unique_id=f"b-{step}",
                            round_id=f"r-{step}",
                        ),
                        catalogue_item(f"new_{step}", when=at(step), unique_id=f"n-{step}"),
                    ]
                )
                runner.catch_up()
            step += 1
        final = {g.game_id: g.position for g in _all_games(runner)}
    assert latest == final  # every game, each at its latest position


def _all_games(runner: ProjectionRunner) -> list[Game]:
    return list_games(runner.conn, TENANT, ENV, limit=1000).items


@BOTH_DATABASES
def test_list_games_updated_since(log: EventLog, views: Path) -> None:
    with _catalogue_of_ten(log, views) as runner:
        page = list_games(runner.conn, TENANT, ENV, updated_since=RECEIVED + timedelta(seconds=7))
        assert [g.game_id for g in page.items] == ["game_7", "game_8", "game_9"]
        empty = list_games(runner.conn, TENANT, ENV, updated_since=RECEIVED + timedelta(days=1))
        assert empty.items == []
        assert empty.next_cursor is not None
        assert list_games(runner.conn, "casino-b", ENV).items == []


def test_list_games_refuses_bad_input(log: EventLog, views: Path) -> None:
    with _catalogue_of_ten(log, views) as runner:
        with pytest.raises(InvalidCursorError):
            list_games(runner.conn, TENANT, ENV, cursor="not-a-cursor")
        with pytest.raises(ValueError, match="limit"):
            list_games(runner.conn, TENANT, ENV, limit=1001)
