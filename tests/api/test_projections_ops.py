"""The projections in the API: `serve` drives them in-process (or stands by), their
status over HTTP (scope `projections:read`), a rebuild started over HTTP (scope
`admin`), and the service the read API builds on (reads, `min_position` waits)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services, build_services, create_app, create_asgi
from api.projections_service import HIDDEN_ERROR
from api.settings import Settings
from eventstore import Envelope
from tests.api.conftest import MakeToken, example

JSON = {"Content-Type": "application/json"}


def _auth(secret: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {secret}"}


def _token(services: Services, *scopes: str) -> dict[str, str]:
    _, secret = services.tokens.create(
        tenant="casino-a", environment="live", scopes=list(scopes)
    )
    return _auth(secret)


def _eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s")
        time.sleep(0.02)


def _players(client: TestClient[Any], headers: dict[str, str]) -> list[dict[str, Any]]:
    response = client.get("/v1/projections", headers=headers)
    assert response.status_code == 200, response.text
    return [p for p in response.json()["projections"] if p["name"] == "players"]


def _broken_identify(tenant: str, environment: str = "live") -> Envelope:
    """An identify event the players projection cannot apply (traits not an object)."""
    when = datetime(2026, 5, 18, 14, 38, tzinfo=UTC)
    return Envelope(
        tenant=tenant, environment=environment, source="identify", type="identify",
        event_id=f"identify-broken-{tenant}", subject="ply_secret_7", occurred_at=when,
        received_at=when, client_id=None,
        payload=b'{"user_id": "ply_secret_7", "traits": ["not", "an", "object"]}',
    )


@pytest.fixture
def reader(make_token: MakeToken) -> dict[str, str]:
    return _auth(make_token("projections:read"))


@pytest.fixture
def admin(make_token: MakeToken) -> dict[str, str]:
    return _auth(make_token("admin"))


@pytest.fixture
def idle(tmp_path: Path) -> Iterator[tuple[Services, TestClient[Any]]]:
    """An API-only app (`serve --no-projections`): nothing drives the projections."""
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'idle.db'}", access_log=False, run_projections=False
    )
    services = build_services(settings)
    with TestClient(create_asgi(services=services)) as client:
        yield services, client
    services.close()


def test_the_app_drives_the_projections_while_it_serves(
    client: TestClient[Any], services: Services, writer: dict[str, str], reader: dict[str, str]
) -> None:
    assert client.get("/v1/projections", headers=reader).json()["runner"]["pid"] == os.getpid()
    response = client.post(
        "/v1/events/track", content=example("track_request.json"), headers=writer
    )
    assert response.status_code == 202

    _eventually(lambda: _players(client, reader)[0]["position"] == services.log.head() > 0)
    (players,) = _players(client, reader)
    assert players["active"] is True
    assert players["state"] == "live"
    assert players["lag_events"] == 0
    assert players["lag_seconds"] == 0.0
    assert players["error"] is None
    assert players["progress"] is None


def test_status_lists_every_field_operators_need_and_who_drives(
    client: TestClient[Any], reader: dict[str, str]
) -> None:
    body = client.get("/v1/projections", headers=reader).json()

    assert set(body) == {"projections", "runner"}
    assert body["runner"]["pid"] is not None
    assert {p["name"] for p in body["projections"]} >= {"players"}
    assert set(body["projections"][0]) == {
        "name", "version", "build", "active", "state", "stopped", "position", "head",
        "lag_events", "lag_seconds", "progress", "error", "skipped",
    }


@pytest.mark.parametrize("scope", ["events:write", "admin"])
def test_status_needs_the_projections_read_scope(
    client: TestClient[Any], make_token: MakeToken, scope: str
) -> None:
    assert client.get("/v1/projections").status_code == 401
    response = client.get("/v1/projections", headers=_auth(make_token(scope)))
    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "message": "Token scope insufficient"}


def test_an_api_only_app_does_not_drive_the_projections(
    idle: tuple[Services, TestClient[Any]],
) -> None:
    services, client = idle
    headers = _token(services, "events:write", "projections:read")
    client.post("/v1/events/track", content=example("track_request.json"), headers=headers)
    time.sleep(0.3)

    body = client.get("/v1/projections", headers=headers).json()

    assert body["runner"] is None
    (players,) = [p for p in body["projections"] if p["name"] == "players"]
    assert (players["position"], players["lag_events"]) == (0, services.log.head())
    assert players["lag_seconds"] > 0


def test_a_second_app_on_the_same_files_stands_by_and_takes_over(services: Services) -> None:
    other = build_services(
        Settings(db_url=services.settings.db_url, access_log=False, runner_lock_poll=0.05)
    )
    first_app, second_app = create_app(services=services), create_app(services=other)
    second_client = TestClient(second_app)
    try:
        with TestClient(first_app):
            second_client.__enter__()
            first = first_app.state.projection_worker
            second = second_app.state.projection_worker
            assert (first.active, second.active) == (True, False)
        # the first app has shut down: the standby drives within its lock poll
        _eventually(lambda: second.active, timeout=5)
    finally:
        second_client.__exit__(None, None, None)
        other.close()


def test_rebuild_starts_a_side_build_and_it_swaps_in(
    client: TestClient[Any], writer: dict[str, str], admin: dict[str, str],
    reader: dict[str, str], services: Services,
) -> None:
    client.post("/v1/events/track", content=example("track_request.json"), headers=writer)
    _eventually(lambda: _players(client, reader)[0]["position"] == services.log.head())
    active = _players(client, reader)[0]["build"]

    response = client.post("/v1/admin/projections/players/rebuild", headers=admin)

    assert response.status_code == 202
    started = response.json()
    assert started["name"] == "players"
    assert started["build"] == active + 1
    assert (started["active"], started["state"]) == (False, "rebuilding")
    assert started["progress"]["total"] == services.log.head()
    _eventually(lambda: [p["build"] for p in _players(client, reader)] == [active + 1])
    (swapped,) = _players(client, reader)
    assert (swapped["active"], swapped["state"]) == (True, "live")
    assert swapped["position"] == services.log.head()


def test_a_second_rebuild_while_one_runs_is_409(
    idle: tuple[Services, TestClient[Any]],
) -> None:
    services, client = idle
    admin = _token(services, "admin")
    assert client.post("/v1/admin/projections/players/rebuild", headers=admin).status_code == 202

    response = client.post("/v1/admin/projections/players/rebuild", headers=admin)

    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "rebuild_running"
    assert "already under way (build 2)" in body["message"]


def test_rebuilding_an_unknown_projection_is_404_naming_the_known_ones(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    response = client.post("/v1/admin/projections/nope/rebuild", headers=admin)
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not_found"
    assert "no projection 'nope'" in body["message"]
    assert "players" in body["message"]


def test_rebuild_needs_the_admin_scope(client: TestClient[Any], reader: dict[str, str]) -> None:
    response = client.post("/v1/admin/projections/players/rebuild", headers=reader)
    assert response.status_code == 403


def test_a_stopped_projection_shows_its_error_but_not_another_tenants_data(
    client: TestClient[Any], services: Services, make_token: MakeToken
) -> None:
    services.log.append_sync([_broken_identify("casino-b")])
    own = _auth(make_token("projections:read", tenant="casino-b"))
    other = _auth(make_token("projections:read", tenant="casino-a"))
    _eventually(lambda: _players(client, own)[0]["stopped"])

    (mine,) = _players(client, own)
    (theirs,) = _players(client, other)

    position = services.log.head()
    assert mine["error"]["position"] == theirs["error"]["position"] == position
    assert mine["error"]["type"] == theirs["error"]["type"] == "identify"
    assert mine["error"]["event_id"] == "identify-broken-casino-b"
    assert mine["error"]["message"].startswith("CannotApply: identify payload")
    assert mine["error"]["detail"] is None, "tracebacks stay off HTTP"
    assert theirs["error"]["event_id"] is None
    assert theirs["error"]["message"] == HIDDEN_ERROR
    assert "ply_secret_7" not in str(theirs)


def test_the_openapi_document_describes_both_endpoints(client: TestClient[Any]) -> None:
    document = client.get("/schema/openapi.json").json()
    listing = document["paths"]["/v1/projections"]["get"]
    rebuild = document["paths"]["/v1/admin/projections/{name}/rebuild"]["post"]

    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ProjectionsReport"
    }
    assert set(rebuild["responses"]) >= {"202", "401", "403", "404", "409"}
    schemas = document["components"]["schemas"]
    assert {"ProjectionsReport", "ProjectionStatus", "Progress", "ProjectionError"} <= set(
        schemas
    )
    assert "lag_seconds" in schemas["ProjectionStatus"]["properties"]


def test_reads_see_the_views_before_any_runner_started(
    idle: tuple[Services, TestClient[Any]],
) -> None:
    services, _ = idle
    with services.projections.reader() as conn:
        (count,) = conn.execute("SELECT count(*) FROM players").fetchone()
    assert count == 0
    assert services.projections.position("players") == 0


def test_waiting_for_a_position_answers_once_the_projection_reaches_it(
    client: TestClient[Any], services: Services, writer: dict[str, str]
) -> None:
    response = client.post(
        "/v1/events/track", content=example("track_request.json"), headers=writer
    )
    position = int(response.headers["x-log-position"])

    reached = asyncio.run(services.projections.wait_for_position("players", position))

    assert reached
    assert services.projections.position("players") >= position


def test_waiting_for_a_position_gives_up_after_the_timeout(
    idle: tuple[Services, TestClient[Any]],
) -> None:
    services, _ = idle
    started = time.monotonic()
    reached = asyncio.run(
        services.projections.wait_for_position(["players"], 1, timeout=0.2)
    )
    assert not reached
    assert 0.2 <= time.monotonic() - started < 2


def test_waiting_for_an_unknown_projection_fails_naming_it(services: Services) -> None:
    with pytest.raises(LookupError, match="no projection 'nope'"):
        asyncio.run(services.projections.wait_for_position("nope", 1, timeout=0.1))


def test_a_postgresql_log_keeps_its_read_models_in_its_own_schema() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/x?schema=tenant_a"
    assert Settings(db_url=url).views_location() == url
    assert Settings(db_url=url, views="/data/v.db").views_location() == Path("/data/v.db")
    elsewhere = "postgresql://postgres@10.0.0.2:5432/reads?schema=views"
    assert Settings(db_url=url, views=elsewhere).views_location() == elsewhere


def test_views_that_are_neither_a_file_nor_postgresql_are_refused_without_the_password() -> None:
    settings = Settings(db_url="sqlite:///x.db", views="mysql://root:hunter2@db/views")
    with pytest.raises(ValueError, match="a SQLite file path or a postgresql:// URL") as refused:
        settings.views_location()
    assert "hunter2" not in str(refused.value)


def test_an_in_memory_sqlite_log_needs_the_views_file_named() -> None:
    settings = Settings(db_url="sqlite:///:memory:")
    with pytest.raises(ValueError, match="PLAYERLOG_VIEWS"):
        settings.views_location()


def test_settings_read_the_projection_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PLAYERLOG_VIEWS", str(tmp_path / "v.db"))
    monkeypatch.setenv("PLAYERLOG_PROJECTIONS", "0")
    monkeypatch.setenv("PLAYERLOG_RUNNER_LOCK_POLL", "0.25")
    monkeypatch.setenv("PLAYERLOG_MIN_POSITION_TIMEOUT", "2")

    settings = Settings.from_env("sqlite:///x.db")

    assert settings.views_location() == tmp_path / "v.db"
    assert settings.run_projections is False
    assert (settings.runner_lock_poll, settings.min_position_timeout) == (0.25, 2.0)
    monkeypatch.setenv("PLAYERLOG_RUNNER_LOCK_POLL", "soon")
    with pytest.raises(ValueError, match="PLAYERLOG_RUNNER_LOCK_POLL='soon': expected a number"):
        Settings.from_env("sqlite:///x.db")


def test_settings_pass_the_buffer_bound_and_helper_processes_to_the_runner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings.from_env("sqlite:///x.db").runner_options() == {}
    monkeypatch.setenv("PLAYERLOG_PROJECTION_BUFFER_KEYS", "200000")
    monkeypatch.setenv("PLAYERLOG_PROJECTION_PROCESSES", "1")
    settings = Settings.from_env("sqlite:///x.db")
    assert settings.runner_options() == {"max_buffered_keys": 200_000, "processes": 1}
    assert settings.driving_options() == {
        "log_url": "sqlite:///x.db",
        "max_buffered_keys": 200_000,
        "processes": 1,
    }
    monkeypatch.setenv("PLAYERLOG_PROJECTION_PROCESSES", "0")
    with pytest.raises(ValueError, match="PLAYERLOG_PROJECTION_PROCESSES=0: must be at least 1"):
        Settings.from_env("sqlite:///x.db")
