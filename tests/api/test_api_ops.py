"""Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI
document and Swagger UI. All unauthenticated."""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services, build_services, create_app, create_asgi
from api.settings import Settings
from eventstore import EventLog, open_backend
from tests.api.conftest import example
from tests.api.fakes import GatedBackend

INGEST = ("/v1/events/track", "/v1/events/identify", "/api/v1/events")
UNIFIED_TYPES = ("gameround", "deposit", "withdraw", "player", "game", "login")


def test_healthz_answers_ok(client: TestClient[Any]) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_log_head(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    assert client.get("/readyz").json()["head"] == 0
    client.post("/v1/events/track", content=example("track_request.json"), headers=writer)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["head"] == 2


@pytest.fixture
def flaky(tmp_path: Path) -> Iterator[tuple[GatedBackend, Services, TestClient[Any]]]:
    """An app over a backend whose head can fail and whose writes can be held."""
    backend = GatedBackend(open_backend(f"sqlite:///{tmp_path / 'r.db'}"))
    log = EventLog(backend)
    services = build_services(Settings(db_url=backend.url, access_log=False), log=log)
    with TestClient(create_asgi(services=services)) as client:
        yield backend, services, client
    backend.head_fails_with = None
    backend.gate.set()
    log.close()


def test_readyz_is_503_when_the_database_is_unusable(
    flaky: tuple[GatedBackend, Services, TestClient[Any]],
) -> None:
    backend, _, client = flaky
    backend.head_fails_with = sqlite3.OperationalError("unable to open database file")

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert "unable to open database file" in response.json()["reason"]
    assert client.get("/healthz").status_code == 200, "alive, just not ready"
    backend.head_fails_with = None
    assert client.get("/readyz").status_code == 200


def _samples(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def test_metrics_are_prometheus_text_with_the_documented_families(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    client.post("/v1/events/track", content=example("track_request.json"), headers=writer)
    client.post("/v1/events/track", content=example("track_request.json"), headers=writer)
    client.post("/api/v1/events", content=example("unified_curl.json"), headers=writer)
    bad = example("track_request.json").replace(b'"bet_placed"', b'"BetPlaced"')
    client.post("/v1/events/track", content=bad.replace(b"0008", b"0009"), headers=writer)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for family, kind in (
        ("playerlog_http_requests_total", "counter"),
        ("playerlog_events_total", "counter"),
        ("playerlog_append_seconds", "histogram"),
        ("playerlog_writer_queue_events", "gauge"),
        ("playerlog_catalogue_violations_total", "counter"),
    ):
        assert f"# TYPE {family} {kind}" in text
        assert f"# HELP {family} " in text
    samples = _samples(text)
    track = 'playerlog_http_requests_total{method="POST",route="/v1/events/track",status="202"}'
    assert samples[track] == 3
    assert samples['playerlog_events_total{outcome="accepted",source="track"}'] == 2
    assert samples['playerlog_events_total{outcome="duplicate",source="track"}'] == 3
    assert samples['playerlog_events_total{outcome="rejected",source="track"}'] == 1
    assert samples['playerlog_events_total{outcome="accepted",source="unified"}'] == 3
    assert samples["playerlog_append_seconds_count"] == 4
    assert samples['playerlog_append_seconds_bucket{le="+Inf"}'] == 4
    assert samples["playerlog_writer_queue_events"] == 0


def test_the_writer_queue_gauge_shows_events_waiting_for_the_log(
    flaky: tuple[GatedBackend, Services, TestClient[Any]],
) -> None:
    backend, services, client = flaky
    _, secret = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    backend.gate.clear()
    sending = threading.Thread(
        target=client.post,
        args=("/v1/events/track",),
        kwargs={"content": example("track_request.json"), "headers": headers},
    )
    sending.start()
    deadline = time.monotonic() + 10
    while services.log.pending_events == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    waiting = _samples(client.get("/metrics").text)["playerlog_writer_queue_events"]
    backend.gate.set()
    sending.join(10)
    assert waiting == 2
    assert _samples(client.get("/metrics").text)["playerlog_writer_queue_events"] == 0


def test_requests_that_match_no_route_are_counted_as_unmatched(client: TestClient[Any]) -> None:
    client.get("/nowhere")
    samples = _samples(client.get("/metrics").text)
    unmatched = 'playerlog_http_requests_total{method="GET",route="unmatched",status="404"}'
    assert samples[unmatched] == 1


@pytest.fixture
def openapi(client: TestClient[Any]) -> dict[str, Any]:
    response = client.get("/schema/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def test_openapi_documents_every_endpoint(
    openapi: dict[str, Any], services: Services
) -> None:
    routes = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method)
        for route in create_app(services=services).routes
        for method in getattr(route, "methods", ())
        if method != "OPTIONS" and not route.path.startswith("/schema")
    }
    documented = {
        (path, method.upper()) for path, item in openapi["paths"].items() for method in item
    }
    assert len(routes) == 27
    assert routes == documented


def test_openapi_has_the_bearer_and_api_key_schemes(openapi: dict[str, Any]) -> None:
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {"type": "apiKey", "name": "x-api-key", "in": "header"}
    assert openapi["security"] == [{"bearer": []}]
    unified = openapi["paths"]["/api/v1/events"]["post"]
    assert {"apiKey": []} in unified["security"]
    assert {"bearer": []} in unified["security"]


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("/v1/events/track", "TrackRequest"),
        ("/v1/events/identify", "IdentifyRequest"),
        ("/api/v1/events", "UnifiedRequest"),
    ],
)
def test_openapi_documents_the_request_body_of_each_ingest_endpoint(
    openapi: dict[str, Any], path: str, schema: str
) -> None:
    body = openapi["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    assert ref == f"#/components/schemas/{schema}"
    assert schema in openapi["components"]["schemas"]


def test_openapi_documents_the_required_fields_as_the_specs_do(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    assert set(schemas["TrackEvent"]["required"]) == {"user_id", "event_name", "timestamp"}
    assert set(schemas["IdentifyRequest"]["required"]) == {"user_id", "timestamp"}
    assert set(schemas["GameRoundData"]["required"]) == {
        "unique_id", "timestamp", "player_id", "game_id", "round_id", "amount", "currency",
        "is_win", "is_bonus",
    }


def test_openapi_unified_items_are_a_tagged_union_on_event(openapi: dict[str, Any]) -> None:
    items = openapi["components"]["schemas"]["UnifiedRequest"]["properties"]["items"]["items"]
    discriminator = items["discriminator"]
    assert discriminator["propertyName"] == "event"
    assert set(discriminator["mapping"]) == set(UNIFIED_TYPES)
    variants = {v["$ref"] for v in items["anyOf"]}
    assert set(discriminator["mapping"].values()) == variants
    schemas = openapi["components"]["schemas"]
    for tag, ref in discriminator["mapping"].items():
        variant = schemas[ref.rsplit("/", 1)[1]]
        assert variant["properties"]["event"]["enum"] == [tag]


def test_openapi_documents_the_422_body_shape(openapi: dict[str, Any]) -> None:
    schemas = openapi["components"]["schemas"]
    for path in INGEST:
        responses = openapi["paths"][path]["post"]["responses"]
        ref = responses["422"]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/ValidationErrorBody"
        assert {"401", "403", "409", "413", "415", "429", "503"} <= set(responses)
    body = schemas["ValidationErrorBody"]
    assert body["required"] == ["detail"]
    assert body["properties"]["detail"]["items"]["$ref"] == "#/components/schemas/ErrorDetail"
    detail = schemas["ErrorDetail"]
    assert set(detail["required"]) == {"loc", "msg", "type", "input", "ctx"}
    assert set(schemas["ErrorBody"]["required"]) == {"code", "message"}
    unified = openapi["paths"]["/api/v1/events"]["post"]["responses"]
    assert "204" in unified
    assert "content" not in unified["204"]
    assert unified["510"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/NotStoredBody"
    )


def test_swagger_ui_is_served_as_html(client: TestClient[Any]) -> None:
    response = client.get("/schema/swagger")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in response.text
    assert "/v1/events/track" in response.text  # the document is embedded in the page


@pytest.mark.parametrize("path", INGEST)
def test_openapi_documents_the_specs_request_headers(openapi: dict[str, Any], path: str) -> None:
    operation = openapi["paths"][path]["post"]
    headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
    assert headers["X-Idempotency-Key"]["schema"]["maxLength"] == 255
    assert headers["X-Client-Id"]["required"] is False
    assert "400" in operation["responses"]
    success = next(r for status, r in operation["responses"].items() if status.startswith("2"))
    assert {"X-Log-Position", "Idempotent-Replayed"} <= set(success["headers"])


def test_openapi_documents_the_admin_bodies(openapi: dict[str, Any]) -> None:
    paths, schemas = openapi["paths"], openapi["components"]["schemas"]
    create = paths["/v1/admin/tokens"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/NewToken"
    )
    assert schemas["NewToken"]["required"] == ["scopes"]
    assert "token" in schemas["CreatedToken"]["required"]
    assert "secret_sha256" not in schemas["TokenInfo"]["properties"]
    settings = paths["/v1/admin/settings"]["put"]["requestBody"]["content"]["application/json"]
    assert settings["schema"]["$ref"].endswith("/TenantSettings")
    mode = schemas["TenantSettings"]["properties"]["catalogue_mode"]
    assert sorted(mode["enum"]) == ["off", "strict", "warn"]
    listed = paths["/v1/admin/tokens"]["get"]["responses"]["200"]["content"]["application/json"]
    assert listed["schema"]["$ref"].endswith("/TokenList")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_openapi_says_the_operations_endpoints_need_no_credentials(
    openapi: dict[str, Any], client: TestClient[Any], path: str
) -> None:
    assert openapi["paths"][path]["get"]["security"] == []
    assert client.get(path).status_code == 200
