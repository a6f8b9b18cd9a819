"""Statuses other than success: 413, 415, 422, 429, 503, 510, 404, 405."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services, build_services, create_asgi
from api.settings import Settings
from eventstore import EventLog, open_backend
from tests.api.conftest import example
from tests.api.fakes import GatedBackend

TRACK = example("track_request.json")


def _event(i: int) -> dict[str, Any]:
    return {
        "user_id": "ply_1",
        "event_id": f"e-{i}",
        "event_name": "bet_placed",
        "timestamp": "2026-05-18T15:16:00.000Z",
    }


def test_wrong_content_type_is_415(client: TestClient[Any], writer: dict[str, str]) -> None:
    headers = {**writer, "Content-Type": "text/plain"}
    response = client.post("/v1/events/track", content=TRACK, headers=headers)
    assert response.status_code == 415
    assert response.json()["code"] == "unsupported_media_type"


def test_body_that_is_not_json_is_422_json_invalid(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    response = client.post("/v1/events/track", content=b"{not json", headers=writer)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_events_that_is_not_an_array_is_422(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    response = client.post("/v1/events/track", content=b'{"events": {}}', headers=writer)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "events"]


def test_more_than_2500_track_events_is_422(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    body = json.dumps({"events": [_event(i) for i in range(2501)]})
    response = client.post("/v1/events/track", content=body, headers=writer)
    assert response.status_code == 422


def test_more_than_10000_unified_items_is_422_and_nothing_is_stored(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    item = {"event": "login", "data": {"timestamp": "2025-01-15T12:00:00Z", "player_id": "p"}}
    items = [{**item, "data": {**item["data"], "unique_id": f"u{i}"}} for i in range(10_001)]
    response = client.post("/api/v1/events", content=json.dumps({"items": items}), headers=writer)
    assert response.status_code == 422
    assert services.log.head() == 0


def test_unified_batch_with_one_bad_item_stores_nothing_and_lists_every_bad_item(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    body = json.loads(example("unified_curl.json"))
    body["items"][0]["data"]["amount"] = -1
    del body["items"][2]["data"]["player_id"]
    response = client.post("/api/v1/events", json=body, headers=writer)
    assert response.status_code == 422
    locs = [d["loc"] for d in response.json()["detail"]]
    assert locs == [
        ["body", "items", 0, "data", "amount"],
        ["body", "items", 2, "data", "player_id"],
    ]
    assert services.log.head() == 0


def test_unknown_route_and_wrong_method_answer_json(client: TestClient[Any]) -> None:
    assert client.get("/nope").json()["code"] == "not_found"
    response = client.get("/v1/events/track")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def _app(tmp_path: Path, **overrides: Any) -> tuple[Services, TestClient[Any]]:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 'x.db'}", access_log=False, **overrides)
    services = build_services(settings)
    return services, TestClient(create_asgi(services=services))


def test_body_over_the_limit_is_413_with_a_json_error(tmp_path: Path) -> None:
    services, client = _app(tmp_path, max_body_bytes=1000)
    _, secret = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    with client:
        response = client.post(
            "/v1/events/track",
            content=b" " * 2000,
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
        )
    services.close()
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_rate_limit_per_token_is_429_with_retry_after(tmp_path: Path) -> None:
    services, client = _app(tmp_path, rate_limit_per_second=1.0, rate_limit_burst=2.0)
    _, one = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    _, other = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    with client:
        statuses = [
            client.post(
                "/v1/events/track",
                content=TRACK,
                headers={"Authorization": f"Bearer {one}", "Content-Type": "application/json"},
            )
            for _ in range(3)
        ]
        other_token = client.post(
            "/v1/events/track",
            content=TRACK,
            headers={"Authorization": f"Bearer {other}", "Content-Type": "application/json"},
        )
    services.close()
    assert [r.status_code for r in statuses] == [202, 202, 429]
    assert int(statuses[2].headers["retry-after"]) >= 1
    assert other_token.status_code == 202


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[GatedBackend, Services, TestClient[Any], str]]:
    backend = GatedBackend(open_backend(f"sqlite:///{tmp_path / 'g.db'}"))
    settings = Settings(db_url=backend.url, access_log=False)
    log = EventLog(backend, max_pending_events=5)
    services = build_services(settings, log=log)
    _, secret = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    with TestClient(create_asgi(services=services)) as client:
        yield backend, services, client, secret
    backend.gate.set()
    log.close()


def test_store_failure_on_unified_is_510_listing_the_unique_ids_not_stored(
    gated: tuple[GatedBackend, Services, TestClient[Any], str],
) -> None:
    backend, services, client, secret = gated
    backend.fail_with = OSError("disk I/O error")
    response = client.post(
        "/api/v1/events",
        content=example("unified_curl.json"),
        headers={"x-api-key": secret, "Content-Type": "application/json"},
    )
    assert response.status_code == 510
    assert response.json()["unique_ids"] == ["9cd823d3fe", "9cd823d3ff", "ab12cd34ef"]
    backend.fail_with = None
    retry = client.post(
        "/api/v1/events",
        content=example("unified_curl.json"),
        headers={"x-api-key": secret, "Content-Type": "application/json"},
    )
    assert retry.status_code == 204
    assert services.log.head() == 3


def test_writer_falling_behind_is_503_with_retry_after_not_unbounded_memory(
    gated: tuple[GatedBackend, Services, TestClient[Any], str],
) -> None:
    backend, services, _, secret = gated
    backend.gate.clear()
    body = json.dumps({"events": [_event(i) for i in range(4)]}).encode()
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    # The first request's 4 events sit with the writer (blocked at the gate) and
    # count against the bound of 5: the next request of 4 is refused at once.
    results: list[int] = []
    with TestClient(create_asgi(services=services)) as c1:
        first = threading.Thread(
            target=lambda: results.append(
                c1.post("/v1/events/track", content=body, headers=headers).status_code
            )
        )
        first.start()
        while services.log.pending_events < 4:
            threading.Event().wait(0.01)
        with TestClient(create_asgi(services=services)) as c2:
            refused = c2.post(
                "/v1/events/track", content=body.replace(b"e-", b"f-"), headers=headers
            )
        backend.gate.set()
        first.join(10)
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["code"] == "overloaded"
    assert results == [202]
    assert services.log.head() == 4
