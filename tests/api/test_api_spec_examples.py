"""Every example request of both spec files, sent verbatim, gets the documented answer."""

from __future__ import annotations

import json
from typing import Any

from litestar.testing import TestClient

from api.app import Services
from tests.api.conftest import example


def test_track_example_request_is_accepted_as_documented(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    body = example("track_request.json")
    response = client.post("/v1/events/track", content=body, headers=writer)
    assert response.status_code == 202
    documented = json.loads(example("track_response_full_success.json"))
    assert {k: response.json()[k] for k in documented} == documented


def test_track_curl_example_is_accepted(client: TestClient[Any], writer: dict[str, str]) -> None:
    response = client.post("/v1/events/track", content=example("track_curl.json"), headers=writer)
    assert response.status_code == 202
    assert response.json()["accepted"] == 1
    assert response.json()["errors"] == []


def test_identify_examples_echo_the_user_id(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    documented = json.loads(example("identify_response.json"))
    for name in ("identify_registration.json", "identify_vip_upgrade.json", "identify_curl.json"):
        response = client.post("/v1/events/identify", content=example(name), headers=writer)
        assert response.status_code == 202, name
        assert response.json() == documented


def test_unified_curl_example_is_accepted_with_an_empty_204(
    client: TestClient[Any], make_token: Any, services: Services
) -> None:
    headers = {"x-api-key": make_token("events:write"), "Content-Type": "application/json"}
    response = client.post("/api/v1/events", content=example("unified_curl.json"), headers=headers)
    assert response.status_code == 204
    assert response.content == b""
    assert [e.type for e in services.log.read()] == ["gameround", "gameround", "deposit"]


def test_unified_example_with_a_bearer_token_as_its_curl_shows(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    response = client.post("/api/v1/events", content=example("unified_curl.json"), headers=writer)
    assert response.status_code == 204


def test_partial_failure_example_shape_for_a_missing_event_name(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    body = json.loads(example("track_request.json"))
    del body["events"][1]["event_name"]
    response = client.post("/v1/events/track", json=body, headers=writer)
    assert response.status_code == 202
    assert response.json()["errors"] == json.loads(
        example("track_response_partial_failure.json")
    )["errors"]
    assert (response.json()["accepted"], response.json()["rejected"]) == (1, 1)


def test_identify_without_user_id_is_the_documented_422(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    response = client.post(
        "/v1/events/identify",
        content=b'{"timestamp": "2026-05-18T14:38:00.000Z"}',
        headers=writer,
    )
    assert response.status_code == 422
    assert response.json() == json.loads(example("error_422.json"))
