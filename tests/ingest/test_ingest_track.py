"""POST /v1/events/track: per-event validation, 422s for the body, envelopes."""

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from ingest_examples import CONTEXT, RECEIVED_AT

from ingest import (
    MAX_EVENT_BYTES,
    MAX_TRACK_EVENTS,
    Catalogue,
    EventError,
    EventErrorCode,
    RequestInvalid,
    TrackBatch,
    ViolationCode,
    decode_track,
    decode_track_event,
)

VALID: dict[str, Any] = {
    "user_id": "ply_1",
    "event_id": "evt-1",
    "event_name": "logout",
    "timestamp": "2026-05-18T14:38:00.000Z",
}
OTHER: dict[str, Any] = {**VALID, "event_id": "evt-0"}
DROP = object()


def body_of(*events: Any) -> bytes:
    return msgspec.json.encode({"events": list(events)})


def decode(*events: Any, **options: Any) -> TrackBatch:
    return decode_track(body_of(*events), **CONTEXT, **{"catalogue_mode": "off", **options})


def with_(**changes: Any) -> dict[str, Any]:
    event = dict(VALID)
    for key, value in changes.items():
        if value is DROP:
            del event[key]
        else:
            event[key] = value
    return event


# --- per-event errors ---------------------------------------------------------------------------

MISSING, TYPE, VALUE = (
    EventErrorCode.MISSING_FIELD,
    EventErrorCode.INVALID_TYPE,
    EventErrorCode.INVALID_VALUE,
)
SNAKE = "must be snake_case (lower-case letters, digits and underscores), got"

PER_EVENT_ERRORS = [
    # (event, code, message, event_id named in the error)
    (with_(user_id=DROP), MISSING, "user_id is required", "evt-1"),
    (with_(event_name=DROP), MISSING, "event_name is required", "evt-1"),
    (with_(timestamp=DROP), MISSING, "timestamp is required", "evt-1"),
    (with_(user_id=42), TYPE, "user_id must be a string, got integer", "evt-1"),
    (with_(user_id=None), TYPE, "user_id must be a string, got null", "evt-1"),
    (with_(user_id=""), VALUE, "user_id must not be empty", "evt-1"),
    (with_(event_id=""), VALUE, "event_id must not be empty", None),
    (with_(event_id=7), TYPE, "event_id must be a string or null, got integer", None),
    (with_(event_name=1), TYPE, "event_name must be a string, got integer", "evt-1"),
    (with_(event_name=["a"]), TYPE, "event_name must be a string, got array", "evt-1"),
    (with_(event_name="LoginSuccess"), VALUE, f"event_name {SNAKE} 'LoginSuccess'", "evt-1"),
    (with_(event_name="login-success"), VALUE, f"event_name {SNAKE} 'login-success'", "evt-1"),
    (with_(event_name="login__success"), VALUE, f"event_name {SNAKE} 'login__success'", "evt-1"),
    (with_(event_name="_login"), VALUE, f"event_name {SNAKE} '_login'", "evt-1"),
    (with_(event_name="1st_login"), VALUE, f"event_name {SNAKE} '1st_login'", "evt-1"),
    (with_(event_name=""), VALUE, f"event_name {SNAKE} ''", "evt-1"),
    (
        with_(timestamp="2026-05-18T14:38:00.000"),
        VALUE,
        "timestamp must include a timezone (Z or an offset such as +02:00)",
        "evt-1",
    ),
    (
        with_(timestamp="yesterday"),
        VALUE,
        "timestamp must be an ISO 8601 datetime with a timezone, e.g. 2026-05-18T14:38:00.000Z",
        "evt-1",
    ),
    (
        with_(timestamp="2026-05-18"),
        VALUE,
        "timestamp must be an ISO 8601 datetime with a timezone, e.g. 2026-05-18T14:38:00.000Z",
        "evt-1",
    ),
    (
        with_(timestamp=1779115080),
        TYPE,
        "timestamp must be an ISO 8601 datetime string, got integer",
        "evt-1",
    ),
    (
        with_(timestamp="0001-01-01T00:00:00+01:00"),
        VALUE,
        "timestamp is out of range once converted to UTC",
        "evt-1",
    ),
    (
        with_(device_type="phone"),
        VALUE,
        "device_type must be one of mobile, tablet, desktop, got 'phone'",
        "evt-1",
    ),
    (
        with_(device_type="Mobile"),
        VALUE,
        "device_type must be one of mobile, tablet, desktop, got 'Mobile'",
        "evt-1",
    ),
    (
        with_(platform="windows"),
        VALUE,
        "platform must be one of ios, android, web, got 'windows'",
        "evt-1",
    ),
    (with_(platform=3), TYPE, "platform must be a string or null, got integer", "evt-1"),
    (with_(properties=[]), TYPE, "properties must be an object or null, got array", "evt-1"),
    (with_(properties="x"), TYPE, "properties must be an object or null, got string", "evt-1"),
    (with_(session_id=5), TYPE, "session_id must be a string or null, got integer", "evt-1"),
    (with_(brand_id=True), TYPE, "brand_id must be a string or null, got boolean", "evt-1"),
    (5, TYPE, "event must be an object, got integer", None),
    ([VALID], TYPE, "event must be an object, got array", None),
    (None, TYPE, "event must be an object, got null", None),
    ("evt", TYPE, "event must be an object, got string", None),
]


@pytest.mark.parametrize(
    ("event", "code", "message", "event_id"),
    PER_EVENT_ERRORS,
    ids=[case[2] for case in PER_EVENT_ERRORS],
)
def test_track_invalid_event_is_rejected_alone_with_its_code_and_message(
    event: Any, code: EventErrorCode, message: str, event_id: str | None
) -> None:
    batch = decode(OTHER, event, OTHER | {"event_id": "evt-2"})

    assert batch.errors == [EventError(index=1, event_id=event_id, code=code, message=message)]
    assert [a.index for a in batch.accepted] == [0, 2]
    assert batch.received == 3
    assert batch.rejected == 1


def test_track_event_without_event_name_is_rejected_with_missing_field() -> None:
    batch = decode(with_(event_name=DROP))

    assert batch.errors == [
        EventError(0, "evt-1", EventErrorCode.MISSING_FIELD, "event_name is required")
    ]
    assert batch.accepted == []


def test_track_event_larger_than_32_kb_is_rejected_with_payload_too_large() -> None:
    event = with_(properties={"blob": "x" * MAX_EVENT_BYTES})
    size = len(msgspec.json.encode(event))

    batch = decode(OTHER, event)

    assert batch.errors == [
        EventError(
            1,
            "evt-1",
            EventErrorCode.PAYLOAD_TOO_LARGE,
            f"event is {size} bytes of JSON; the limit is 32768 bytes (32 KB)",
        )
    ]


def test_track_event_of_exactly_32_kb_is_accepted_and_one_byte_more_is_not() -> None:
    base = len(msgspec.json.encode(with_(properties={"blob": ""})))
    exact = with_(properties={"blob": "x" * (MAX_EVENT_BYTES - base)})
    over = with_(properties={"blob": "x" * (MAX_EVENT_BYTES - base + 1)})

    assert len(msgspec.json.encode(exact)) == MAX_EVENT_BYTES
    assert decode(exact).errors == []
    assert [e.code for e in decode(over).errors] == [EventErrorCode.PAYLOAD_TOO_LARGE]


def test_track_size_limit_counts_the_event_bytes_as_sent_including_whitespace() -> None:
    event = msgspec.json.encode(with_(properties={"blob": "x" * (MAX_EVENT_BYTES - 200)}))
    padded = event[:-1] + b" " * 300 + b"}"
    body = b'{"events": [' + padded + b"]}"

    batch = decode_track(body, **CONTEXT)

    assert [e.code for e in batch.errors] == [EventErrorCode.PAYLOAD_TOO_LARGE]


def test_track_batch_with_every_event_invalid_accepts_nothing() -> None:
    batch = decode(with_(user_id=DROP), with_(timestamp="no"), 3)

    assert batch.accepted == []
    assert [e.index for e in batch.errors] == [0, 1, 2]


def test_track_strings_are_not_coerced_into_numbers_or_booleans() -> None:
    batch = decode(
        with_(
            event_name="kyc_submitted",
            properties={
                "document_type": "passport",
                "verification_vendor": "sumsub",
                "attempt_number": "1",
            },
        ),
        catalogue_mode="strict",
    )

    assert batch.errors == [
        EventError(
            0,
            "evt-1",
            EventErrorCode.INVALID_TYPE,
            "properties.attempt_number must be a number for kyc_submitted, got string",
        )
    ]


# --- 422: the body itself is malformed -----------------------------------------------------------

BODY_422 = [
    # Each case: body, loc, type, msg, input, ctx.
    (
        b"",
        ["body", 0],
        "json_invalid",
        "JSON decode error",
        None,
        {"error": "Input data was truncated"},
    ),
    (
        b"events",
        ["body", 0],
        "json_invalid",
        "JSON decode error",
        None,
        {"error": "JSON is malformed: invalid character (byte 0)"},
    ),
    (
        b'{"events": [}',
        ["body", 12],
        "json_invalid",
        "JSON decode error",
        None,
        {"error": "JSON is malformed: invalid character (byte 12)"},
    ),
    (b"[]", ["body"], "dict_type", "Input should be a valid dictionary", [], {}),
    (b"null", ["body"], "dict_type", "Input should be a valid dictionary", None, {}),
    (b"{}", ["body", "events"], "missing", "field required", None, {}),
    (b'{"event": []}', ["body", "events"], "missing", "field required", None, {}),
    (b'{"events": {}}', ["body", "events"], "list_type", "Input should be a valid list", {}, {}),
    (b'{"events": "a"}', ["body", "events"], "list_type", "Input should be a valid list", "a", {}),
    (
        b'{"events": null}',
        ["body", "events"],
        "list_type",
        "Input should be a valid list",
        None,
        {},
    ),
    (
        b'{"events": []}',
        ["body", "events"],
        "too_short",
        "Minimum one event per request",
        [],
        {
            "field_type": "List",
            "min_length": 1,
            "actual_length": 0,
        },
    ),
]


@pytest.mark.parametrize(("body", "loc", "type_", "msg", "input_", "ctx"), BODY_422)
def test_track_malformed_body_is_rejected_with_422(
    body: bytes, loc: list[Any], type_: str, msg: str, input_: Any, ctx: dict[str, Any]
) -> None:
    with pytest.raises(RequestInvalid) as caught:
        decode_track(body, **CONTEXT)

    assert caught.value.to_dict() == {
        "detail": [{"loc": loc, "msg": msg, "type": type_, "input": input_, "ctx": ctx}]
    }


def test_track_batch_of_2500_events_is_accepted() -> None:
    events = [with_(event_id=f"evt-{i}") for i in range(MAX_TRACK_EVENTS)]

    batch = decode(*events)

    assert len(batch.accepted) == MAX_TRACK_EVENTS


def test_track_batch_of_2501_events_is_rejected_with_the_limit_in_ctx() -> None:
    with pytest.raises(RequestInvalid) as caught:
        decode(*([VALID] * (MAX_TRACK_EVENTS + 1)))

    assert caught.value.to_dict() == {
        "detail": [
            {
                "loc": ["body", "events"],
                "msg": "At most 2500 events per request, got 2501",
                "type": "too_long",
                "input": None,
                "ctx": {"field_type": "List", "max_length": 2500, "actual_length": 2501},
            }
        ]
    }


def test_track_body_nested_absurdly_deep_is_rejected_with_422_not_a_crash() -> None:
    body = b'{"events": [' + b"[" * 100_000 + b"]" * 100_000 + b"]}"

    with pytest.raises(RequestInvalid) as caught:
        decode_track(body, **CONTEXT)

    assert caught.value.to_dict()["detail"] == [
        {
            "loc": ["body"],
            "msg": "JSON decode error",
            "type": "json_invalid",
            "input": None,
            "ctx": {"error": "JSON is nested too deeply"},
        }
    ]


@pytest.mark.parametrize(
    ("bad", "position"),
    [(b"\xff", 0), (b"\xc3\x28", 0), (b"\xed\xa0\x80", 0)],
)
def test_track_body_that_is_not_utf8_is_rejected_with_422_even_in_an_unknown_field(
    bad: bytes, position: int
) -> None:
    event = msgspec.json.encode(VALID)[:-1] + b', "note": "' + bad + b'"}'
    body = b'{"events": [' + event + b"]}"
    offset = body.index(bad)

    with pytest.raises(RequestInvalid) as caught:
        decode_track(body, **CONTEXT)

    assert caught.value.to_dict()["detail"] == [
        {
            "loc": ["body", offset + position],
            "msg": "JSON decode error",
            "type": "json_invalid",
            "input": None,
            "ctx": {"error": f"JSON is malformed: invalid UTF-8 (byte {offset + position})"},
        }
    ]


def test_track_non_ascii_utf8_is_accepted_and_kept_byte_for_byte() -> None:
    event = msgspec.json.encode(with_(properties={"city": "Zürich", "mood": "🎰"}))

    batch = decode_track(b'{"events": [' + event + b"]}", **CONTEXT)

    assert batch.envelopes[0].payload == event


# --- envelopes ---------------------------------------------------------------------------------


def test_track_envelope_carries_the_request_context_and_the_event_fields() -> None:
    event = with_(timestamp="2026-05-18T16:38:00+02:00")

    envelope = decode(event).envelopes[0]

    assert envelope.tenant == "casino-a"
    assert envelope.environment == "live"
    assert envelope.client_id == "sdk-test/1.0"
    assert envelope.source == "track"
    assert envelope.type == "logout"
    assert envelope.event_id == "evt-1"
    assert envelope.subject == "ply_1"
    assert envelope.received_at == RECEIVED_AT
    assert envelope.occurred_at == datetime(2026, 5, 18, 14, 38, tzinfo=UTC)
    assert envelope.occurred_at.tzinfo is UTC


def test_track_payload_is_the_event_json_exactly_as_received() -> None:
    event = (
        b'{ "user_id":"ply_1" , "event_name":"bet_won","timestamp":"2026-05-18T14:38:00Z",'
        b' "properties": {"win_amount": 18.50, "note": "caf\\u00e9"}, "extra": [1, 2] }'
    )
    body = b'{"events": [\n  ' + event + b"\n]}"

    batch = decode_track(body, **CONTEXT)

    assert batch.envelopes[0].payload == event


def test_track_event_without_event_id_gets_a_server_generated_uuid7() -> None:
    batch = decode(with_(event_id=DROP), with_(event_id=DROP))

    ids = [envelope.event_id for envelope in batch.envelopes]
    assert [uuid.UUID(event_id).version for event_id in ids] == [7, 7]
    assert ids[0] < ids[1]


def test_track_event_ids_come_from_the_injected_generator_when_missing() -> None:
    fake_ids = iter(["gen-1", "gen-2"])

    batch = decode(
        with_(event_id=DROP), VALID, with_(event_id=None), new_event_id=lambda: next(fake_ids)
    )

    assert [e.event_id for e in batch.envelopes] == ["gen-1", "evt-1", "gen-2"]


def test_track_rejected_event_without_event_id_names_no_id() -> None:
    batch = decode(with_(event_id=DROP, user_id=DROP))

    assert batch.errors[0].event_id is None


def test_track_null_optional_fields_count_as_absent() -> None:
    event = with_(session_id=None, device_type=None, platform=None, brand_id=None, properties=None)

    assert decode(event).errors == []


def test_track_unknown_fields_are_accepted_and_kept_in_the_payload() -> None:
    batch = decode(with_(campaign={"utm": "x"}))

    assert json.loads(batch.envelopes[0].payload)["campaign"] == {"utm": "x"}


def test_track_duplicate_event_ids_in_one_batch_are_left_to_the_store() -> None:
    batch = decode(VALID, VALID)

    assert [e.event_id for e in batch.envelopes] == ["evt-1", "evt-1"]


def test_track_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="received_at must be an aware datetime"):
        decode_track(
            body_of(VALID),
            **{**CONTEXT, "received_at": datetime(2026, 5, 18)},
        )


def test_track_unknown_catalogue_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="catalogue_mode must be one of"):
        decode(VALID, catalogue_mode="loose")


def test_track_stored_payload_decodes_back_into_the_event() -> None:
    payload = decode(with_(device_type="tablet")).envelopes[0].payload

    event = decode_track_event(payload)

    assert (event.user_id, event.device_type) == ("ply_1", "tablet")


# --- catalogue modes ---------------------------------------------------------------------------

DEPOSIT = with_(
    event_name="deposit_success",
    properties={"amount": 100, "currency": "EUR", "payment_method": "visa"},
)


def test_track_off_mode_skips_the_catalogue() -> None:
    batch = decode(with_(event_name="spin_the_wheel"), catalogue_mode="off")

    assert (len(batch.accepted), batch.errors, batch.violations) == (1, [], [])


def test_track_warn_mode_accepts_an_unknown_event_and_reports_it() -> None:
    batch = decode(OTHER, with_(event_name="spin_the_wheel"), catalogue_mode="warn")

    assert len(batch.accepted) == 2
    assert [(v.index, v.event_id, v.violation.code) for v in batch.violations] == [
        (1, "evt-1", ViolationCode.UNKNOWN_EVENT)
    ]


def test_track_warn_is_the_default_mode() -> None:
    batch = decode_track(body_of(with_(event_name="spin_the_wheel")), **CONTEXT)

    assert len(batch.accepted) == 1
    assert len(batch.violations) == 1


def test_track_strict_mode_rejects_an_unknown_event_with_unknown_event() -> None:
    batch = decode(with_(event_name="spin_the_wheel"), catalogue_mode="strict")

    assert batch.errors == [
        EventError(
            0,
            "evt-1",
            EventErrorCode.UNKNOWN_EVENT,
            "event_name 'spin_the_wheel' is not in the event catalogue",
        )
    ]


def test_track_strict_mode_names_every_property_problem_of_the_event() -> None:
    event = with_(event_name="deposit_success", properties={"amount": "100", "currency": "EUR"})

    batch = decode(event, catalogue_mode="strict")

    assert batch.errors == [
        EventError(
            0,
            "evt-1",
            EventErrorCode.INVALID_TYPE,
            "properties.amount must be a number for deposit_success, got string; "
            "properties.payment_method is required for deposit_success (a string)",
        )
    ]


def test_track_strict_mode_accepts_a_matching_event_with_extra_properties() -> None:
    event = DEPOSIT | {"properties": {**DEPOSIT["properties"], "bonus_code": "X", "amount": 9.99}}

    batch = decode(event, catalogue_mode="strict")

    assert (len(batch.accepted), batch.errors) == (1, [])


def test_track_uses_the_catalogue_it_is_given() -> None:
    tiny = Catalogue(categories={"Test": ["spin_the_wheel"]}, properties={})

    batch = decode(with_(event_name="spin_the_wheel"), catalogue_mode="strict", catalogue=tiny)

    assert batch.errors == []
