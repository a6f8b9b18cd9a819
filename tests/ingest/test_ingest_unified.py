"""POST /api/v1/events: the six item types, all-or-nothing 422s, money and time rules."""

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest
from ingest_examples import CONTEXT

from ingest import (
    MAX_UNIFIED_ITEMS,
    UNIFIED_EVENTS,
    DepositItem,
    GameRoundItem,
    RequestInvalid,
    decode_unified,
    decode_unified_item,
)

TS = "2025-01-15T12:00:00Z"
ITEMS: dict[str, dict[str, Any]] = {
    "gameround": {
        "event": "gameround",
        "data": {
            "unique_id": "bet-r1",
            "timestamp": TS,
            "player_id": "p1",
            "game_id": "g1",
            "round_id": "r1",
            "amount": 0.5,
            "currency": "EUR",
            "is_win": False,
            "is_bonus": False,
        },
    },
    "deposit": {
        "event": "deposit",
        "data": {
            "unique_id": "dep-1",
            "timestamp": TS,
            "player_id": "p1",
            "amount": 100,
            "currency": "EUR",
            "method": "Credit Card",
        },
    },
    "withdraw": {
        "event": "withdraw",
        "data": {
            "unique_id": "wd-1",
            "timestamp": TS,
            "player_id": "p1",
            "amount": 50,
            "currency": "EUR",
            "method": "Bank Transfer",
        },
    },
    "player": {
        "event": "player",
        "data": {"unique_id": "pl-1", "timestamp": TS, "player_id": "p1"},
    },
    "game": {"event": "game", "data": {"unique_id": "gm-1", "timestamp": TS, "game_id": "g1"}},
    "login": {"event": "login", "data": {"unique_id": "lg-1", "timestamp": TS, "player_id": "p1"}},
}
DROP = object()


def item(kind: str, **data: Any) -> dict[str, Any]:
    fields = dict(ITEMS[kind]["data"])
    for key, value in data.items():
        if value is DROP:
            del fields[key]
        else:
            fields[key] = value
    return {"event": kind, "data": fields}


# Decimals go on the wire as JSON numbers, as senders write them.
ENCODER = msgspec.json.Encoder(decimal_format="number")


def body_of(*items: Any) -> bytes:
    return ENCODER.encode({"items": list(items)})


def detail_of(*items: Any) -> list[dict[str, Any]]:
    with pytest.raises(RequestInvalid) as caught:
        decode_unified(body_of(*items), **CONTEXT)
    detail: list[dict[str, Any]] = caught.value.to_dict()["detail"]
    return detail


# --- accepted items ----------------------------------------------------------------------------


def test_unified_every_item_type_becomes_one_envelope_in_request_order() -> None:
    envelopes = decode_unified(body_of(*ITEMS.values()), **CONTEXT)

    assert [(e.type, e.event_id, e.subject) for e in envelopes] == [
        ("gameround", "bet-r1", "p1"),
        ("deposit", "dep-1", "p1"),
        ("withdraw", "wd-1", "p1"),
        ("player", "pl-1", "p1"),
        ("game", "gm-1", "g1"),
        ("login", "lg-1", "p1"),
    ]
    assert {e.source for e in envelopes} == {"unified"}
    assert UNIFIED_EVENTS == ("gameround", "deposit", "withdraw", "player", "game", "login")


def test_unified_game_item_subject_is_the_game_id() -> None:
    (envelope,) = decode_unified(body_of(item("game", game_id="gates_of_olympus")), **CONTEXT)

    assert envelope.subject == "gates_of_olympus"


def test_unified_payload_is_the_whole_item_exactly_as_received() -> None:
    raw_item = (
        b'{ "data": {"unique_id":"dep-1","timestamp":"2025-01-15T12:00:00Z","player_id":"p1",'
        b'"amount":12.50,"currency":"EUR","method":"Card","note":"kept"},  "event":"deposit" }'
    )

    (envelope,) = decode_unified(b'{"items":[' + raw_item + b"]}", **CONTEXT)

    assert envelope.payload == raw_item


def test_unified_envelope_carries_the_request_context() -> None:
    (envelope,) = decode_unified(body_of(ITEMS["login"]), **CONTEXT)

    assert (envelope.tenant, envelope.environment, envelope.client_id) == (
        "casino-a",
        "live",
        "sdk-test/1.0",
    )
    assert envelope.received_at == CONTEXT["received_at"]


def test_unified_player_and_game_accept_every_optional_field() -> None:
    player = item(
        "player",
        username="alex",
        registration_date="2025-01-01T10:00:00+01:00",
        country="MT",
        currency="EUR",
        gender="F",
        affiliate="aff-1",
        operator="op-1",
        tags=["vip", "slots"],
        consent_email=True,
        is_blocked=False,
    )
    game = item(
        "game",
        name="Gates of Olympus",
        provider="Pragmatic Play",
        categories=["video-slots"],
        features=["bonus-buy"],
        themes=["greek"],
        device="desktop",
        has_freespins="unknown",
    )

    assert len(decode_unified(body_of(player, game), **CONTEXT)) == 2


def test_unified_nullable_fields_accept_null() -> None:
    player = item("player", username=None, registration_date=None, gender=None, tags=None)
    game = item("game", categories=None, has_freespins=None, device=None)
    deposit = item("deposit", amount_eur=None)

    assert len(decode_unified(body_of(player, game, deposit), **CONTEXT)) == 3


def test_unified_offsets_are_converted_to_utc() -> None:
    (envelope,) = decode_unified(
        body_of(item("login", timestamp="2025-01-15T08:00:00-05:00")), **CONTEXT
    )

    assert envelope.occurred_at == datetime(2025, 1, 15, 13, 0, tzinfo=UTC)
    assert envelope.occurred_at.tzinfo is UTC


# --- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"0.1", "0.1"),
        (b"12.50", "12.50"),
        (b"100", "100"),
        (b"1E+2", "1E+2"),
        (b"0.000000000000000001", "1E-18"),
        (b"999999999999999999.99", "999999999999999999.99"),
    ],
)
def test_unified_amount_is_decoded_exactly_from_the_json_number_text(
    text: bytes, expected: str
) -> None:
    payload = (
        b'{"event":"deposit","data":{"unique_id":"d","timestamp":"2025-01-15T12:00:00Z",'
        b'"player_id":"p","amount":' + text + b',"currency":"EUR","method":"m"}}'
    )

    decoded = decode_unified_item(payload)

    assert isinstance(decoded, DepositItem)
    assert str(decoded.data.amount) == expected
    assert decoded.data.amount == Decimal(text.decode())


def test_unified_amount_12_50_keeps_its_scale() -> None:
    payload = decode_unified(body_of(item("deposit")), **CONTEXT)[0].payload.replace(
        b'"amount":100', b'"amount":12.50'
    )

    decoded = decode_unified_item(payload)

    assert isinstance(decoded, DepositItem)
    assert decoded.data.amount.as_tuple().exponent == -2


def test_unified_optional_amount_eur_is_exact_when_given() -> None:
    (envelope,) = decode_unified(
        body_of(item("deposit", amount=Decimal("110.10"), amount_eur=Decimal("100.00"))), **CONTEXT
    )

    decoded = decode_unified_item(envelope.payload)

    assert isinstance(decoded, DepositItem)
    assert str(decoded.data.amount_eur) == "100.00"


def test_unified_gameround_win_and_bet_share_the_round_id() -> None:
    bet = item("gameround", unique_id="bet-r9", round_id="r9", is_win=False)
    win = item("gameround", unique_id="win-r9", round_id="r9", is_win=True, amount=1.2)

    envelopes = decode_unified(body_of(bet, win), **CONTEXT)

    decoded = [decode_unified_item(e.payload) for e in envelopes]
    assert all(isinstance(d, GameRoundItem) for d in decoded)
    assert [(d.data.round_id, d.data.is_win) for d in decoded] == [  # type: ignore[union-attr]
        ("r9", False),
        ("r9", True),
    ]


# --- 422 per item --------------------------------------------------------------------------------

NUMBER = ("float_type", "Input should be a valid number", {})
GT0 = ("greater_than", "Input should be greater than 0", {"gt": 0})
BOOL = ("bool_type", "Input should be a valid boolean", {})
STRING = ("string_type", "Input should be a valid string", {})
MISSING = ("missing", "field required", {})

ITEM_422 = [
    # (item, loc after ["body", "items", 1], (type, msg, ctx), input)
    (item("gameround", amount="0.5"), ["data", "amount"], NUMBER, "0.5"),
    (item("gameround", amount="NaN"), ["data", "amount"], NUMBER, "NaN"),
    (item("gameround", amount="Infinity"), ["data", "amount"], NUMBER, "Infinity"),
    (item("gameround", amount="-Infinity"), ["data", "amount"], NUMBER, "-Infinity"),
    (item("gameround", amount=True), ["data", "amount"], NUMBER, True),
    (item("gameround", amount=None), ["data", "amount"], NUMBER, None),
    (item("gameround", amount=[1]), ["data", "amount"], NUMBER, [1]),
    (item("gameround", amount=0), ["data", "amount"], GT0, 0),
    (item("gameround", amount=-1.5), ["data", "amount"], GT0, -1.5),
    (item("deposit", amount=0), ["data", "amount"], GT0, 0),
    (item("withdraw", amount=-10), ["data", "amount"], GT0, -10),
    (item("deposit", amount_eur="10"), ["data", "amount_eur"], NUMBER, "10"),
    (item("deposit", amount_eur=0), ["data", "amount_eur"], GT0, 0),
    (item("deposit", amount_eur=-3), ["data", "amount_eur"], GT0, -3),
    (
        item("deposit", amount=10**18),
        ["data", "amount"],
        ("less_than", "Input should be less than 1000000000000000000", {"lt": 1000000000000000000}),
        10**18,
    ),
    (
        item("deposit", amount=Decimal("0.0000000000000000001")),
        ["data", "amount"],
        (
            "decimal_max_places",
            "Decimal input should have no more than 18 decimal places",
            {"decimal_places": 18},
        ),
        1e-19,
    ),
    (item("gameround", is_win="true"), ["data", "is_win"], BOOL, "true"),
    (item("gameround", is_win=1), ["data", "is_win"], BOOL, 1),
    (item("gameround", is_bonus=DROP), ["data", "is_bonus"], MISSING, None),
    (item("gameround", is_win=DROP), ["data", "is_win"], MISSING, None),
    (item("gameround", round_id=DROP), ["data", "round_id"], MISSING, None),
    (item("gameround", player_id=42), ["data", "player_id"], STRING, 42),
    (item("gameround", currency=978), ["data", "currency"], STRING, 978),
    (
        item("login", unique_id=""),
        ["data", "unique_id"],
        ("string_too_short", "String should have at least 1 character", {"min_length": 1}),
        "",
    ),
    (
        item("login", timestamp="2025-01-15T12:00:00"),
        ["data", "timestamp"],
        ("timezone_aware", "Input should have timezone info", {}),
        "2025-01-15T12:00:00",
    ),
    (
        item("login", timestamp="2025-13-01T00:00:00Z"),
        ["data", "timestamp"],
        (
            "datetime_parsing",
            "Input should be a valid ISO 8601 datetime with a timezone, e.g. 2025-01-15T12:00:00Z",
            {},
        ),
        "2025-13-01T00:00:00Z",
    ),
    (
        item("login", timestamp=1736942400),
        ["data", "timestamp"],
        ("datetime_type", "Input should be a valid datetime", {}),
        1736942400,
    ),
    (
        item("login", timestamp="9999-12-31T23:59:59-01:00"),
        ["data", "timestamp"],
        (
            "datetime_object_invalid",
            "Invalid datetime object, got out of range once converted to UTC",
            {"error": "out of range once converted to UTC"},
        ),
        "9999-12-31T23:59:59-01:00",
    ),
    (
        item("player", registration_date="2025-01-01T00:00:00"),
        ["data", "registration_date"],
        ("timezone_aware", "Input should have timezone info", {}),
        "2025-01-01T00:00:00",
    ),
    (
        item("player", registration_date="0001-01-01T00:00:00+00:01"),
        ["data", "registration_date"],
        (
            "datetime_object_invalid",
            "Invalid datetime object, got out of range once converted to UTC",
            {"error": "out of range once converted to UTC"},
        ),
        "0001-01-01T00:00:00+00:01",
    ),
    (
        item("player", gender="X"),
        ["data", "gender"],
        ("enum", "Input should be 'M' or 'F'", {"expected": "'M' or 'F'"}),
        "X",
    ),
    (
        item("player", tags="vip"),
        ["data", "tags"],
        ("list_type", "Input should be a valid list", {}),
        "vip",
    ),
    (item("player", tags=["vip", 7]), ["data", "tags", 1], STRING, 7),
    (item("player", consent_email="yes"), ["data", "consent_email"], BOOL, "yes"),
    (item("player", player_id=DROP), ["data", "player_id"], MISSING, None),
    (
        item("game", has_freespins="maybe"),
        ["data", "has_freespins"],
        (
            "enum",
            "Input should be 'yes', 'no' or 'unknown'",
            {"expected": "'yes', 'no' or 'unknown'"},
        ),
        "maybe",
    ),
    (item("game", game_id=DROP), ["data", "game_id"], MISSING, None),
    (item("login", player_id=DROP), ["data", "player_id"], MISSING, None),
    (
        {"event": "bonus", "data": {}},
        ["event"],
        (
            "union_tag_invalid",
            "Input tag 'bonus' found using 'event' does not match any of the expected tags: "
            "'gameround', 'deposit', 'withdraw', 'player', 'game' or 'login'",
            {
                "discriminator": "'event'",
                "tag": "bonus",
                "expected_tags": "'gameround', 'deposit', 'withdraw', 'player', 'game' or 'login'",
            },
        ),
        "bonus",
    ),
    ({"data": ITEMS["login"]["data"]}, ["event"], MISSING, None),
    ({"event": 5, "data": {}}, ["event"], STRING, 5),
    ({"event": "login"}, ["data"], MISSING, None),
    (
        {"event": "login", "data": "x"},
        ["data"],
        ("dict_type", "Input should be a valid dictionary", {}),
        "x",
    ),
    (7, [], ("dict_type", "Input should be a valid dictionary", {}), 7),
]


@pytest.mark.parametrize(
    ("bad", "loc", "expected", "input_"),
    ITEM_422,
    ids=[f"{'.'.join(map(str, case[1])) or 'item'}-{case[2][0]}-{case[3]!r}" for case in ITEM_422],
)
def test_unified_invalid_item_rejects_the_batch_with_its_loc_type_and_input(
    bad: Any, loc: list[Any], expected: tuple[str, str, dict[str, Any]], input_: Any
) -> None:
    type_, msg, ctx = expected

    detail = detail_of(ITEMS["login"], bad, ITEMS["deposit"])

    assert detail == [
        {"loc": ["body", "items", 1, *loc], "msg": msg, "type": type_, "input": input_, "ctx": ctx}
    ]


def test_unified_422_lists_every_invalid_item_and_no_valid_one() -> None:
    detail = detail_of(
        ITEMS["login"],
        item("gameround", amount=0),
        ITEMS["game"],
        item("player", gender="male"),
        {"event": "bonus"},
        ITEMS["deposit"],
    )

    assert [(d["loc"][2], d["type"]) for d in detail] == [
        (1, "greater_than"),
        (3, "enum"),
        (4, "union_tag_invalid"),
    ]


def test_unified_item_with_two_problems_reports_the_first_msgspec_finds() -> None:
    detail = detail_of(item("deposit", amount="1", player_id=DROP))

    assert len(detail) == 1
    assert detail[0]["loc"][:4] == ["body", "items", 0, "data"]


# --- 422 for the body ----------------------------------------------------------------------------

BODY_422 = [
    (b"{}", ["body", "items"], "missing", "field required", None, {}),
    (b'{"items": {}}', ["body", "items"], "list_type", "Input should be a valid list", {}, {}),
    (
        b'{"items": []}',
        ["body", "items"],
        "too_short",
        "Minimum one event per request",
        [],
        {
            "field_type": "List",
            "min_length": 1,
            "actual_length": 0,
        },
    ),
    (b"[1]", ["body"], "dict_type", "Input should be a valid dictionary", [1], {}),
    (
        b'{"items": [}',
        ["body", 11],
        "json_invalid",
        "JSON decode error",
        None,
        {"error": "JSON is malformed: invalid character (byte 11)"},
    ),
]


@pytest.mark.parametrize(("body", "loc", "type_", "msg", "input_", "ctx"), BODY_422)
def test_unified_malformed_body_is_rejected_with_422(
    body: bytes, loc: list[Any], type_: str, msg: str, input_: Any, ctx: dict[str, Any]
) -> None:
    with pytest.raises(RequestInvalid) as caught:
        decode_unified(body, **CONTEXT)

    assert caught.value.to_dict()["detail"] == [
        {"loc": loc, "msg": msg, "type": type_, "input": input_, "ctx": ctx}
    ]


def test_unified_batch_of_10000_items_is_accepted() -> None:
    items = [item("login", unique_id=f"lg-{i}") for i in range(MAX_UNIFIED_ITEMS)]

    assert len(decode_unified(body_of(*items), **CONTEXT)) == MAX_UNIFIED_ITEMS


def test_unified_batch_of_10001_items_is_rejected_with_the_limit_in_ctx() -> None:
    detail = detail_of(*([ITEMS["login"]] * (MAX_UNIFIED_ITEMS + 1)))

    assert detail == [
        {
            "loc": ["body", "items"],
            "msg": "At most 10000 items per request, got 10001",
            "type": "too_long",
            "input": None,
            "ctx": {"field_type": "List", "max_length": 10000, "actual_length": 10001},
        }
    ]


def test_unified_request_invalid_names_the_problem_in_its_text() -> None:
    with pytest.raises(RequestInvalid, match=r"body\.items\.0\.data\.amount: Input should be"):
        decode_unified(body_of(item("deposit", amount="5")), **CONTEXT)


def test_unified_duplicate_unique_ids_in_one_batch_are_left_to_the_store() -> None:
    envelopes = decode_unified(body_of(ITEMS["login"], ITEMS["login"]), **CONTEXT)

    assert [e.event_id for e in envelopes] == ["lg-1", "lg-1"]


def test_unified_unknown_fields_are_accepted_and_kept() -> None:
    (envelope,) = decode_unified(body_of(item("login", device="ios") | {"v": 2}), **CONTEXT)

    assert json.loads(envelope.payload) == item("login", device="ios") | {"v": 2}
