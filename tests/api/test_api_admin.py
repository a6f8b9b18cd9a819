"""The admin API (scope `admin`): tokens, tenant settings, catalogue findings and
unified conflicts, each within the caller's own tenant and environment."""

from __future__ import annotations

import json
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services
from tests.api.conftest import MakeToken, example

JSON = {"Content-Type": "application/json"}
PUBLIC_FIELDS = {
    "id", "name", "tenant", "environment", "scopes", "created_at", "expires_at", "revoked_at"
}


def _auth(secret: str) -> dict[str, str]:
    return {**JSON, "Authorization": f"Bearer {secret}"}


@pytest.fixture
def admin(make_token: MakeToken) -> dict[str, str]:
    """Headers of an admin (with events:write) of casino-a/live."""
    return _auth(make_token("admin", "events:write"))


def _create(client: TestClient[Any], admin: dict[str, str], **spec: Any) -> Any:
    return client.post("/v1/admin/tokens", json={"scopes": ["events:write"], **spec}, headers=admin)


def test_create_returns_201_with_the_secret_once_and_it_works_at_once(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    response = _create(client, admin, name="vendor-x", expires_in="30d")

    assert response.status_code == 201
    created = response.json()
    assert set(created) == PUBLIC_FIELDS | {"token"}
    assert (created["tenant"], created["environment"]) == ("casino-a", "live")
    assert created["scopes"] == ["events:write"]
    assert created["name"] == "vendor-x"
    assert created["expires_at"] is not None
    track = client.post(
        "/v1/events/track", content=example("track_curl.json"), headers=_auth(created["token"])
    )
    assert track.status_code == 202
    listed = client.get("/v1/admin/tokens", headers=admin).text
    assert created["token"] not in listed, "the secret is shown only once"


def test_list_shows_tokens_without_secrets_or_hashes(
    client: TestClient[Any], admin: dict[str, str], services: Services
) -> None:
    secret = _create(client, admin).json()["token"]

    response = client.get("/v1/admin/tokens", headers=admin)

    assert response.status_code == 200
    tokens = response.json()["tokens"]
    assert len(tokens) == 2
    for token in tokens:
        assert set(token) == PUBLIC_FIELDS
    stored_hashes = [json.loads(v)["secret_sha256"] for _, v in services.log.list_records("token")]
    assert all(h and h not in response.text for h in stored_hashes)
    assert secret not in response.text
    assert "plk_" not in response.text


def test_a_revoked_token_gets_401_at_once(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    created = _create(client, admin).json()
    headers = _auth(created["token"])
    body = example("track_curl.json")
    assert client.post("/v1/events/track", content=body, headers=headers).status_code == 202

    revoked = client.delete(f"/v1/admin/tokens/{created['id']}", headers=admin)

    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    assert "token" not in revoked.json()
    after = client.post("/v1/events/track", content=body, headers=headers)
    assert after.status_code == 401
    assert after.json() == {"code": "invalid_token", "message": "Invalid or expired token"}
    listed = {t["id"]: t for t in client.get("/v1/admin/tokens", headers=admin).json()["tokens"]}
    assert listed[created["id"]]["revoked_at"] == revoked.json()["revoked_at"]


def test_an_admin_cannot_see_or_revoke_another_tenants_tokens(
    client: TestClient[Any], admin: dict[str, str], make_token: MakeToken
) -> None:
    admin_b = _auth(make_token("admin", tenant="casino-b"))
    theirs = _create(client, admin_b).json()
    staging = _auth(make_token("admin", tenant="casino-a", environment="staging"))
    staging_token = _create(client, staging).json()

    mine = client.get("/v1/admin/tokens", headers=admin).json()["tokens"]

    assert {(t["tenant"], t["environment"]) for t in mine} == {("casino-a", "live")}
    for other in (theirs, staging_token):
        response = client.delete(f"/v1/admin/tokens/{other['id']}", headers=admin)
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    still = client.post(
        "/v1/events/track", content=example("track_curl.json"), headers=_auth(theirs["token"])
    )
    assert still.status_code == 202


def test_revoking_an_unknown_token_is_404(client: TestClient[Any], admin: dict[str, str]) -> None:
    response = client.delete("/v1/admin/tokens/0123456789abcdef", headers=admin)
    assert response.status_code == 404


def test_admin_tokens_are_minted_only_for_the_callers_tenant_and_environment(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    created = _create(client, admin, tenant="casino-b", environment="staging")
    assert created.status_code == 422, "unknown fields are refused, not silently dropped"
    plain = _create(client, admin).json()
    assert (plain["tenant"], plain["environment"]) == ("casino-a", "live")


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"scopes": ["root"]}, "scopes"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["events:write"], "expires_in": "soon"}, "expires_in"),
        ({"scopes": ["events:write"], "expires_in": "0d"}, "expires_in"),
        ({"name": "no scopes"}, "scopes"),
    ],
)
def test_a_bad_token_request_is_422_naming_the_field(
    client: TestClient[Any], admin: dict[str, str], spec: dict[str, Any], named: str
) -> None:
    response = client.post("/v1/admin/tokens", json=spec, headers=admin)
    assert response.status_code == 422
    assert named in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/admin/tokens"),
        ("POST", "/v1/admin/tokens"),
        ("DELETE", "/v1/admin/tokens/0123456789abcdef"),
        ("GET", "/v1/admin/settings"),
        ("PUT", "/v1/admin/settings"),
        ("GET", "/v1/admin/conflicts"),
        ("GET", "/v1/admin/catalogue/findings"),
    ],
)
def test_every_admin_endpoint_refuses_a_token_without_the_admin_scope(
    client: TestClient[Any], writer: dict[str, str], method: str, path: str
) -> None:
    response = client.request(method, path, headers=writer, json={"scopes": ["admin"]})
    assert response.status_code == 403
    assert response.json() == {"code": "forbidden", "message": "Token scope insufficient"}
    anonymous = client.request(method, path, headers=JSON)
    assert anonymous.status_code == 401


def test_settings_default_to_warn_and_can_be_changed(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    assert client.get("/v1/admin/settings", headers=admin).json() == {"catalogue_mode": "warn"}
    put = client.put("/v1/admin/settings", json={"catalogue_mode": "strict"}, headers=admin)
    assert put.status_code == 200
    assert client.get("/v1/admin/settings", headers=admin).json() == {"catalogue_mode": "strict"}


def test_settings_belong_to_one_environment(
    client: TestClient[Any], admin: dict[str, str], make_token: MakeToken
) -> None:
    staging = _auth(make_token("admin", "events:write", environment="staging"))
    client.put("/v1/admin/settings", json={"catalogue_mode": "strict"}, headers=staging)

    assert client.get("/v1/admin/settings", headers=admin).json() == {"catalogue_mode": "warn"}
    live = client.post("/v1/events/track", json=_unknown_event("e-9"), headers=admin)
    assert live.json()["accepted"] == 1, "trying strict mode in staging leaves live alone"
    tried = client.post("/v1/events/track", json=_unknown_event("e-9"), headers=staging)
    assert tried.json()["errors"][0]["code"] == "UNKNOWN_EVENT"


def test_an_unknown_catalogue_mode_is_422(client: TestClient[Any], admin: dict[str, str]) -> None:
    response = client.put("/v1/admin/settings", json={"catalogue_mode": "loud"}, headers=admin)
    assert response.status_code == 422
    assert "catalogue_mode" in response.json()["detail"][0]["msg"]
    assert client.get("/v1/admin/settings", headers=admin).json() == {"catalogue_mode": "warn"}


def _unknown_event(event_id: str) -> dict[str, Any]:
    return {
        "events": [
            {
                "user_id": "ply_1",
                "event_id": event_id,
                "event_name": "moon_landing_bonus",
                "timestamp": "2026-05-18T15:16:00.000Z",
            }
        ]
    }


def test_strict_catalogue_mode_rejects_an_unknown_event_name(
    client: TestClient[Any], admin: dict[str, str], services: Services
) -> None:
    client.put("/v1/admin/settings", json={"catalogue_mode": "strict"}, headers=admin)

    response = client.post("/v1/events/track", json=_unknown_event("e-1"), headers=admin)

    assert response.status_code == 202
    assert response.json()["accepted"] == 0
    (error,) = response.json()["errors"]
    assert (error["index"], error["event_id"], error["code"]) == (0, "e-1", "UNKNOWN_EVENT")
    assert "moon_landing_bonus" in error["message"]
    assert services.log.head() == 0


def test_warn_mode_accepts_an_unknown_event_and_lists_the_finding(
    client: TestClient[Any], admin: dict[str, str], make_token: MakeToken
) -> None:
    response = client.post("/v1/events/track", json=_unknown_event("e-2"), headers=admin)
    assert response.json()["accepted"] == 1

    findings = client.get("/v1/admin/catalogue/findings", headers=admin).json()["findings"]

    assert len(findings) == 1
    assert findings[0]["event_id"] == "e-2"
    assert findings[0]["event_name"] == "moon_landing_bonus"
    assert findings[0]["code"] == "UNKNOWN_EVENT"
    other_admin = _auth(make_token("admin", tenant="casino-b"))
    theirs = client.get("/v1/admin/catalogue/findings", headers=other_admin).json()
    assert theirs == {"findings": []}
    metrics = client.get("/metrics").text
    assert 'playerlog_catalogue_violations_total{code="UNKNOWN_EVENT"} 1.0' in metrics


def test_off_mode_neither_rejects_nor_lists(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    client.put("/v1/admin/settings", json={"catalogue_mode": "off"}, headers=admin)
    response = client.post("/v1/events/track", json=_unknown_event("e-3"), headers=admin)
    assert response.json()["accepted"] == 1
    assert client.get("/v1/admin/catalogue/findings", headers=admin).json() == {"findings": []}


def test_a_unique_id_reused_with_other_content_is_dropped_and_listed_for_operators(
    client: TestClient[Any], admin: dict[str, str], services: Services, make_token: MakeToken
) -> None:
    item = {
        "event": "deposit",
        "data": {
            "unique_id": "dep-1",
            "timestamp": "2025-01-15T12:01:00Z",
            "player_id": "StQ-1",
            "amount": 100,
            "currency": "EUR",
            "method": "Credit Card",
        },
    }
    first = client.post("/api/v1/events", json={"items": [item]}, headers=admin)
    changed = {**item, "data": {**item["data"], "amount": 250}}

    second = client.post("/api/v1/events", json={"items": [changed]}, headers=admin)

    assert (first.status_code, second.status_code) == (204, 204)
    assert second.content == b""
    (stored,) = services.log.read()
    assert b'"amount":100' in stored.payload
    conflicts = client.get("/v1/admin/conflicts", headers=admin).json()["conflicts"]
    assert len(conflicts) == 1
    conflict = conflicts[0]
    assert conflict["unique_id"] == "dep-1"
    assert conflict["event"] == "deposit"
    assert conflict["original_position"] == stored.position
    assert conflict["differing_fields"] == ["data.amount"]
    assert '"amount":250' in conflict["payload"]
    metrics = client.get("/metrics").text
    assert 'playerlog_events_total{outcome="conflict",source="unified"} 1.0' in metrics
    assert 'playerlog_events_total{outcome="accepted",source="unified"} 1.0' in metrics
    other_admin = _auth(make_token("admin", tenant="casino-b"))
    assert client.get("/v1/admin/conflicts", headers=other_admin).json() == {"conflicts": []}


def test_a_plain_resend_is_a_duplicate_not_a_conflict(
    client: TestClient[Any], admin: dict[str, str]
) -> None:
    body = example("unified_curl.json")
    for _ in range(2):
        assert client.post("/api/v1/events", content=body, headers=admin).status_code == 204
    assert client.get("/v1/admin/conflicts", headers=admin).json() == {"conflicts": []}
    metrics = client.get("/metrics").text
    assert 'playerlog_events_total{outcome="duplicate",source="unified"} 3.0' in metrics
