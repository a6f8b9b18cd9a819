"""The read API end to end: events posted to the ingest endpoints come back from
`/v1/players…` and `/v1/games…`, scoped by the token, at the position asked for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services
from api.settings import Settings
from tests.api.conftest import MakeToken
from tests.eventstore.conftest import pg_base_url, pg_schema, pg_url

__all__ = ["pg_base_url", "pg_schema", "pg_url"]

T = "2026-05-18T14:38:00Z"


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Every read test with a SQLite log and views, and with a PostgreSQL log whose
    read models live in its own schema (the default there)."""
    db_url = f"sqlite:///{tmp_path / 'api.db'}"
    if request.param == "postgres":
        request.applymarker(pytest.mark.postgres)
        db_url = request.getfixturevalue("pg_url")
    # A short wait, so the "never reaches it" test answers quickly.
    return Settings(db_url=db_url, access_log=False, min_position_timeout=0.3)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


@pytest.fixture
def reader(make_token: MakeToken) -> dict[str, str]:
    return bearer(make_token("projections:read"))


def identify(client: TestClient[Any], headers: dict[str, str], body: dict[str, Any]) -> int:
    """Post it; the log position it was stored at (`X-Log-Position`)."""
    response = client.post("/v1/events/identify", json=body, headers=headers)
    assert response.status_code == 202, response.text
    return int(response.headers["X-Log-Position"])


def track(client: TestClient[Any], headers: dict[str, str], *events: dict[str, Any]) -> int:
    response = client.post("/v1/events/track", json={"events": list(events)}, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["rejected"] == 0, response.text
    return int(response.headers["X-Log-Position"])


def head(services: Services) -> int:
    return services.log.head()


def test_identified_player_is_served_once_the_projection_reaches_the_write(
    client: TestClient[Any], services: Services, writer: dict[str, str], reader: dict[str, str]
) -> None:
    identify(client, writer, {"user_id": "ply_1", "timestamp": "2026-05-18T14:38:00Z",
                              "traits": {"vip_level": "gold", "country": "MT"}})
    written = track(client, writer, {"user_id": "ply_1", "event_name": "login_success",
                                     "timestamp": "2026-05-18T14:40:00Z"})

    response = client.get(f"/v1/players/ply_1?min_position={written}", headers=reader)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "ply_1"
    assert body["traits"] == {"vip_level": "gold", "country": "MT"}
    assert body["login_count"] == 1
    assert body["last_login"].startswith("2026-05-18T14:40:00")
    assert body["position"] >= written
    assert body["changed_position"] == written
    assert "tenant" not in body


def test_unknown_player_is_a_404_with_a_json_error(
    client: TestClient[Any], reader: dict[str, str]
) -> None:
    response = client.get("/v1/players/nobody", headers=reader)

    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert "nobody" in response.json()["message"]


def test_another_tenants_player_is_unknown(
    client: TestClient[Any], services: Services, writer: dict[str, str], make_token: MakeToken
) -> None:
    identify(client, writer, {"user_id": "ply_1", "timestamp": T, "traits": {"vip_level": "gold"}})
    other = bearer(make_token("projections:read", tenant="casino-b"))
    staging = bearer(make_token("projections:read", environment="staging"))

    for headers in (other, staging):
        response = client.get(f"/v1/players/ply_1?min_position={head(services)}",
                              headers=headers)
        assert response.status_code == 404, response.text


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer nope"}, 401)],
)
def test_reads_need_a_valid_token(
    client: TestClient[Any], headers: dict[str, str], status: int
) -> None:
    assert client.get("/v1/players/ply_1", headers=headers).status_code == status


def test_a_write_only_token_cannot_read(client: TestClient[Any], writer: dict[str, str]) -> None:
    response = client.get("/v1/players/ply_1", headers=writer)

    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "message": "Token scope insufficient"}


def test_a_position_never_reached_answers_503_after_the_bounded_wait(
    client: TestClient[Any], services: Services, reader: dict[str, str]
) -> None:
    response = client.get(f"/v1/players/ply_1?min_position={head(services) + 1000}",
                          headers=reader)

    assert response.status_code == 503
    assert response.json()["code"] == "projection_behind"
    assert response.headers["Retry-After"] == "1"


def test_listing_pages_through_every_player_with_a_cursor(
    client: TestClient[Any], services: Services, writer: dict[str, str], reader: dict[str, str]
) -> None:
    for n in range(5):
        identify(client, writer, {"user_id": f"ply_{n}", "timestamp": T, "traits": {"n": n}})
    written = head(services)

    seen: list[str] = []
    cursor = None
    while True:
        query = f"/v1/players?limit=2&min_position={written}"
        if cursor:
            query += f"&cursor={cursor}"
        page = client.get(query, headers=reader).json()
        seen += [item["user_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        assert page["position"] >= written
        if not page["has_more"]:
            break

    assert seen == [f"ply_{n}" for n in range(5)]


def test_listing_since_a_time_skips_older_changes(
    client: TestClient[Any], services: Services, writer: dict[str, str], reader: dict[str, str]
) -> None:
    identify(client, writer, {"user_id": "ply_old", "timestamp": T, "traits": {"a": 1}})
    written = head(services)
    page = client.get(f"/v1/players?updated_since=2999-01-01T00:00:00Z&min_position={written}",
                      headers=reader).json()

    assert page["items"] == []
    assert page["has_more"] is False


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("limit=1001", "limit"),
        ("cursor=%25%25%25", "cursor"),
        ("updated_since=yesterday", "updated_since"),
        ("updated_since=2026-05-18T14:38:00", "updated_since"),
        ("min_position=-1", "min_position"),
    ],
)
def test_a_bad_query_parameter_is_a_422_naming_it(
    client: TestClient[Any], reader: dict[str, str], query: str, field: str
) -> None:
    response = client.get(f"/v1/players?{query}", headers=reader)

    assert response.status_code == 422, response.text
    (detail,) = response.json()["detail"]
    assert detail["loc"] == ["query", field]
    assert detail["msg"]


def unified(client: TestClient[Any], headers: dict[str, str], *items: dict[str, Any]) -> int:
    response = client.post("/api/v1/events", json={"items": list(items)}, headers=headers)
    assert response.status_code == 204, response.text
    return int(response.headers["X-Log-Position"])


def round_item(unique_id: str, amount: str, *, is_win: bool, currency: str = "EUR",
               player: str = "StQ-1", game: str = "GD8") -> dict[str, Any]:
    return {"event": "gameround", "data": {
        "unique_id": unique_id, "timestamp": "2025-01-15T12:00:00Z", "player_id": player,
        "game_id": game, "round_id": f"r-{unique_id}", "amount": float(amount),
        "currency": currency, "is_win": is_win, "is_bonus": False}}


def test_the_spec_unified_example_shows_in_the_players_money_ledger_and_game(
    client: TestClient[Any], writer: dict[str, str], reader: dict[str, str]
) -> None:
    body = (Path(__file__).parents[1] / "ingest" / "examples" / "unified_curl.json").read_bytes()
    response = client.post("/api/v1/events", content=body, headers=writer)
    assert response.status_code == 204
    written = int(response.headers["X-Log-Position"])

    player = client.get(f"/v1/players/StQ-1?min_position={written}", headers=reader).json()
    eur = player["money"]["EUR"]
    assert (eur["bets"]["count"], eur["bets"]["total"]) == (1, "0.5")
    assert eur["wins"]["total"] == "1.2"
    assert eur["ggr"] == "-0.7"
    assert (eur["deposits"]["count"], eur["deposits"]["total"]) == (1, "100")
    assert player["money_unconverted"] == {}

    ledger = client.get(f"/v1/players/StQ-1/ledger?min_position={written}", headers=reader)
    assert ledger.status_code == 200, ledger.text
    kinds = [(e["kind"], e["amount"], e["round_id"]) for e in ledger.json()["items"]]
    assert kinds == [
        ("bet", "0.5", "f7ltidMBAwexDojlJBY"),
        ("win", "1.2", "f7ltidMBAwexDojlJBY"),
        ("deposit", "100", None),
    ]
    deposits = client.get(f"/v1/players/StQ-1/ledger?kind=deposit&min_position={written}",
                          headers=reader).json()["items"]
    assert [e["kind"] for e in deposits] == ["deposit"]

    game = client.get(f"/v1/games/GD8?min_position={written}", headers=reader)
    assert game.status_code == 200, game.text
    stats = game.json()["stats"]["EUR"]
    assert (stats["bets"], stats["wins"], stats["ggr"], stats["players"]) == (
        "0.5", "1.2", "-0.7", 1)
    assert game.json()["position"] >= written


def test_money_sums_exactly_and_keeps_currencies_apart(
    client: TestClient[Any], writer: dict[str, str], reader: dict[str, str]
) -> None:
    written = unified(
        client, writer,
        round_item("b1", "0.1", is_win=False),
        round_item("b2", "0.2", is_win=False),
        round_item("b3", "0.1", is_win=False, currency="USD"),
    )

    player = client.get(f"/v1/players/StQ-1?min_position={written}", headers=reader).json()

    assert player["money"]["EUR"]["bets"]["total"] == "0.3"
    assert player["money"]["USD"]["bets"]["total"] == "0.1"
    assert player["money_unconverted"]["USD"] == {"count": 1, "total": "0.1"}
    games = client.get(f"/v1/games?min_position={written}", headers=reader).json()
    (game,) = games["items"]
    assert game["game_id"] == "GD8"
    assert game["stats"]["EUR"]["bets"] == "0.3"
    assert game["stats"]["USD"]["bets"] == "0.1"


def test_unknown_game_and_unknown_players_ledger_are_404(
    client: TestClient[Any], reader: dict[str, str]
) -> None:
    for path in ("/v1/games/nope", "/v1/players/nobody/ledger"):
        response = client.get(path, headers=reader)
        assert response.status_code == 404, path
        assert response.json()["code"] == "not_found"


def test_a_ledger_kind_outside_the_movement_table_is_a_422(
    client: TestClient[Any], reader: dict[str, str]
) -> None:
    response = client.get("/v1/players/p/ledger?kind=jackpot", headers=reader)

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "kind"]
