"""Tokens and scopes: the spec's exact status codes, codes and messages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services
from tests.api.conftest import MakeToken, example

TRACK = example("track_request.json")
UNIFIED = example("unified_curl.json")
JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Token abc", "bearer"],
)
def test_missing_or_malformed_authorization_is_401_invalid_token(
    client: TestClient[Any], authorization: str | None
) -> None:
    headers = dict(JSON)
    if authorization is not None:
        headers["Authorization"] = authorization
    response = client.post("/v1/events/track", content=TRACK, headers=headers)
    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_token",
        "message": "Missing or malformed Authorization header",
    }
    assert response.headers["www-authenticate"] == "Bearer"


def test_unknown_token_is_401_invalid_or_expired(client: TestClient[Any]) -> None:
    headers = {**JSON, "Authorization": "Bearer plk_0123456789abcdef_notarealsecretatallxx"}
    response = client.post("/v1/events/identify", content=b"{}", headers=headers)
    assert response.status_code == 401
    assert response.json() == {"code": "invalid_token", "message": "Invalid or expired token"}


def test_revoked_token_stops_working(
    client: TestClient[Any], services: Services, make_token: MakeToken
) -> None:
    secret = make_token("events:write")
    headers = {**JSON, "Authorization": f"Bearer {secret}"}
    assert client.post("/v1/events/track", content=TRACK, headers=headers).status_code == 202
    token_id = secret.split("_")[1]
    services.tokens.revoke(token_id)
    response = client.post("/v1/events/track", content=TRACK, headers=headers)
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid or expired token"


def test_expired_token_is_refused(
    client: TestClient[Any], make_token: MakeToken, services: Services
) -> None:
    secret = make_token("events:write", expires_in=timedelta(seconds=1))
    services.tokens._clock = lambda: services.tokens.get(  # type: ignore[method-assign]
        secret.split("_")[1]
    ).created_at + timedelta(seconds=2)  # type: ignore[union-attr]
    response = client.post(
        "/v1/events/track", content=TRACK, headers={**JSON, "Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid or expired token"


def test_token_without_the_scope_is_403_forbidden(
    client: TestClient[Any], make_token: MakeToken
) -> None:
    secret = make_token("projections:read")
    response = client.post(
        "/v1/events/track", content=TRACK, headers={**JSON, "Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "message": "Token scope insufficient"}


@pytest.mark.parametrize("key", [None, "", "wrong-key"])
def test_unified_endpoint_answers_a_missing_or_wrong_key_with_403(
    client: TestClient[Any], key: str | None
) -> None:
    headers = dict(JSON)
    if key is not None:
        headers["x-api-key"] = key
    response = client.post("/api/v1/events", content=UNIFIED, headers=headers)
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"


def test_x_api_key_is_not_accepted_on_the_player_platform_endpoints(
    client: TestClient[Any], make_token: MakeToken
) -> None:
    headers = {**JSON, "x-api-key": make_token("events:write")}
    assert client.post("/v1/events/track", content=TRACK, headers=headers).status_code == 401


def test_a_token_writes_only_its_own_tenant_and_environment(
    client: TestClient[Any], make_token: MakeToken, services: Services
) -> None:
    for tenant, environment in (("a", "live"), ("b", "live"), ("a", "staging")):
        secret = make_token("events:write", tenant=tenant, environment=environment)
        headers = {**JSON, "Authorization": f"Bearer {secret}"}
        assert client.post("/v1/events/track", content=TRACK, headers=headers).status_code == 202
    stored = {(e.tenant, e.environment) for e in services.log.read()}
    assert stored == {("a", "live"), ("b", "live"), ("a", "staging")}
    assert len(services.log.read()) == 6  # the same event ids, kept apart per tenant/env


def test_token_secret_is_stored_only_as_a_hash(services: Services, make_token: MakeToken) -> None:
    secret = make_token("events:write")
    (key, value) = services.log.list_records("token")[0]
    assert secret.encode() not in value
    assert key == secret.split("_")[1]
