"""POST /v1/events/identify: one body, one envelope, a 422 for anything wrong."""

from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from ingest_examples import CONTEXT

from ingest import RequestInvalid, decode_identify

VALID: dict[str, Any] = {
    "user_id": "ply_776192",
    "timestamp": "2026-05-18T14:38:00.000Z",
    "traits": {"vip_level": "gold", "balance": 12.50},
}


def decode(body: Any) -> Any:
    data = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return decode_identify(data, **CONTEXT)


def detail_of(body: Any) -> list[dict[str, Any]]:
    with pytest.raises(RequestInvalid) as caught:
        decode(body)
    detail: list[dict[str, Any]] = caught.value.to_dict()["detail"]
    return detail


def test_identify_envelope_has_the_user_id_as_subject_and_the_body_as_payload() -> None:
    body = b'  {"user_id": "ply_1", "timestamp": "2026-05-18T16:38:00+02:00", "traits": {}}\n'

    envelope = decode(body)

    assert envelope.subject == "ply_1"
    assert (envelope.source, envelope.type) == ("identify", "identify")
    assert envelope.payload == body.strip()
    assert envelope.occurred_at == datetime(2026, 5, 18, 14, 38, tzinfo=UTC)
    assert (envelope.tenant, envelope.environment, envelope.client_id) == (
        "casino-a",
        "live",
        "sdk-test/1.0",
    )


def test_identify_exact_retry_gets_the_same_event_id() -> None:
    assert decode(VALID).event_id == decode(VALID).event_id


def test_identify_retry_with_other_key_order_and_spacing_gets_the_same_event_id() -> None:
    one = b'{"user_id":"u","timestamp":"2026-05-18T14:38:00Z","traits":{"a":1,"b":[1.50,"x"]}}'
    two = (
        b'{ "traits": { "b": [1.50, "x"], "a": 1 },\n'
        b' "timestamp": "2026-05-18T14:38:00Z", "user_id": "u" }'
    )

    assert decode(one).event_id == decode(two).event_id


@pytest.mark.parametrize(
    "change",
    [
        {"timestamp": "2026-05-18T14:38:01.000Z"},
        {"traits": {"vip_level": "platinum", "balance": 12.50}},
        {"user_id": "ply_2"},
        {"unset_traits": ["vip_level"]},
    ],
)
def test_identify_any_change_of_content_gets_a_new_event_id(change: dict[str, Any]) -> None:
    assert decode(VALID).event_id != decode(VALID | change).event_id


def test_identify_numbers_count_as_written_so_12_50_and_12_5_get_different_ids() -> None:
    one = b'{"user_id":"u","timestamp":"2026-05-18T14:38:00Z","traits":{"balance":12.50}}'
    two = b'{"user_id":"u","timestamp":"2026-05-18T14:38:00Z","traits":{"balance":12.5}}'

    assert decode(one).event_id != decode(two).event_id


def test_identify_event_id_is_prefixed_and_128_bits_of_hash() -> None:
    event_id = decode(VALID).event_id

    assert event_id.startswith("identify-")
    assert len(event_id) == len("identify-") + 32
    int(event_id.removeprefix("identify-"), 16)


def test_identify_optional_fields_may_be_null_or_absent() -> None:
    body = VALID | {"anonymous_id": None, "traits": None, "unset_traits": None}

    assert decode(body).subject == "ply_776192"
    assert decode({"user_id": "u", "timestamp": "2026-05-18T14:38:00Z"}).subject == "u"


IDENTIFY_422 = [
    # Each case: body, loc, type, msg, input, ctx.
    ({"timestamp": VALID["timestamp"]}, ["body", "user_id"], "missing", "field required", None, {}),
    ({"user_id": "u"}, ["body", "timestamp"], "missing", "field required", None, {}),
    (
        VALID | {"user_id": 776192},
        ["body", "user_id"],
        "string_type",
        "Input should be a valid string",
        776192,
        {},
    ),
    (
        VALID | {"user_id": ""},
        ["body", "user_id"],
        "string_too_short",
        "String should have at least 1 character",
        "",
        {"min_length": 1},
    ),
    (
        VALID | {"timestamp": "2026-05-18T14:38:00"},
        ["body", "timestamp"],
        "timezone_aware",
        "Input should have timezone info",
        "2026-05-18T14:38:00",
        {},
    ),
    (
        VALID | {"timestamp": "18/05/2026"},
        ["body", "timestamp"],
        "datetime_parsing",
        "Input should be a valid ISO 8601 datetime with a timezone, e.g. 2025-01-15T12:00:00Z",
        "18/05/2026",
        {},
    ),
    (
        VALID | {"timestamp": "0001-01-01T00:00:00+01:00"},
        ["body", "timestamp"],
        "datetime_object_invalid",
        "Invalid datetime object, got out of range once converted to UTC",
        "0001-01-01T00:00:00+01:00",
        {"error": "out of range once converted to UTC"},
    ),
    (
        VALID | {"traits": ["vip"]},
        ["body", "traits"],
        "dict_type",
        "Input should be a valid dictionary",
        ["vip"],
        {},
    ),
    (
        VALID | {"unset_traits": "vip_level"},
        ["body", "unset_traits"],
        "list_type",
        "Input should be a valid list",
        "vip_level",
        {},
    ),
    (
        VALID | {"unset_traits": ["a", 2]},
        ["body", "unset_traits", 1],
        "string_type",
        "Input should be a valid string",
        2,
        {},
    ),
    (
        VALID | {"anonymous_id": 5},
        ["body", "anonymous_id"],
        "string_type",
        "Input should be a valid string",
        5,
        {},
    ),
    (["u"], ["body"], "dict_type", "Input should be a valid dictionary", ["u"], {}),
    (
        b"{",
        ["body", 1],
        "json_invalid",
        "JSON decode error",
        None,
        {"error": "Input data was truncated"},
    ),
    (
        b'{"user_id": "u",}',
        ["body", 16],
        "json_invalid",
        "JSON decode error",
        None,
        {"error": "JSON is malformed: trailing comma in object (byte 16)"},
    ),
]


@pytest.mark.parametrize(("body", "loc", "type_", "msg", "input_", "ctx"), IDENTIFY_422)
def test_identify_invalid_body_is_rejected_with_422(
    body: Any, loc: list[Any], type_: str, msg: str, input_: Any, ctx: dict[str, Any]
) -> None:
    assert detail_of(body) == [{"loc": loc, "msg": msg, "type": type_, "input": input_, "ctx": ctx}]


def test_identify_trait_values_are_free_form_json() -> None:
    body = VALID | {"traits": {"a": None, "b": [1, {"c": True}], "d": 1e300, "e": "42"}}

    assert decode(body).subject == "ply_776192"
