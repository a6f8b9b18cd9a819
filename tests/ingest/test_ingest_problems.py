"""msgspec's error text -> Problem -> 422 ErrorDetail / track EventError, table by table."""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
import pytest

from ingest import EventErrorCode
from ingest.money import PositiveAmount, dec_hook, float_hook
from ingest.problems import (
    Problem,
    ProblemKind,
    field_label,
    json_invalid_detail,
    parse_validation_message,
    to_error_detail,
    to_event_error,
    value_at,
)

K = ProblemKind

# --- the text of a ValidationError -> Problem -----------------------------------------------------

PARSE_TABLE = [
    ("Object missing required field `user_id`", Problem(K.MISSING, ("user_id",))),
    (
        "Object missing required field `amount` - at `$.items[3].data`",
        Problem(K.MISSING, ("items", 3, "data", "amount")),
    ),
    (
        "Expected `str`, got `int` - at `$.items[3].data.player_id`",
        Problem(K.WRONG_TYPE, ("items", 3, "data", "player_id"), expected="str", got="int"),
    ),
    (
        "Expected `str | null`, got `int` - at `$.session_id`",
        Problem(K.WRONG_TYPE, ("session_id",), expected="str", nullable=True, got="int"),
    ),
    (
        "Expected `array | null`, got `str` - at `$.data.tags`",
        Problem(K.WRONG_TYPE, ("data", "tags"), expected="array", nullable=True, got="str"),
    ),
    ("Expected `object`, got `array`", Problem(K.WRONG_TYPE, (), expected="object", got="array")),
    ("Expected `null`, got `int`", Problem(K.WRONG_TYPE, (), expected="null", got="int")),
    (
        "Expected `str` - at `$.items[0].event`",
        Problem(K.WRONG_TYPE, ("items", 0, "event"), expected="str"),
    ),
    (
        "Invalid enum value 'maybe' - at `$.data.has_freespins`",
        Problem(K.INVALID_CHOICE, ("data", "has_freespins"), value="maybe"),
    ),
    (
        "Invalid value 'bonus' - at `$.items[2].event`",
        Problem(K.INVALID_TAG, ("items", 2, "event"), value="bonus"),
    ),
    (
        "Expected `datetime` with a timezone component - at `$.timestamp`",
        Problem(K.NAIVE_DATETIME, ("timestamp",)),
    ),
    (
        "Invalid RFC3339 encoded datetime - at `$.timestamp`",
        Problem(K.INVALID_DATETIME, ("timestamp",)),
    ),
    (
        "Expected `str` of length >= 1 - at `$.user_id`",
        Problem(K.TOO_SHORT, ("user_id",), expected="str", bound="1"),
    ),
    (
        "Expected `number` > 0 - at `$.data.amount`",
        Problem(K.OUT_OF_RANGE, ("data", "amount"), expected="number", op=">", bound="0"),
    ),
    (
        "Expected `number` < 1000000000000000000 - at `$.data.amount_eur`",
        Problem(
            K.OUT_OF_RANGE,
            ("data", "amount_eur"),
            expected="number",
            op="<",
            bound="1000000000000000000",
        ),
    ),
    (
        "Expected `int` >= -5 - at `$.n`",
        Problem(K.OUT_OF_RANGE, ("n",), expected="int", op=">=", bound="-5"),
    ),
    (
        "Expected a finite `number` - at `$.data.amount`",
        Problem(K.NOT_FINITE, ("data", "amount"), expected="number"),
    ),
    (
        "Expected `number` with at most 18 decimal places - at `$.data.amount`",
        Problem(K.TOO_MANY_DECIMALS, ("data", "amount"), expected="number", bound="18"),
    ),
    (
        # A value that itself looks like a location: the last " - at `$...`" wins.
        "Invalid enum value 'x - at `$.y`' - at `$.device_type`",
        Problem(K.INVALID_CHOICE, ("device_type",), value="x - at `$.y`"),
    ),
    ("Something new - at `$.a[...].b`", Problem(K.OTHER, ("a",))),
    ("Something entirely new", Problem(K.OTHER, ())),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_TABLE, ids=[case[0] for case in PARSE_TABLE])
def test_validation_message_is_parsed_into_kind_path_and_pieces(
    text: str, expected: Problem
) -> None:
    problem = parse_validation_message(text)

    assert msgspec.structs.replace(problem, text="") == expected
    assert problem.text == text


class Data(msgspec.Struct):
    name: str
    when: Annotated[datetime, msgspec.Meta(tz=True)]
    choice: Literal["a", "b"] | None = None
    code: Annotated[str, msgspec.Meta(min_length=1)] = "x"
    amount: PositiveAmount | None = None
    tags: list[str] | None = None


class Outer(msgspec.Struct, tag_field="event", tag="outer"):
    data: Data


class Inner(msgspec.Struct, tag_field="event", tag="inner"):
    data: Data


# A union, as in the unified endpoint: only then is the tag required.
OUTER = msgspec.json.Decoder(list[Outer | Inner], dec_hook=dec_hook, float_hook=float_hook)
GOOD = '"name": "n", "when": "2025-01-01T00:00:00Z"'

REAL_MESSAGES = [
    (
        '[{"event": "outer", "data": {"when": "2025-01-01T00:00:00Z"}}]',
        K.MISSING,
        (0, "data", "name"),
    ),
    (
        '[{"event": "outer", "data": {"name": 1, "when": "2025-01-01T00:00:00Z"}}]',
        K.WRONG_TYPE,
        (0, "data", "name"),
    ),
    (
        '[{"event": "outer", "data": {"name": "n", "when": "2025-01-01T00:00:00"}}]',
        K.NAIVE_DATETIME,
        (0, "data", "when"),
    ),
    (
        '[{"event": "outer", "data": {"name": "n", "when": "2025-01-01"}}]',
        K.INVALID_DATETIME,
        (0, "data", "when"),
    ),
    (
        '[{"event": "outer", "data": {' + GOOD + ', "choice": "c"}}]',
        K.INVALID_CHOICE,
        (0, "data", "choice"),
    ),
    ('[{"event": "outer", "data": {' + GOOD + ', "code": ""}}]', K.TOO_SHORT, (0, "data", "code")),
    (
        '[{"event": "outer", "data": {' + GOOD + ', "amount": 0}}]',
        K.OUT_OF_RANGE,
        (0, "data", "amount"),
    ),
    (
        '[{"event": "outer", "data": {' + GOOD + ', "amount": "1"}}]',
        K.WRONG_TYPE,
        (0, "data", "amount"),
    ),
    (
        '[{"event": "outer", "data": {' + GOOD + ', "amount": 1e-30}}]',
        K.TOO_MANY_DECIMALS,
        (0, "data", "amount"),
    ),
    (
        '[{"event": "outer", "data": {' + GOOD + ', "tags": [1]}}]',
        K.WRONG_TYPE,
        (0, "data", "tags", 0),
    ),
    ('[{"event": "other", "data": {}}]', K.INVALID_TAG, (0, "event")),
    ('[{"event": 1, "data": {}}]', K.WRONG_TYPE, (0, "event")),
    ('[{"data": {}}]', K.MISSING, (0, "event")),
    ("[1]", K.WRONG_TYPE, (0,)),
]


@pytest.mark.parametrize(("body", "kind", "path"), REAL_MESSAGES)
def test_the_messages_msgspec_really_writes_are_all_recognised(
    body: str, kind: ProblemKind, path: tuple[Any, ...]
) -> None:
    # Guards against msgspec changing its wording: every message ingest relies on is parsed.
    with pytest.raises(msgspec.ValidationError) as caught:
        OUTER.decode(body)

    problem = parse_validation_message(str(caught.value))

    assert (problem.kind, problem.path) == (kind, path)


# --- Problem -> 422 ErrorDetail ----------------------------------------------------------------

CHOICES = {"gender": ("M", "F"), "event": ("gameround", "login")}

DETAIL_TABLE = [
    (Problem(K.MISSING, ("user_id",)), "missing", "field required", {}),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="str", got="int"),
        "string_type",
        "Input should be a valid string",
        {},
    ),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="str", nullable=True, got="int"),
        "string_type",
        "Input should be a valid string",
        {},
    ),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="int"),
        "int_type",
        "Input should be a valid integer",
        {},
    ),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="float"),
        "float_type",
        "Input should be a valid number",
        {},
    ),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="number"),
        "float_type",
        "Input should be a valid number",
        {},
    ),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="bool"),
        "bool_type",
        "Input should be a valid boolean",
        {},
    ),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="object"),
        "dict_type",
        "Input should be a valid dictionary",
        {},
    ),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="array"),
        "list_type",
        "Input should be a valid list",
        {},
    ),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="datetime"),
        "datetime_type",
        "Input should be a valid datetime",
        {},
    ),
    (Problem(K.WRONG_TYPE, ("x",), expected="null"), "none_required", "Input should be None", {}),
    (
        Problem(K.WRONG_TYPE, ("x",), expected="bytes"),
        "type_error",
        "Input should be of type bytes",
        {},
    ),
    (
        Problem(K.INVALID_CHOICE, ("data", "gender"), value="X"),
        "enum",
        "Input should be 'M' or 'F'",
        {"expected": "'M' or 'F'"},
    ),
    (
        Problem(K.INVALID_CHOICE, ("colour",), value="X"),
        "enum",
        "Input should be one of the allowed values",
        {},
    ),
    (
        Problem(K.INVALID_TAG, ("event",), value="bonus"),
        "union_tag_invalid",
        "Input tag 'bonus' found using 'event' does not match any of the expected tags: "
        "'gameround' or 'login'",
        {"discriminator": "'event'", "tag": "bonus", "expected_tags": "'gameround' or 'login'"},
    ),
    (
        Problem(K.INVALID_DATETIME, ("ts",)),
        "datetime_parsing",
        "Input should be a valid ISO 8601 datetime with a timezone, e.g. 2025-01-15T12:00:00Z",
        {},
    ),
    (Problem(K.NAIVE_DATETIME, ("ts",)), "timezone_aware", "Input should have timezone info", {}),
    (
        Problem(K.TOO_SHORT, ("id",), expected="str", bound="1"),
        "string_too_short",
        "String should have at least 1 character",
        {"min_length": 1},
    ),
    (
        Problem(K.TOO_SHORT, ("id",), expected="str", bound="3"),
        "string_too_short",
        "String should have at least 3 characters",
        {"min_length": 3},
    ),
    (
        Problem(K.TOO_SHORT, ("tags",), expected="array", bound="1"),
        "too_short",
        "Input should have at least 1 items",
        {"min_length": 1},
    ),
    (
        Problem(K.OUT_OF_RANGE, ("a",), op=">", bound="0"),
        "greater_than",
        "Input should be greater than 0",
        {"gt": 0},
    ),
    (
        Problem(K.OUT_OF_RANGE, ("a",), op=">=", bound="1"),
        "greater_than_equal",
        "Input should be greater than or equal to 1",
        {"ge": 1},
    ),
    (
        Problem(K.OUT_OF_RANGE, ("a",), op="<", bound="10"),
        "less_than",
        "Input should be less than 10",
        {"lt": 10},
    ),
    (
        Problem(K.OUT_OF_RANGE, ("a",), op="<=", bound="0.5"),
        "less_than_equal",
        "Input should be less than or equal to 0.5",
        {"le": "0.5"},
    ),
    (Problem(K.NOT_FINITE, ("a",)), "finite_number", "Input should be a finite number", {}),
    (
        Problem(K.TOO_MANY_DECIMALS, ("a",), bound="18"),
        "decimal_max_places",
        "Decimal input should have no more than 18 decimal places",
        {"decimal_places": 18},
    ),
    (
        Problem(K.TIMESTAMP_OUT_OF_RANGE, ("ts",)),
        "datetime_object_invalid",
        "Invalid datetime object, got out of range once converted to UTC",
        {"error": "out of range once converted to UTC"},
    ),
    (
        Problem(K.TOO_DEEP),
        "json_invalid",
        "JSON decode error",
        {"error": "JSON is nested too deeply"},
    ),
    (
        Problem(K.NOT_SNAKE_CASE, ("event_name",), value="X", text="not snake_case"),
        "value_error",
        "Value error, not snake_case",
        {"error": "not snake_case"},
    ),
    (Problem(K.OTHER, ("a",), text="Odd"), "value_error", "Value error, Odd", {"error": "Odd"}),
]


@pytest.mark.parametrize(
    ("problem", "type_", "msg", "ctx"), DETAIL_TABLE, ids=[c[1] + "-" + c[2] for c in DETAIL_TABLE]
)
def test_problem_renders_as_a_422_detail_with_pydantic_style_type_and_msg(
    problem: Problem, type_: str, msg: str, ctx: dict[str, Any]
) -> None:
    detail = to_error_detail(
        problem, loc_prefix=["body", "items", 2], input_value="in", choices=CHOICES
    )

    assert detail.loc == ["body", "items", 2, *problem.path]
    assert (detail.type, detail.msg, detail.ctx) == (type_, msg, ctx)
    assert detail.input == (None if problem.kind is K.MISSING else "in")


# --- Problem -> track EventError ---------------------------------------------------------------

TRACK_CHOICES = {"device_type": ("mobile", "tablet", "desktop")}
MISSING, TYPE, VALUE = (
    EventErrorCode.MISSING_FIELD,
    EventErrorCode.INVALID_TYPE,
    EventErrorCode.INVALID_VALUE,
)

EVENT_TABLE = [
    (Problem(K.MISSING, ("event_name",)), MISSING, "event_name is required"),
    (
        Problem(K.WRONG_TYPE, ("user_id",), expected="str", got="int"),
        TYPE,
        "user_id must be a string, got integer",
    ),
    (
        Problem(K.WRONG_TYPE, ("session_id",), expected="str", nullable=True, got="bool"),
        TYPE,
        "session_id must be a string or null, got boolean",
    ),
    (
        Problem(K.WRONG_TYPE, (), expected="object", got="array"),
        TYPE,
        "event must be an object, got array",
    ),
    (
        Problem(K.WRONG_TYPE, ("n",), expected="int", got="float"),
        TYPE,
        "n must be an integer, got number",
    ),
    (
        Problem(K.WRONG_TYPE, ("n",), expected="float", got="str"),
        TYPE,
        "n must be a number, got string",
    ),
    (
        Problem(K.WRONG_TYPE, ("ok",), expected="bool", got="null"),
        TYPE,
        "ok must be a boolean, got null",
    ),
    (
        Problem(K.WRONG_TYPE, ("xs",), expected="array", got="object"),
        TYPE,
        "xs must be an array, got object",
    ),
    (
        Problem(K.WRONG_TYPE, ("timestamp",), expected="datetime", got="int"),
        TYPE,
        "timestamp must be an ISO 8601 datetime string, got integer",
    ),
    (Problem(K.WRONG_TYPE, ("event",), expected="str"), TYPE, "event must be a string"),
    (
        Problem(K.WRONG_TYPE, ("b",), expected="bytes", got="int"),
        TYPE,
        "b must be of type bytes, got integer",
    ),
    (
        Problem(K.INVALID_CHOICE, ("device_type",), value="phone"),
        VALUE,
        "device_type must be one of mobile, tablet, desktop, got 'phone'",
    ),
    (
        Problem(K.INVALID_CHOICE, ("colour",), value="red"),
        VALUE,
        "colour must be one of the allowed values, got 'red'",
    ),
    (Problem(K.INVALID_TAG, ("event",), value="x"), VALUE, "event has an unknown value 'x'"),
    (
        Problem(K.INVALID_DATETIME, ("timestamp",)),
        VALUE,
        "timestamp must be an ISO 8601 datetime with a timezone, e.g. 2026-05-18T14:38:00.000Z",
    ),
    (
        Problem(K.NAIVE_DATETIME, ("timestamp",)),
        VALUE,
        "timestamp must include a timezone (Z or an offset such as +02:00)",
    ),
    (
        Problem(K.TOO_SHORT, ("user_id",), expected="str", bound="1"),
        VALUE,
        "user_id must not be empty",
    ),
    (
        Problem(K.TOO_SHORT, ("code",), expected="str", bound="3"),
        VALUE,
        "code must have a length of at least 3",
    ),
    (Problem(K.OUT_OF_RANGE, ("n",), op=">", bound="0"), VALUE, "n must be greater than 0"),
    (Problem(K.NOT_FINITE, ("n",)), VALUE, "n must be a finite number"),
    (
        Problem(K.TOO_MANY_DECIMALS, ("n",), bound="2"),
        VALUE,
        "n must have at most 2 decimal places",
    ),
    (
        Problem(K.NOT_SNAKE_CASE, ("event_name",), value="BetPlaced"),
        VALUE,
        "event_name must be snake_case (lower-case letters, digits and underscores), "
        "got 'BetPlaced'",
    ),
    (
        Problem(K.NOT_SNAKE_CASE, ("event_name",), value="x" * 100),
        VALUE,
        "event_name must be snake_case (lower-case letters, digits and underscores), "
        "got '" + "x" * 79 + "…'",
    ),
    (
        Problem(K.TIMESTAMP_OUT_OF_RANGE, ("timestamp",)),
        VALUE,
        "timestamp is out of range once converted to UTC",
    ),
    (Problem(K.TOO_DEEP), VALUE, "event is nested too deeply"),
    (Problem(K.OTHER, ("properties",), text="Odd"), VALUE, "properties is invalid: Odd"),
]


@pytest.mark.parametrize(
    ("problem", "code", "message"), EVENT_TABLE, ids=[c[2] for c in EVENT_TABLE]
)
def test_problem_renders_as_a_track_event_error_naming_the_field(
    problem: Problem, code: EventErrorCode, message: str
) -> None:
    error = to_event_error(problem, index=4, event_id="e-4", choices=TRACK_CHOICES)

    assert (error.index, error.event_id, error.code, error.message) == (4, "e-4", code, message)


# --- small helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ((), "event"),
        (("user_id",), "user_id"),
        (("properties", "amount"), "properties.amount"),
        (("unset_traits", 2), "unset_traits[2]"),
        ((3, "data"), "[3].data"),
    ],
)
def test_field_label_reads_as_a_path(path: tuple[Any, ...], label: str) -> None:
    assert field_label(path, "event") == label


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ((), {"a": [1, {"b": "x"}]}),
        (("a", 1, "b"), "x"),
        (("a", 5), None),
        (("a", "b"), None),
        (("z",), None),
    ],
)
def test_value_at_finds_the_input_or_none(path: tuple[Any, ...], expected: Any) -> None:
    assert value_at({"a": [1, {"b": "x"}]}, path) == expected


@pytest.mark.parametrize(
    ("error", "position", "loc"),
    [
        ("JSON is malformed: invalid character (byte 7)", 42, ["body", 7]),
        ("Input data was truncated", 42, ["body", 42]),
        ("JSON is nested too deeply", None, ["body"]),
    ],
)
def test_json_invalid_detail_points_at_the_byte_position(
    error: str, position: int | None, loc: list[Any]
) -> None:
    detail = json_invalid_detail(error, position)

    assert (detail.loc, detail.type, detail.msg, detail.input, detail.ctx) == (
        loc,
        "json_invalid",
        "JSON decode error",
        None,
        {"error": error},
    )
