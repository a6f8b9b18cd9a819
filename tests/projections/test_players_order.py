"""Any arrival order of the same events gives the same players (hypothesis).

These properties call the projection's `apply` directly on pages of
`RecordedEvent`s (positions 1..n) in an in-memory database: the merge is a
function of the events and their positions, and hundreds of orders and page
splits per second are what it takes to search for a counterexample. The
runner and the real log are exercised by the other modules.
"""

from __future__ import annotations

import itertools
import sqlite3
from typing import Any

import msgspec
import sqlite_utils
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore import Envelope
from projections import PlayersProjection, physical_name
from tests.projections.helpers import at, identify, login_item, player_item, recorded, track

USERS = ["ply_1", "ply_2"]
ANONS = ["anon_1", "anon_2"]
TRAITS = ["vip_level", "kyc_status", "country"]
VALUES = st.one_of(st.sampled_from(["gold", "MT", "approved"]), st.integers(0, 3), st.none())
TIMES = st.integers(0, 3)  # few distinct times: ties are common


@st.composite
def operation(draw: st.DrawFn) -> tuple[Any, ...]:
    kind = draw(st.sampled_from(["identify", "player", "track", "login"]))
    time = draw(TIMES)
    if kind == "identify":
        traits = draw(st.dictionaries(st.sampled_from(TRAITS), VALUES, max_size=2))
        unset = draw(st.lists(st.sampled_from(TRAITS), max_size=1))
        anonymous = draw(st.one_of(st.none(), st.sampled_from(ANONS)))
        return (kind, draw(st.sampled_from(USERS)), time, traits, unset, anonymous)
    if kind == "player":
        fields = draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "country": st.one_of(st.none(), st.sampled_from(["MT", "DE"])),
                    "is_blocked": st.one_of(st.none(), st.booleans()),
                    "tags": st.one_of(
                        st.none(), st.lists(st.sampled_from(["vip", "new"]), max_size=2)
                    ),
                },
            )
        )
        return (kind, draw(st.sampled_from(USERS)), time, fields)
    actor = draw(st.sampled_from(USERS + ANONS))
    return (kind, actor, time, draw(st.booleans()))


def envelope(op: tuple[Any, ...], n: int) -> Envelope:
    kind, who, time = op[0], op[1], op[2]
    when = at(time)
    if kind == "identify":
        _, _, _, traits, unset, anonymous = op
        # `n` keeps identical calls apart (ingest derives identify ids from the body)
        return identify(
            who, when=when, traits={**traits, "_n": n}, unset=unset or None, anonymous_id=anonymous
        )
    if kind == "player":
        return player_item(who, when=when, unique_id=f"p-{n}", **op[3])
    if kind == "track":
        return track(who, "login_success" if op[3] else "bet_placed", when=when, event_id=f"t-{n}")
    return login_item(who, when=when, unique_id=f"l-{n}")


def tie_consistent(order: list[int], times: list[int]) -> list[int]:
    """`order` with events of equal time put back in their original relative order: the
    merge breaks equal times by position, so only such orders must agree."""
    slots: dict[int, list[int]] = {}
    for index in order:
        slots.setdefault(times[index], []).append(index)
    for same in slots.values():
        same.sort()
    taken = {t: iter(v) for t, v in slots.items()}
    return [next(taken[times[index]]) for index in order]


def project(
    envelopes: list[Envelope], cuts: list[bool]
) -> tuple[list[tuple[Any, ...]], dict[str, list[tuple[Any, ...]]]]:
    """(the players' order-independent columns, every table in full), after applying
    `envelopes` in pages, a new page starting at event i + 1 where `cuts[i]`."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    projection = PlayersProjection()
    tables = {base: physical_name(base, 1) for base in projection.tables}
    projection.create(sqlite_utils.Database(conn), tables)
    events = recorded(envelopes)
    bounds = [0, *(i + 1 for i, cut in enumerate(cuts) if cut), len(events)]
    conn.execute("BEGIN")
    for lo, hi in itertools.pairwise(bounds):
        projection.apply(events[lo:hi], conn, tables)
    conn.execute("COMMIT")
    full = {
        base: conn.execute(f"SELECT * FROM {name} ORDER BY 1, 2, 3, 4").fetchall()
        for base, name in tables.items()
    }
    players = conn.execute(
        "SELECT tenant, environment, user_id, traits, country, tags, is_blocked, anonymous_ids, "
        "first_seen, last_seen, event_count, last_login, login_count "
        f"FROM {tables['players']} ORDER BY user_id"
    ).fetchall()
    return players, full


def oracle(ops: list[tuple[Any, ...]]) -> dict[str, dict[str, Any]]:
    """The expected profile of each player, straight from the rules (index = tie order)."""
    traits: dict[tuple[str, str], tuple[int, int, int, Any]] = {}
    links: dict[str, tuple[int, int, str]] = {}
    for i, op in enumerate(ops):
        if op[0] != "identify":
            continue
        _, user, time, set_, unset, anonymous = op
        for name, value in {**set_, "_n": i}.items():
            if (user, name) not in traits or (time, i, 0) > traits[(user, name)][:3]:
                traits[(user, name)] = (time, i, 0, value)
        for name in unset:
            if (user, name) not in traits or (time, i, 1) > traits[(user, name)][:3]:
                traits[(user, name)] = (time, i, 1, None)
        if anonymous and (anonymous not in links or (time, i) > links[anonymous][:2]):
            links[anonymous] = (time, i, user)
    counts: dict[str, int] = {}
    for op in ops:
        if op[0] in ("track", "login"):
            owner = links[op[1]][2] if op[1] in links else op[1]
            counts[owner] = counts.get(owner, 0) + 1
    return {
        user: {
            "traits": {
                n: v[3] for (u, n), v in traits.items() if u == user and not v[2] and n != "_n"
            },
            "event_count": counts.get(user, 0),
        }
        for user in USERS
    }


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=st.lists(operation(), min_size=1, max_size=14),
    data=st.data(),
)
def test_any_order_and_any_page_split_give_the_same_players(
    ops: list[tuple[Any, ...]], data: st.DataObject
) -> None:
    envelopes = [envelope(op, n) for n, op in enumerate(ops)]
    times = [op[2] for op in ops]
    order = tie_consistent(data.draw(st.permutations(range(len(ops)))), times)
    boundaries = st.lists(st.booleans(), min_size=len(ops) - 1, max_size=len(ops) - 1)
    cuts_b = data.draw(boundaries)
    in_order, full_a = project(envelopes, [])  # one page
    _, full_b = project(envelopes, cuts_b)
    assert full_a == full_b  # where pages are cut changes nothing, not even positions
    shuffled, _ = project([envelopes[i] for i in order], cuts_b)
    assert shuffled == in_order  # nor does the order, but for positions

    expected = oracle(ops)
    for row in in_order:
        user, traits, event_count = row[2], msgspec.json.decode(row[3]), row[10]
        if user in expected:
            got = {k: v for k, v in traits.items() if k != "_n"}
            assert got == expected[user]["traits"]
            assert event_count == expected[user]["event_count"]
