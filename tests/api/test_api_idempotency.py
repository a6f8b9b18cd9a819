"""X-Idempotency-Key: a retry with the same key and body replays the stored answer
byte for byte; another body under the same key is a 409; keys belong to one tenant
and environment; only answers a retry would get again are kept."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services, build_services, create_asgi
from api.settings import Settings
from eventstore import EventLog, open_backend
from tests.api.conftest import MakeToken, example
from tests.api.fakes import FakeClock, GatedBackend, SwitchableLog

TRACK = "/v1/events/track"
UNIFIED = "/api/v1/events"
REPLAYED = "idempotent-replayed"

# Without event_id: were the request processed twice, the log would hold it twice
# (each time under a new server-made id), so "stored nothing new" means something.
NO_EVENT_ID = json.dumps(
    {
        "events": [
            {
                "user_id": "ply_776192",
                "event_name": "bet_placed",
                "timestamp": "2026-05-18T15:16:00.000Z",
                "properties": {"bet_amount": 2, "currency": "EUR", "game_id": "gates_of_olympus"},
            }
        ]
    }
).encode()


def _post(
    client: TestClient[Any],
    headers: dict[str, str],
    key: str,
    body: bytes = NO_EVENT_ID,
    path: str = TRACK,
) -> Any:
    return client.post(path, content=body, headers={**headers, "X-Idempotency-Key": key})


def _auth(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}


def test_same_key_and_body_replays_the_stored_response_byte_for_byte(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    first = _post(client, writer, "retry-1")
    assert first.status_code == 202
    assert REPLAYED not in first.headers
    assert services.log.head() == 1

    again = _post(client, writer, "retry-1")

    assert again.status_code == 202
    assert again.content == first.content
    assert again.headers["content-type"] == first.headers["content-type"]
    assert again.headers[REPLAYED] == "true"
    assert services.log.head() == 1, "the replay stored nothing new"


def test_a_replayed_unified_answer_is_the_same_empty_204(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    body = example("unified_curl.json")
    first = _post(client, writer, "batch-7", body, UNIFIED)
    again = _post(client, writer, "batch-7", body, UNIFIED)
    assert (first.status_code, again.status_code) == (204, 204)
    assert again.content == first.content == b""
    assert again.headers[REPLAYED] == "true"
    assert services.log.head() == 3


def test_same_key_with_a_different_body_is_409_with_a_clear_message(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    assert _post(client, writer, "order-42").status_code == 202
    other = NO_EVENT_ID.replace(b"bet_placed", b"bet_settled")

    response = _post(client, writer, "order-42", other)

    assert response.status_code == 409
    assert response.json()["code"] == "idempotency_key_reused"
    message = response.json()["message"]
    assert "'order-42'" in message
    assert "different request body" in message
    assert "24 hours" in message  # the default TTL, as configured
    assert "new key" in message
    assert services.log.head() == 1, "the conflicting request was not processed"


def test_same_key_on_another_endpoint_is_a_different_request(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    assert _post(client, writer, "k").status_code == 202
    response = _post(client, writer, "k", example("identify_curl.json"), "/v1/events/identify")
    assert response.status_code == 409


def test_keys_are_scoped_to_the_tenant_and_environment(
    client: TestClient[Any], make_token: MakeToken, services: Services
) -> None:
    first = _post(client, _auth(make_token(tenant="casino-a")), "shared-key")
    assert first.status_code == 202

    other_tenant = _post(client, _auth(make_token(tenant="casino-b")), "shared-key")
    staging = _post(
        client, _auth(make_token(tenant="casino-a", environment="staging")), "shared-key"
    )
    other_body = _post(
        client,
        _auth(make_token(tenant="casino-c")),
        "shared-key",
        NO_EVENT_ID.replace(b"bet_placed", b"bet_settled"),
    )

    for response in (other_tenant, staging, other_body):
        assert response.status_code == 202
        assert REPLAYED not in response.headers
        assert response.json()["accepted"] == 1
    stored = sorted((e.tenant, e.environment) for e in services.log.read())
    assert stored == [
        ("casino-a", "live"),
        ("casino-a", "staging"),
        ("casino-b", "live"),
        ("casino-c", "live"),
    ]


def test_a_422_answer_is_replayed_too(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    malformed = b'{"events": {}}'
    first = _post(client, writer, "bad-1", malformed)
    again = _post(client, writer, "bad-1", malformed)
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.content == first.content
    assert again.headers[REPLAYED] == "true"


def test_an_invalid_unified_batch_is_replayed_as_the_same_422(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    body = json.loads(example("unified_curl.json"))
    body["items"][1]["data"]["amount"] = "lots"
    first = _post(client, writer, "bad-2", json.dumps(body).encode(), UNIFIED)
    again = _post(client, writer, "bad-2", json.dumps(body).encode(), UNIFIED)
    assert (first.status_code, again.status_code) == (422, 422)
    assert again.content == first.content
    assert again.headers[REPLAYED] == "true"


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[GatedBackend, Services, TestClient[Any]]]:
    backend = GatedBackend(open_backend(f"sqlite:///{tmp_path / 'g.db'}"))
    log = EventLog(backend)
    services = build_services(Settings(db_url=backend.url, access_log=False), log=log)
    with TestClient(create_asgi(services=services)) as client:
        yield backend, services, client
    log.close()


def test_a_510_is_not_stored_so_the_retry_is_processed(
    gated: tuple[GatedBackend, Services, TestClient[Any]],
) -> None:
    backend, services, client = gated
    _, secret = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    body = example("unified_curl.json")
    backend.fail_with = OSError("disk I/O error")
    failed = _post(client, _auth(secret), "batch-1", body, UNIFIED)
    assert failed.status_code == 510

    backend.fail_with = None
    retry = _post(client, _auth(secret), "batch-1", body, UNIFIED)

    assert retry.status_code == 204
    assert REPLAYED not in retry.headers
    assert services.log.head() == 3


def test_a_503_is_not_stored_so_the_retry_is_processed(tmp_path: Path) -> None:
    settings = Settings(db_url=f"sqlite:///{tmp_path / 's.db'}", access_log=False)
    log = SwitchableLog(open_backend(settings.db_url))
    services = build_services(settings, log=log)
    _, secret = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    with TestClient(create_asgi(services=services)) as client:
        log.overloaded = True
        refused = _post(client, _auth(secret), "busy-1")
        log.overloaded = False
        retry = _post(client, _auth(secret), "busy-1")
    log.close()
    assert refused.status_code == 503
    assert retry.status_code == 202
    assert REPLAYED not in retry.headers
    assert retry.json()["accepted"] == 1


def test_an_expired_key_is_processed_afresh(tmp_path: Path) -> None:
    clock = FakeClock()
    settings = Settings(
        db_url=f"sqlite:///{tmp_path / 'e.db'}", access_log=False, idempotency_ttl=60.0
    )
    log = EventLog(
        open_backend(settings.db_url), idempotency_ttl=settings.idempotency_ttl, clock=clock
    )
    services = build_services(settings, log=log)
    _, secret = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    other = NO_EVENT_ID.replace(b"bet_placed", b"bet_settled")
    with TestClient(create_asgi(services=services)) as client:
        assert _post(client, _auth(secret), "k-1").status_code == 202
        clock.advance(59)
        within_ttl = _post(client, _auth(secret), "k-1")
        reused_within_ttl = _post(client, _auth(secret), "k-1", other)
        clock.advance(2)
        same_after_ttl = _post(client, _auth(secret), "k-1")
        clock.advance(61)
        other_after_ttl = _post(client, _auth(secret), "k-1", other)
    stored = [e.type for e in services.log.read()]
    log.close()
    assert within_ttl.headers[REPLAYED] == "true"
    assert reused_within_ttl.status_code == 409
    assert "1 minute" in reused_within_ttl.json()["message"]
    assert same_after_ttl.status_code == 202
    assert REPLAYED not in same_after_ttl.headers
    assert other_after_ttl.status_code == 202
    assert REPLAYED not in other_after_ttl.headers
    assert stored == ["bet_placed", "bet_placed", "bet_settled"]


@pytest.mark.parametrize(
    "key", ["", "k" * 256, "tab\tinside"], ids=["empty", "256-chars", "not-printable"]
)
def test_an_invalid_key_is_400_json_and_nothing_is_stored(
    client: TestClient[Any], writer: dict[str, str], services: Services, key: str
) -> None:
    response = _post(client, writer, key)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_idempotency_key"
    assert "X-Idempotency-Key" in response.json()["message"]
    assert services.log.head() == 0


def test_a_key_of_255_characters_is_accepted(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    assert _post(client, writer, "k" * 255).status_code == 202


def _while_the_first_is_being_written(
    gated: tuple[GatedBackend, Services, TestClient[Any]], first: bytes, second: bytes
) -> tuple[Any, Any]:
    """Send `first`, hold it at the log's writer, send `second` with the same key,
    give the second time to be processed, then let both finish."""
    backend, services, client = gated
    _, secret = services.tokens.create(tenant="t", environment="live", scopes=["events:write"])
    answers: dict[str, Any] = {}

    def send(name: str, body: bytes) -> None:
        answers[name] = _post(client, _auth(secret), "same-key", body)

    backend.gate.clear()
    one = threading.Thread(target=send, args=("first", first))
    one.start()
    deadline = time.monotonic() + 10
    while services.log.pending_events == 0 and time.monotonic() < deadline:
        time.sleep(0.005)
    two = threading.Thread(target=send, args=("second", second))
    two.start()
    time.sleep(0.2)  # long enough for the second to reach the writer, were it let through
    backend.gate.set()
    one.join(10)
    two.join(10)
    return answers["first"], answers["second"]


def test_a_concurrent_request_with_the_same_key_and_body_is_replayed_not_stored_twice(
    gated: tuple[GatedBackend, Services, TestClient[Any]],
) -> None:
    first, second = _while_the_first_is_being_written(gated, NO_EVENT_ID, NO_EVENT_ID)
    assert (first.status_code, second.status_code) == (202, 202)
    assert second.headers[REPLAYED] == "true"
    assert second.content == first.content
    assert gated[1].log.head() == 1


def test_a_concurrent_request_with_the_same_key_and_another_body_is_not_stored(
    gated: tuple[GatedBackend, Services, TestClient[Any]],
) -> None:
    other = NO_EVENT_ID.replace(b"bet_placed", b"bet_settled")
    first, second = _while_the_first_is_being_written(gated, NO_EVENT_ID, other)
    assert (first.status_code, second.status_code) == (202, 409)
    assert [e.type for e in gated[1].log.read()] == ["bet_placed"]
