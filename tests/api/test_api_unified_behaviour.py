"""POST /api/v1/events over HTTP: all or nothing, silent drops of repeated
unique_ids, any mix of the six types, both game-round shapes, both auth headers."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services
from tests.api.conftest import MakeToken, example

UNIFIED = "/api/v1/events"


def _item(event: str, unique_id: str, **data: Any) -> dict[str, Any]:
    return {
        "event": event,
        "data": {"unique_id": unique_id, "timestamp": "2025-01-15T12:00:00Z", **data},
    }


def _round(unique_id: str, round_id: str, amount: float, is_win: bool) -> dict[str, Any]:
    return _item(
        "gameround", unique_id, player_id="StQ-1", game_id="GD8", round_id=round_id,
        amount=amount, currency="EUR", is_win=is_win, is_bonus=False,
    )


ONE_OF_EACH = [
    _round("bet-r1", "r1", 0.5, is_win=False),
    _item("deposit", "dep-1", player_id="StQ-1", amount=100, currency="EUR",
          method="Credit Card", amount_eur=100),
    _item("withdraw", "wd-1", player_id="StQ-1", amount=40.25, currency="EUR",
          method="Bank Transfer"),
    _item("player", "pl-1", player_id="StQ-1", username="stq", country="MT", currency="EUR",
          registration_date="2025-01-01T09:00:00Z", gender=None, tags=["vip"],
          is_blocked=False, consent_email=True, affiliate=None, operator="op-1"),
    _item("game", "gm-1", game_id="GD8", name="Gates of Olympus", provider="Pragmatic Play",
          categories=["video-slots"], features=None, themes=["myth"], device="desktop",
          has_freespins="yes"),
    _item("login", "li-1", player_id="StQ-1"),
]


@pytest.fixture
def api_key(make_token: MakeToken) -> dict[str, str]:
    return {"x-api-key": make_token("events:write"), "Content-Type": "application/json"}


def test_a_batch_mixing_all_six_types_is_stored_with_an_empty_204(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    response = client.post(UNIFIED, json={"items": ONE_OF_EACH}, headers=api_key)

    assert response.status_code == 204
    assert response.content == b""
    stored = services.log.read()
    assert [e.type for e in stored] == [i["event"] for i in ONE_OF_EACH]
    assert [e.event_id for e in stored] == [i["data"]["unique_id"] for i in ONE_OF_EACH]
    assert {e.source for e in stored} == {"unified"}
    assert {(e.tenant, e.environment) for e in stored} == {("casino-a", "live")}


def test_one_invalid_item_stores_nothing_of_the_batch(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    items = [dict(i) for i in ONE_OF_EACH]
    items[3] = _item("player", "pl-2", player_id="StQ-1", gender="M", is_blocked="no")
    items[5] = {"event": "cashback", "data": {"unique_id": "cb-1"}}

    response = client.post(UNIFIED, json={"items": items}, headers=api_key)

    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [
        ["body", "items", 3, "data", "is_blocked"],
        ["body", "items", 5, "event"],
    ]
    assert detail[0]["input"] == "no"
    assert detail[1]["type"] == "union_tag_invalid"
    for entry in detail:
        assert set(entry) == {"loc", "msg", "type", "input", "ctx"}
    assert services.log.head() == 0


@pytest.mark.parametrize(
    ("field", "value", "loc_type"),
    [
        ("amount", -1, "greater_than"),
        ("amount", 0, "greater_than"),
        ("amount", "NaN", "float_type"),
        ("amount", "12.50", "float_type"),
        ("is_win", "true", "bool_type"),
        ("timestamp", "2025-01-15T12:00:00", "timezone_aware"),
        ("timestamp", "yesterday", "datetime_parsing"),
        ("round_id", None, "string_type"),
    ],
)
def test_a_bad_gameround_field_is_a_422_naming_it(
    client: TestClient[Any], api_key: dict[str, str], field: str, value: Any, loc_type: str
) -> None:
    item = _round("bet-x", "rx", 1.0, is_win=False)
    item["data"][field] = value
    response = client.post(UNIFIED, json={"items": [item]}, headers=api_key)
    assert response.status_code == 422
    (entry,) = response.json()["detail"]
    assert entry["loc"] == ["body", "items", 0, "data", field]
    assert entry["input"] == value
    assert entry["type"] == loc_type


def test_a_missing_field_is_type_missing(
    client: TestClient[Any], api_key: dict[str, str]
) -> None:
    item = _item("login", "li-9")
    response = client.post(UNIFIED, json={"items": [item]}, headers=api_key)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "items", 0, "data", "player_id"],
            "msg": "field required",
            "type": "missing",
            "input": None,
            "ctx": {},
        }
    ]


def test_a_resent_batch_is_silently_dropped_and_stored_once(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    body = example("unified_curl.json")
    responses = [client.post(UNIFIED, content=body, headers=api_key) for _ in range(3)]
    assert [r.status_code for r in responses] == [204, 204, 204]
    assert all(r.content == b"" for r in responses)
    assert services.log.head() == 3


def test_a_unique_id_repeated_inside_one_batch_is_stored_once(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    login = _item("login", "li-2", player_id="StQ-1")
    response = client.post(UNIFIED, json={"items": [login, login]}, headers=api_key)
    assert response.status_code == 204
    assert [e.event_id for e in services.log.read()] == ["li-2"]


def test_a_batch_overlapping_an_earlier_one_stores_only_the_new_items(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    client.post(UNIFIED, json={"items": ONE_OF_EACH[:3]}, headers=api_key)
    response = client.post(UNIFIED, json={"items": ONE_OF_EACH}, headers=api_key)
    assert response.status_code == 204
    assert [e.event_id for e in services.log.read(limit=100)] == [
        i["data"]["unique_id"] for i in ONE_OF_EACH
    ]


def test_a_bet_and_its_win_share_a_round_id(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    items = [_round("bet-r7", "r7", 2, is_win=False), _round("win-r7", "r7", 5.4, is_win=True)]
    response = client.post(UNIFIED, json={"items": items}, headers=api_key)
    assert response.status_code == 204
    stored = [json.loads(e.payload)["data"] for e in services.log.read()]
    assert [(d["round_id"], d["is_win"]) for d in stored] == [("r7", False), ("r7", True)]


def test_one_event_per_round_is_accepted_too(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    items = [_round(f"round-{n}", f"r-{n}", 1.5, is_win=n % 2 == 0) for n in range(4)]
    response = client.post(UNIFIED, json={"items": items}, headers=api_key)
    assert response.status_code == 204
    stored = [json.loads(e.payload)["data"]["round_id"] for e in services.log.read()]
    assert stored == ["r-0", "r-1", "r-2", "r-3"]


def test_money_is_stored_exactly_as_sent(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    body = (
        b'{"items":[{"event":"deposit","data":{"unique_id":"d-1","timestamp":'
        b'"2025-01-15T12:01:00Z","player_id":"p","amount":12.50,"amount_eur":0.1,'
        b'"currency":"EUR","method":"Credit Card"}}]}'
    )
    assert client.post(UNIFIED, content=body, headers=api_key).status_code == 204
    (stored,) = services.log.read()
    assert b'"amount":12.50' in stored.payload
    assert b'"amount_eur":0.1' in stored.payload


@pytest.mark.parametrize(
    "auth",
    [
        lambda secret: {"Authorization": f"Bearer {secret}"},
        lambda secret: {"x-api-key": secret},
        lambda secret: {"X-API-KEY": secret},
        lambda secret: {"Authorization": "Basic dXNlcjpwYXNz", "x-api-key": secret},
    ],
    ids=["bearer", "x-api-key", "x-api-key-upper-case", "x-api-key-beside-basic-auth"],
)
def test_bearer_and_x_api_key_are_both_accepted(
    client: TestClient[Any], make_token: MakeToken, auth: Any
) -> None:
    headers = {"Content-Type": "application/json", **auth(make_token("events:write"))}
    response = client.post(UNIFIED, content=example("unified_curl.json"), headers=headers)
    assert response.status_code == 204


def test_an_api_key_without_the_write_scope_is_403(
    client: TestClient[Any], make_token: MakeToken
) -> None:
    headers = {"Content-Type": "application/json", "x-api-key": make_token("projections:read")}
    response = client.post(UNIFIED, content=example("unified_curl.json"), headers=headers)
    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "message": "Token scope insufficient"}


def test_an_empty_batch_is_a_422(client: TestClient[Any], api_key: dict[str, str]) -> None:
    response = client.post(UNIFIED, json={"items": []}, headers=api_key)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "items"]


def test_ids_the_log_cannot_store_are_a_422_not_a_510_retried_for_ever(
    client: TestClient[Any], api_key: dict[str, str], services: Services
) -> None:
    items = [
        _item("login", "li\x00-3", player_id="StQ-1"),
        _item("login", "li-4", player_id="StQ\x00-1"),
        _item("game", "gm-2", game_id="GD\x008"),
        _item("login", "li-5", player_id="StQ-1"),
    ]
    response = client.post(UNIFIED, json={"items": items}, headers=api_key)
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert [d["loc"] for d in detail] == [
        ["body", "items", 0, "data", "unique_id"],
        ["body", "items", 1, "data", "player_id"],
        ["body", "items", 2, "data", "game_id"],
    ]
    assert detail[1]["msg"] == "player_id must not contain NUL characters"
    assert detail[1]["input"] == "StQ\x00-1"
    assert services.log.head() == 0
