"""The error shapes: EventError and the 422 detail, encoded as the spec writes them."""

import msgspec

from ingest import ErrorDetail, EventError, EventErrorCode, RequestInvalid


def test_event_error_encodes_in_the_spec_shape() -> None:
    error = EventError(
        1, "a1b2c3d4-0000-0000-0000-0008", EventErrorCode.MISSING_FIELD, "event_name is required"
    )

    assert msgspec.json.decode(msgspec.json.encode(error)) == {
        "index": 1,
        "event_id": "a1b2c3d4-0000-0000-0000-0008",
        "code": "MISSING_FIELD",
        "message": "event_name is required",
    }


def test_event_error_codes_are_the_documented_ones() -> None:
    assert [code.value for code in EventErrorCode] == [
        "MISSING_FIELD",
        "INVALID_TYPE",
        "INVALID_VALUE",
        "PAYLOAD_TOO_LARGE",
        "UNKNOWN_EVENT",
        "EVENT_ID_CONFLICT",
    ]


def test_request_invalid_carries_the_422_body() -> None:
    detail = ErrorDetail(
        loc=["body", "user_id"], msg="field required", type="missing", input=None, ctx={}
    )

    error = RequestInvalid([detail])

    assert error.detail == [detail]
    assert error.to_dict() == {
        "detail": [
            {
                "loc": ["body", "user_id"],
                "msg": "field required",
                "type": "missing",
                "input": None,
                "ctx": {},
            }
        ]
    }
    assert msgspec.json.encode({"detail": error.detail}) == (
        b'{"detail":[{"loc":["body","user_id"],"msg":"field required","type":"missing",'
        b'"input":null,"ctx":{}}]}'
    )


def test_request_invalid_text_summarises_the_first_problems() -> None:
    details = [
        ErrorDetail(loc=["body", "items", i], msg="bad", type="value_error", input=None, ctx={})
        for i in range(5)
    ]

    assert str(RequestInvalid(details)) == (
        "request invalid: body.items.0: bad; body.items.1: bad; body.items.2: bad (and 2 more)"
    )
