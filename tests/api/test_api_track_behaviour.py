"""POST /v1/events/track over HTTP: each event accepted or rejected on its own,
every per-event error code, duplicates, conflicts, server-made ids, positions
(and an identify user_id the log cannot store)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from litestar.testing import TestClient

from api.app import Services
from api.tenants import TenantSettings
from ingest import MAX_EVENT_BYTES
from tests.api.conftest import EXAMPLES, example

TRACK = "/v1/events/track"
SAMPLE_ID = "a1b2c3d4-0000-0000-0000-0007"


def _event(**changes: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "user_id": "ply_776192",
        "session_id": "sess_abc12398",
        "event_id": f"evt-{uuid.uuid4()}",
        "event_name": "bet_placed",
        "timestamp": "2026-05-18T15:16:00.000Z",
        "device_type": "mobile",
        "platform": "android",
        "brand_id": "brand_01",
        "properties": {"bet_amount": 2, "currency": "EUR", "game_id": "gates_of_olympus"},
    }
    for name, value in changes.items():
        if value is _DELETE:
            del event[name]
        else:
            event[name] = value
    return event


_DELETE = object()

# (case id, changes to a valid event, expected code, words the message must contain)
ERROR_CASES: list[tuple[str, dict[str, Any], str, tuple[str, ...]]] = [
    ("user_id missing", {"user_id": _DELETE}, "MISSING_FIELD", ("user_id", "required")),
    ("event_name missing", {"event_name": _DELETE}, "MISSING_FIELD", ("event_name is required",)),
    ("timestamp missing", {"timestamp": _DELETE}, "MISSING_FIELD", ("timestamp", "required")),
    ("user_id a number", {"user_id": 42}, "INVALID_TYPE", ("user_id", "string")),
    ("event_name a bool", {"event_name": True}, "INVALID_TYPE", ("event_name",)),
    ("timestamp a number", {"timestamp": 1747580400}, "INVALID_TYPE", ("timestamp",)),
    ("properties an array", {"properties": []}, "INVALID_TYPE", ("properties", "object")),
    ("session_id an object", {"session_id": {}}, "INVALID_TYPE", ("session_id",)),
    ("device_type unknown", {"device_type": "watch"}, "INVALID_VALUE",
     ("device_type", "mobile, tablet, desktop", "watch")),
    ("platform unknown", {"platform": "windows"}, "INVALID_VALUE",
     ("platform", "ios, android, web", "windows")),
    ("event_name not snake_case", {"event_name": "BetPlaced"}, "INVALID_VALUE",
     ("event_name", "snake_case", "BetPlaced")),
    ("event_name with spaces", {"event_name": "bet placed"}, "INVALID_VALUE", ("event_name",)),
    ("timestamp without zone", {"timestamp": "2026-05-18T15:16:00"}, "INVALID_VALUE",
     ("timestamp", "timezone")),
    ("timestamp not a date", {"timestamp": "yesterday"}, "INVALID_VALUE", ("timestamp",)),
    ("timestamp impossible day", {"timestamp": "2026-02-30T10:00:00Z"}, "INVALID_VALUE",
     ("timestamp",)),
    ("event_id empty", {"event_id": ""}, "INVALID_VALUE", ("event_id",)),
    # The log cannot store NUL in its text columns: the sender's error, not a 500.
    ("user_id with a NUL", {"user_id": "ply\x00776192"}, "INVALID_VALUE",
     ("user_id must not contain NUL characters",)),
    ("event_id with a NUL", {"event_id": "evt\x00-1"}, "INVALID_VALUE",
     ("event_id must not contain NUL characters",)),
    ("event over 32 KB", {"properties": {"blob": "x" * MAX_EVENT_BYTES}}, "PAYLOAD_TOO_LARGE",
     ("bytes", "32 KB")),
]


@pytest.mark.parametrize(
    ("changes", "code", "words"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_each_per_event_error_code_is_reachable_over_http(
    client: TestClient[Any],
    writer: dict[str, str],
    services: Services,
    changes: dict[str, Any],
    code: str,
    words: tuple[str, ...],
) -> None:
    good, bad = _event(), _event(**changes)

    response = client.post(TRACK, json={"events": [good, bad]}, headers=writer)

    assert response.status_code == 202
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    (error,) = body["errors"]
    assert error["index"] == 1
    assert error["code"] == code
    for word in words:
        assert word in error["message"]
    sent_id = bad.get("event_id")
    usable = sent_id if sent_id and "\x00" not in sent_id else None
    assert error["event_id"] == usable
    assert [e.event_id for e in services.log.read()] == [good["event_id"]]


def test_all_error_codes_in_one_batch_keep_every_valid_event(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    events: list[dict[str, Any]] = []
    expected: dict[int, str] = {}
    for _, changes, code, _ in ERROR_CASES:
        events.append(_event())
        expected[len(events)] = code
        events.append(_event(**changes))
    events.append(_event())

    response = client.post(TRACK, json={"events": events}, headers=writer)

    body = response.json()
    assert body["accepted"] == len(ERROR_CASES) + 1
    assert body["rejected"] == len(ERROR_CASES)
    assert {e["index"]: e["code"] for e in body["errors"]} == expected
    assert [e["index"] for e in body["errors"]] == sorted(expected)
    valid = [e["event_id"] for i, e in enumerate(events) if i not in expected]
    assert [e.event_id for e in services.log.read()] == valid


def test_strict_catalogue_mode_rejects_an_unknown_event_with_unknown_event(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    services.tenants.put("casino-a", "live", TenantSettings(catalogue_mode="strict"))
    unknown = _event(event_name="free_lunch_claimed", properties=None)
    known = _event(event_name="logout", properties=None)

    response = client.post(TRACK, json={"events": [unknown, known]}, headers=writer)

    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 1)
    assert body["errors"][0]["code"] == "UNKNOWN_EVENT"
    assert "free_lunch_claimed" in body["errors"][0]["message"]
    assert body["errors"][0]["event_id"] == unknown["event_id"]


def test_the_same_unknown_event_is_accepted_in_the_default_warn_mode(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    unknown = _event(event_name="free_lunch_claimed", properties=None)
    response = client.post(TRACK, json={"events": [unknown]}, headers=writer)
    assert response.json() == {"accepted": 1, "rejected": 0, "errors": [], "position": 1}


def test_a_resent_event_is_a_duplicate_and_counts_as_accepted(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    first = client.post(TRACK, content=example("track_curl.json"), headers=writer)
    compact = json.dumps(json.loads(example("track_curl.json")), separators=(",", ":"))

    again = client.post(TRACK, content=compact, headers=writer)

    assert again.json()["accepted"] == 1
    assert again.json()["errors"] == []
    assert again.headers["x-log-position"] == first.headers["x-log-position"] == "1"
    assert services.log.head() == 1


def _fetch_example_body() -> bytes:
    """The JS fetch example's body: the cURL event with `new Date().toISOString()`."""
    script = (EXAMPLES / "track_fetch.js.txt").read_text()
    assert "timestamp: new Date().toISOString()," in script
    assert f'event_id: "{SAMPLE_ID}"' in script
    body = json.loads(example("track_curl.json"))
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    body["events"][0]["timestamp"] = now
    return json.dumps(body, separators=(",", ":")).encode()


def test_the_specs_examples_one_after_another_conflict_and_the_message_says_why(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    curl = client.post(TRACK, content=example("track_curl.json"), headers=writer)
    assert curl.json()["accepted"] == 1

    fetch = client.post(TRACK, content=_fetch_example_body(), headers=writer)

    assert fetch.status_code == 202
    body = fetch.json()
    assert (body["accepted"], body["rejected"]) == (0, 1)
    (error,) = body["errors"]
    assert error["code"] == "EVENT_ID_CONFLICT"
    assert error["event_id"] == SAMPLE_ID
    assert error["index"] == 0
    assert "differs in: timestamp)" in error["message"]
    assert "already stored" in error["message"]
    assert "new event_id" in error["message"]
    assert "x-log-position" not in fetch.headers
    assert services.log.head() == 1


def test_a_conflict_message_names_every_differing_field(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    original = _event()
    changed = {
        **original,
        "platform": "ios",
        "properties": {**original["properties"], "bet_amount": 3},
    }
    client.post(TRACK, json={"events": [original]}, headers=writer)
    response = client.post(TRACK, json={"events": [changed]}, headers=writer)
    message = response.json()["errors"][0]["message"]
    assert "differs in: platform, properties.bet_amount)" in message


def test_an_event_without_event_id_gets_a_server_generated_uuidv7(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    events = [_event(event_id=_DELETE), _event(event_id=_DELETE), _event(event_id=None)]

    response = client.post(TRACK, json={"events": events}, headers=writer)

    assert response.json()["accepted"] == 3
    ids = [e.event_id for e in services.log.read()]
    parsed = [uuid.UUID(i) for i in ids]
    assert all(u.version == 7 for u in parsed)
    assert len(set(ids)) == 3
    assert ids == sorted(ids), "time-ordered"
    again = client.post(TRACK, json={"events": events[:1]}, headers=writer)
    assert again.json()["accepted"] == 1
    assert services.log.head() == 4, "without an event_id a resend is a new event"


def test_x_log_position_and_the_position_field_give_the_last_accepted_event(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    first = client.post(TRACK, content=example("track_request.json"), headers=writer)
    assert first.json()["position"] == 2
    assert first.headers["x-log-position"] == "2"

    second = client.post(TRACK, json={"events": [_event()]}, headers=writer)
    assert second.json()["position"] == 3
    assert second.headers["x-log-position"] == "3"

    rejected = client.post(TRACK, json={"events": [_event(user_id=_DELETE)]}, headers=writer)
    assert rejected.json()["position"] is None
    assert "x-log-position" not in rejected.headers


def test_identify_and_unified_answers_carry_x_log_position(
    client: TestClient[Any], writer: dict[str, str]
) -> None:
    identify = client.post(
        "/v1/events/identify", content=example("identify_registration.json"), headers=writer
    )
    assert identify.headers["x-log-position"] == "1"
    unified = client.post("/api/v1/events", content=example("unified_curl.json"), headers=writer)
    assert unified.status_code == 204
    assert unified.headers["x-log-position"] == "4"


def test_a_malformed_body_is_a_422_not_a_per_event_error(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    for body in (b'{"events": []}', b'{"events": "x"}', b"[]", b'{"evnts": []}'):
        response = client.post(TRACK, content=body, headers=writer)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"][0] == "body"
    assert services.log.head() == 0


def test_an_identify_user_id_the_log_cannot_store_is_a_422(
    client: TestClient[Any], writer: dict[str, str], services: Services
) -> None:
    body = {"user_id": "ply\x00776192", "timestamp": "2026-05-18T14:38:00.000Z"}
    response = client.post("/v1/events/identify", json=body, headers=writer)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["body", "user_id"],
                "msg": "user_id must not contain NUL characters",
                "type": "value_error",
                "input": "ply\x00776192",
                "ctx": {},
            }
        ]
    }
    assert services.log.head() == 0
