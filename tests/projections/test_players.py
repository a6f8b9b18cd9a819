"""The players model's merge rules, end to end from the log through the runner."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from eventstore import Envelope, EventLog
from projections import (
    InvalidCursorError,
    Player,
    PlayersProjection,
    ProjectionRunner,
    get_player,
    list_players,
)
from tests.projections.helpers import (
    BOTH_DATABASES,
    ENV,
    RECEIVED,
    TENANT,
    at,
    dump,
    game_item,
    gameround_item,
    identify,
    login_item,
    player_item,
    track,
)


def build(
    log: EventLog, views: Path, envelopes: list[Envelope], page_size: int = 1000
) -> ProjectionRunner:
    log.append_sync(envelopes)
    runner = ProjectionRunner(log, [PlayersProjection()], views=views, page_size=page_size)
    runner.catch_up()
    return runner


def player(
    runner: ProjectionRunner, user_id: str, tenant: str = TENANT, environment: str = ENV
) -> Player:
    found = get_player(runner.conn, tenant, environment, user_id)
    assert found is not None, f"{user_id} not found"
    return found


REGISTRATION = identify(
    "ply_776192",
    when=at(0),
    traits={
        "email": "player@example.com",
        "first_name": "Alex",
        "country": "MT",
        "kyc_status": "pending",
        "vip_level": "bronze",
        "anonymous_segment": "returning",
    },
)
VIP_UPGRADE = identify(
    "ply_776192",
    when=at(5 * 3600),
    traits={"vip_level": "platinum", "kyc_status": "approved"},
    unset=["anonymous_segment"],
)
EXPECTED_TRAITS = {
    "email": "player@example.com",
    "first_name": "Alex",
    "country": "MT",
    "kyc_status": "approved",
    "vip_level": "platinum",
}


@BOTH_DATABASES
def test_identify_merges_traits_per_trait_and_unsets(log: EventLog, views: Path) -> None:
    with build(log, views, [REGISTRATION, VIP_UPGRADE]) as runner:
        assert player(runner, "ply_776192").traits == EXPECTED_TRAITS


def test_identify_calls_sent_newest_first_give_the_same_profile(log: EventLog, views: Path) -> None:
    with build(log, views, [VIP_UPGRADE, REGISTRATION]) as runner:
        reversed_ = player(runner, "ply_776192")
    assert reversed_.traits == EXPECTED_TRAITS


def test_an_older_value_arriving_late_does_not_bring_an_unset_trait_back(
    log: EventLog, views: Path
) -> None:
    late = identify("ply_1", when=at(10), traits={"segment": "old"})
    unset = identify("ply_1", when=at(20), unset=["segment"])
    with build(log, views, [unset, late]) as runner:
        assert "segment" not in player(runner, "ply_1").traits
        state = runner.conn.execute(
            "SELECT value, unset, time FROM players_traits WHERE user_id = 'ply_1'"
        ).fetchall()
    assert state == [(None, 1, "2026-05-18T14:38:20.000000Z")]


@BOTH_DATABASES
def test_equal_timestamps_go_to_the_later_position_and_unset_wins_within_a_call(
    log: EventLog, views: Path
) -> None:
    first = identify("ply_1", when=at(10), traits={"vip_level": "gold", "lang": "en"})
    second = identify("ply_1", when=at(10), traits={"vip_level": "silver"})
    both = identify("ply_1", when=at(30), traits={"lang": "de"}, unset=["lang"])
    with build(log, views, [first, second, both]) as runner:
        assert player(runner, "ply_1").traits == {"vip_level": "silver"}


def test_trait_values_are_kept_exactly_as_sent(log: EventLog, views: Path) -> None:
    body = identify(
        "ply_1", when=at(1), traits={"limit": 12.50, "flags": {"a": [1, None]}, "none": None}
    )
    with build(log, views, [body]) as runner:
        got = player(runner, "ply_1")
        stored = runner.conn.execute(
            "SELECT traits FROM players WHERE user_id = 'ply_1'"
        ).fetchone()[0]
    assert got.traits == {"limit": 12.5, "flags": {"a": [1, None]}, "none": None}
    assert '"limit":12.5' in stored


def test_unified_player_fields_merge_by_event_time(log: EventLog, views: Path) -> None:
    seed = player_item(
        "StQ-1",
        when=at(0),
        unique_id="p-1",
        username="lucky",
        registration_date="2025-01-15T13:00:00+01:00",
        country="MT",
        currency="EUR",
        gender="F",
        affiliate="aff-9",
        operator="op-1",
        tags=["vip", "slots"],
        consent_email=True,
        is_blocked=False,
    )
    newer = player_item(
        "StQ-1", when=at(60), unique_id="p-2", country="DE", affiliate=None, is_blocked=True
    )
    older = player_item(
        "StQ-1", when=at(30), unique_id="p-3", country="GB", username="stale", tags=None
    )
    with build(log, views, [newer, seed, older]) as runner:
        got = player(runner, "StQ-1")
    assert got.username == "stale"  # only p-3 (t=30) set it after the seed (t=0)
    assert got.country == "DE"
    assert got.registration_date == datetime.fromisoformat("2025-01-15T12:00:00+00:00")
    assert got.currency == "EUR"
    assert got.gender == "F"
    assert got.affiliate is None  # an explicit null clears (merge-patch)
    assert got.operator == "op-1"
    assert got.tags is None
    assert got.consent_email is True
    assert got.is_blocked is True
    assert got.traits == {}


def test_activity_counts_first_and_last_seen_and_logins(log: EventLog, views: Path) -> None:
    events = [
        track("ply_1", "bet_placed", when=at(50), event_id="t-1"),
        track(
            "ply_1",
            "login_success",
            when=at(10),
            event_id="t-2",
            properties={"login_method": "email_password"},
        ),
        login_item("ply_1", when=at(90), unique_id="u-1"),
        gameround_item("ply_1", when=at(70), unique_id="u-2"),
        game_item("GD8", when=at(500), unique_id="u-3"),  # about a game, not a player
        identify("ply_1", when=at(1000), traits={"x": 1}),  # a profile update is not activity
    ]
    with build(log, views, events) as runner:
        got = player(runner, "ply_1")
        assert get_player(runner.conn, TENANT, ENV, "GD8") is None
    assert (got.event_count, got.login_count) == (4, 2)
    assert got.first_seen == at(10)
    assert got.last_seen == at(90)
    assert got.last_login == at(90)


def _anonymous_story() -> tuple[list[Envelope], Envelope]:
    activity = [
        track("anon_42", "page_viewed", when=at(1), event_id="a-1", properties={"page": "/"}),
        track("anon_42", "login_success", when=at(2), event_id="a-2"),
        track("ply_1", "bet_placed", when=at(100), event_id="a-3"),
    ]
    link = identify("ply_1", when=at(50), anonymous_id="anon_42", traits={"vip_level": "bronze"})
    return activity, link


@pytest.mark.parametrize("link_first", [False, True], ids=["link-after", "link-before"])
def test_activity_under_an_anonymous_id_counts_for_the_linked_player(
    log: EventLog, views: Path, link_first: bool
) -> None:
    activity, link = _anonymous_story()
    events = [link, *activity] if link_first else [*activity, link]
    with build(log, views, events, page_size=2) as runner:
        got = player(runner, "ply_1")
        assert get_player(runner.conn, TENANT, ENV, "anon_42") is None
    assert got.anonymous_ids == ["anon_42"]
    assert (got.event_count, got.login_count) == (3, 1)
    assert (got.first_seen, got.last_seen, got.last_login) == (at(1), at(100), at(2))


def test_an_anonymous_link_arriving_after_the_activity_equals_one_before(
    tmp_path: Path, log: EventLog
) -> None:
    from eventstore import open_log  # noqa: PLC0415

    activity, link = _anonymous_story()
    with build(log, tmp_path / "after.views.db", [*activity, link], page_size=1) as runner:
        after = player(runner, "ply_1")
        tables_after = dump(runner.conn)
    other = open_log(f"sqlite:///{tmp_path / 'other.db'}")
    try:
        with build(other, tmp_path / "before.views.db", [link, *activity], page_size=1) as runner:
            before = player(runner, "ply_1")
    finally:
        other.close()
    strip = {"position": 0, "updated_at": RECEIVED}
    assert _without(after, strip) == _without(before, strip)
    assert len(tables_after["players"]) == 1


def _without(value: Player, fields: dict[str, object]) -> dict[str, object]:
    import msgspec  # noqa: PLC0415

    out = msgspec.structs.asdict(value)
    out.update(fields)
    return out


@BOTH_DATABASES
def test_a_moved_link_moves_the_activity(log: EventLog, views: Path) -> None:
    events = [
        track("anon_1", "page_viewed", when=at(1), event_id="a-1"),
        identify("ply_a", when=at(10), anonymous_id="anon_1"),
        identify("ply_b", when=at(20), anonymous_id="anon_1"),
        identify("ply_c", when=at(5), anonymous_id="anon_1"),  # older: loses
    ]
    with build(log, views, events, page_size=1) as runner:
        a, b, c = (player(runner, u) for u in ("ply_a", "ply_b", "ply_c"))
    assert (a.anonymous_ids, a.event_count, a.first_seen) == ([], 0, None)
    assert (b.anonymous_ids, b.event_count) == (["anon_1"], 1)
    assert (c.anonymous_ids, c.event_count) == ([], 0)


def test_rows_are_scoped_by_tenant_and_environment(log: EventLog, views: Path) -> None:
    events = [
        identify("ply_1", when=at(1), traits={"brand": "a"}),
        identify("ply_1", when=at(1), traits={"brand": "b"}, tenant="casino-b"),
        identify("ply_1", when=at(1), traits={"brand": "staging"}, environment="staging"),
        track("anon_1", "page_viewed", when=at(2), event_id="x-1", tenant="casino-b"),
        identify(
            "ply_1", when=at(3), anonymous_id="anon_1"
        ),  # casino-a's link: not casino-b's anon
    ]
    with build(log, views, events) as runner:
        assert player(runner, "ply_1").traits == {"brand": "a"}
        assert player(runner, "ply_1", tenant="casino-b").traits == {"brand": "b"}
        assert player(runner, "ply_1", environment="staging").traits == {"brand": "staging"}
        assert player(runner, "anon_1", tenant="casino-b").event_count == 1
        assert player(runner, "ply_1").event_count == 0
        assert get_player(runner.conn, "casino-c", ENV, "ply_1") is None


def test_row_position_and_updated_at_follow_the_last_event_touching_it(
    log: EventLog, views: Path
) -> None:
    events = [
        identify("ply_1", when=at(1), traits={"a": 1}, received=RECEIVED),
        track(
            "ply_2",
            "bet_placed",
            when=at(2),
            event_id="t-1",
            received=RECEIVED + timedelta(seconds=5),
        ),
        track(
            "ply_1",
            "bet_placed",
            when=at(3),
            event_id="t-2",
            received=RECEIVED + timedelta(seconds=9),
        ),
    ]
    with build(log, views, events) as runner:
        assert (player(runner, "ply_1").position, player(runner, "ply_1").updated_at) == (
            3,
            RECEIVED + timedelta(seconds=9),
        )
        assert player(runner, "ply_2").position == 2


@BOTH_DATABASES
def test_get_player_before_any_build_is_none(views: Path) -> None:
    from projections import open_views  # noqa: PLC0415

    conn = open_views(views)
    try:
        assert get_player(conn, TENANT, ENV, "ply_1") is None
        assert list_players(conn, TENANT, ENV).items == []
    finally:
        conn.close()


# -- listing ----------------------------------------------------------------------------------


def _listing(log: EventLog, views: Path) -> ProjectionRunner:
    events = [
        track(
            f"ply_{i}",
            "bet_placed",
            when=at(i),
            event_id=f"t-{i}",
            received=RECEIVED + timedelta(seconds=i),
        )
        for i in range(10)
    ]
    return build(log, views, events)


@BOTH_DATABASES
def test_list_players_pages_by_cursor_without_gaps_or_repeats(log: EventLog, views: Path) -> None:
    with _listing(log, views) as runner:
        seen: list[str] = []
        cursor = None
        while True:
            page = list_players(runner.conn, TENANT, ENV, limit=3, cursor=cursor)
            seen.extend(p.user_id for p in page.items)
            cursor = page.next_cursor
            if not page.has_more:
                break
        assert seen == [f"ply_{i}" for i in range(10)]
        assert page.position == 10
        # a change after the listing comes back on the next poll with the same cursor
        log.append_sync([track("ply_3", "bet_won", when=at(99), event_id="t-late")])
        runner.catch_up()
        again = list_players(runner.conn, TENANT, ENV, limit=3, cursor=cursor)
        assert [p.user_id for p in again.items] == ["ply_3"]
        assert list_players(runner.conn, TENANT, ENV, cursor=again.next_cursor).items == []


@BOTH_DATABASES
def test_list_players_updated_since(log: EventLog, views: Path) -> None:
    with _listing(log, views) as runner:
        page = list_players(runner.conn, TENANT, ENV, updated_since=RECEIVED + timedelta(seconds=7))
        assert [p.user_id for p in page.items] == ["ply_7", "ply_8", "ply_9"]
        empty = list_players(runner.conn, TENANT, ENV, updated_since=RECEIVED + timedelta(days=1))
        assert empty.items == []
        assert empty.next_cursor is not None
        assert list_players(runner.conn, "casino-b", ENV).items == []


def test_list_players_refuses_bad_input(log: EventLog, views: Path) -> None:
    with _listing(log, views) as runner:
        with pytest.raises(InvalidCursorError):
            list_players(runner.conn, TENANT, ENV, cursor="not-a-cursor")
        with pytest.raises(ValueError, match="limit"):
            list_players(runner.conn, TENANT, ENV, limit=0)
