"""The admin endpoints for destinations, within the caller's tenant and environment.

The app here serves only these routes (with the API's own services, guard and
error handlers): the composition root adds them to the full app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from api.app import build_services
from api.responses import EXCEPTION_HANDLERS
from api.services import Services
from api.settings import Settings
from delivery.routes import DESTINATION_ROUTES
from delivery.store import DeadLetter, DestinationStore
from tests.delivery.helpers import SECRET, add_events

SPEC: dict[str, Any] = {
    "name": "crm",
    "kind": "webhook",
    "webhook": {"url": "https://crm.example/hooks", "secret": SECRET},
    "types": ["deposit_completed"],
}


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    built = build_services(Settings(db_url=f"sqlite:///{tmp_path / 'api.db'}", access_log=False))
    yield built
    built.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient[Any]]:
    app = Litestar(route_handlers=DESTINATION_ROUTES, exception_handlers=EXCEPTION_HANDLERS)
    app.state.services = services
    with TestClient(app) as test_client:
        yield test_client


def _admin(
    services: Services, tenant: str = "casino-a", environment: str = "live"
) -> dict[str, str]:
    _, secret = services.tokens.create(tenant=tenant, environment=environment, scopes=["admin"])
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def test_create_then_list_shows_settings_and_status_without_the_secret(
    client: TestClient[Any], services: Services
) -> None:
    admin = _admin(services)
    add_events(services.log, 3)

    created = client.post("/v1/admin/destinations", json=SPEC, headers=admin)
    listed = client.get("/v1/admin/destinations", headers=admin)

    assert created.status_code == 201
    assert created.json()["tenant"] == "casino-a"
    assert created.json()["environment"] == "live"
    assert listed.status_code == 200
    (shown,) = listed.json()["destinations"]
    assert shown["webhook"]["secret"] == "********"
    assert SECRET not in listed.text
    assert shown["status"]["head"] == 3
    assert shown["status"]["lag"] == 3


def test_posting_again_replaces_the_settings(client: TestClient[Any], services: Services) -> None:
    admin = _admin(services)
    client.post("/v1/admin/destinations", json=SPEC, headers=admin)

    replaced = client.post("/v1/admin/destinations", json={**SPEC, "batch_size": 7}, headers=admin)

    assert replaced.status_code == 200
    assert client.get("/v1/admin/destinations/crm", headers=admin).json()["batch_size"] == 7


def test_invalid_settings_get_422_naming_the_field(
    client: TestClient[Any], services: Services
) -> None:
    response = client.post(
        "/v1/admin/destinations",
        json={**SPEC, "webhook": {"url": "https://x.example", "secret": "short"}},
        headers=_admin(services),
    )

    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "webhook", "secret"]
    assert problem["msg"].startswith("secret: must be at least 16 characters")


def test_a_token_cannot_create_a_destination_for_another_tenant(
    client: TestClient[Any], services: Services
) -> None:
    response = client.post(
        "/v1/admin/destinations", json={**SPEC, "tenant": "casino-b"}, headers=_admin(services)
    )

    assert response.status_code == 403
    assert "tenant: this token acts for casino-a/live only" in response.json()["message"]


def test_another_tenant_s_destinations_are_invisible(
    client: TestClient[Any], services: Services
) -> None:
    client.post("/v1/admin/destinations", json=SPEC, headers=_admin(services))
    other = _admin(services, tenant="casino-b")
    staging = _admin(services, environment="staging")

    assert client.get("/v1/admin/destinations", headers=other).json() == {"destinations": []}
    assert client.get("/v1/admin/destinations/crm", headers=staging).status_code == 404
    assert client.delete("/v1/admin/destinations/crm", headers=other).status_code == 404


def test_replay_moves_the_checkpoint_and_bad_starts_are_422(
    client: TestClient[Any], services: Services
) -> None:
    admin = _admin(services)
    add_events(services.log, 5)
    client.post("/v1/admin/destinations", json=SPEC, headers=admin)

    ok = client.post("/v1/admin/destinations/crm/replay", json={"from_position": 3}, headers=admin)
    by_time = client.post(
        "/v1/admin/destinations/crm/replay",
        json={"from_time": "2025-01-31T12:00:00Z"},
        headers=admin,
    )
    bad = client.post("/v1/admin/destinations/crm/replay", json={"from_position": 0}, headers=admin)
    both = client.post("/v1/admin/destinations/crm/replay", json={}, headers=admin)

    assert ok.status_code == 200
    assert ok.json() == {"name": "crm", "checkpoint": 2}
    assert by_time.json()["checkpoint"] == 0
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "from_position"]
    assert "give exactly one" in both.json()["detail"][0]["msg"]


def test_dead_letters_are_listed_in_log_order(client: TestClient[Any], services: Services) -> None:
    admin = _admin(services)
    client.post("/v1/admin/destinations", json=SPEC, headers=admin)
    store = DestinationStore(services.log)
    destination = store.find("crm")
    store.add_dead_letters(
        destination,
        [
            DeadLetter(
                position=p,
                event_id=f"e{p}",
                type="t",
                subject="s",
                reason="HTTP 400",
                first_failure=0.0,
                attempts=1,
                dead_lettered_at=0.0,
            )
            for p in (12, 3)
        ],
    )

    response = client.get("/v1/admin/destinations/crm/dead-letters", headers=admin)

    assert response.status_code == 200
    assert [d["position"] for d in response.json()["dead_letters"]] == [3, 12]
    assert response.json()["dead_letters"][0]["first_failure"] == "1970-01-01T00:00:00+00:00"


def test_delete_then_it_is_gone(client: TestClient[Any], services: Services) -> None:
    admin = _admin(services)
    client.post("/v1/admin/destinations", json=SPEC, headers=admin)

    assert client.delete("/v1/admin/destinations/crm", headers=admin).json() == {"deleted": "crm"}
    assert client.get("/v1/admin/destinations/crm", headers=admin).status_code == 404


def test_the_endpoints_need_the_admin_scope(client: TestClient[Any], services: Services) -> None:
    _, secret = services.tokens.create(
        tenant="casino-a", environment="live", scopes=["events:write"]
    )

    response = client.get("/v1/admin/destinations", headers={"Authorization": f"Bearer {secret}"})

    assert response.status_code == 403
