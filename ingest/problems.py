"""What went wrong where: msgspec's error text parsed, then mapped to the two error shapes.

msgspec reports only the first error of a decode, as text such as::

    Object missing required field `user_id` - at `$.items[3].data`
    Expected `str`, got `int` - at `$.items[3].data.player_id`
    Invalid enum value 'maybe' - at `$.data.has_freespins`

``parse_validation_message`` turns that text into a ``Problem`` (a kind, the path as a
tuple, and the pieces the text names). Checks that ingest makes itself after decoding
(snake_case names, timestamps that overflow in UTC) build ``Problem``s directly. Two small
tables then render a ``Problem`` either as a 422 ``ErrorDetail`` (pydantic-style ``type``
and ``msg``, as the spec's example shows) or as a track ``EventError`` (code and a message
that names the field). Both mappings are table-tested; an unrecognised message still maps
(to ``value_error`` / ``INVALID_VALUE`` with the original text) rather than failing.
"""

import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final

import msgspec

from ingest.errors import ErrorDetail, EventError, EventErrorCode

__all__ = [
    "Choices",
    "Problem",
    "ProblemKind",
    "field_label",
    "json_invalid_detail",
    "parse_validation_message",
    "problem_from_exception",
    "to_error_detail",
    "to_event_error",
    "value_at",
]

#: Allowed values of enum-like fields, by field name, used to name them in messages.
Choices = Mapping[str, Sequence[str]]

_MAX_ECHO: Final = 80  # characters of a sender's value quoted back in a message


class ProblemKind(StrEnum):
    MISSING = "missing"
    WRONG_TYPE = "wrong_type"
    INVALID_CHOICE = "invalid_choice"  # a Literal / enum field got another value
    INVALID_TAG = "invalid_tag"  # a tagged union got an unknown tag
    INVALID_DATETIME = "invalid_datetime"
    NAIVE_DATETIME = "naive_datetime"
    TOO_SHORT = "too_short"  # e.g. an empty id
    OUT_OF_RANGE = "out_of_range"  # e.g. an amount <= 0
    NOT_FINITE = "not_finite"
    TOO_MANY_DECIMALS = "too_many_decimals"
    # Found by ingest itself, after msgspec accepted the value:
    NOT_SNAKE_CASE = "not_snake_case"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    TOO_DEEP = "too_deep"  # nesting beyond the interpreter's recursion limit
    OTHER = "other"


class Problem(msgspec.Struct, frozen=True):
    """One validation failure at one place."""

    kind: ProblemKind
    #: Where, relative to the decoded document: ``("items", 3, "data", "amount")``. For a
    #: missing field the path ends with the field's name.
    path: tuple[str | int, ...] = ()
    #: The type msgspec expected, without ``| null``: ``str``, ``int``, ``number``, ...
    expected: str | None = None
    #: Whether ``null`` would also have been accepted (``Expected `str | null```).
    nullable: bool = False
    #: The JSON type msgspec got: ``int``, ``str``, ``null``, ``object``, ...
    got: str | None = None
    #: The offending value as the message shows it (enum values, tags, event names).
    value: str | None = None
    #: Comparison and bound of a range or length constraint: ``">"``, ``"0"``.
    op: str | None = None
    bound: str | None = None
    #: The original message, for the fallback.
    text: str = ""


_AT = re.compile(r"(?s)(?P<message>.*) - at `(?P<path>\$[^`]*)`")
_PATH_TOKEN = re.compile(r"\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+)\]")
_MESSAGES: Final[tuple[tuple[ProblemKind, re.Pattern[str]], ...]] = (
    (ProblemKind.MISSING, re.compile(r"Object missing required field `(?P<field>[^`]*)`")),
    (ProblemKind.NAIVE_DATETIME, re.compile(r"Expected `datetime` with a timezone component")),
    (ProblemKind.INVALID_DATETIME, re.compile(r"Invalid RFC3339 encoded datetime")),
    (ProblemKind.NOT_FINITE, re.compile(r"Expected a finite `(?P<expected>[^`]*)`")),
    (
        ProblemKind.TOO_MANY_DECIMALS,
        re.compile(r"Expected `(?P<expected>[^`]*)` with at most (?P<bound>\d+) decimal places"),
    ),
    (
        ProblemKind.TOO_SHORT,
        re.compile(r"Expected `(?P<expected>[^`]*)` of length >= (?P<bound>\d+)"),
    ),
    (
        ProblemKind.OUT_OF_RANGE,
        re.compile(r"Expected `(?P<expected>[^`]*)` (?P<op>>=|<=|>|<) (?P<bound>\S+)"),
    ),
    (
        ProblemKind.WRONG_TYPE,
        re.compile(r"Expected `(?P<expected>[^`]*)`(?:, got `(?P<got>[^`]*)`)?"),
    ),
    (ProblemKind.INVALID_CHOICE, re.compile(r"(?s)Invalid enum value (?P<value>.*)")),
    (ProblemKind.INVALID_TAG, re.compile(r"(?s)Invalid value (?P<value>.*)")),
)


def parse_validation_message(text: str) -> Problem:
    """Parse the text of a ``msgspec.ValidationError`` into a ``Problem``."""
    at = _AT.fullmatch(text)
    message, path = (at["message"], _parse_path(at["path"])) if at else (text, ())
    for kind, pattern in _MESSAGES:
        match = pattern.fullmatch(message)
        if match is None:
            continue
        groups = match.groupdict()
        if kind is ProblemKind.MISSING:
            return Problem(kind, path=(*path, groups["field"]), text=text)
        expected, nullable = _split_nullable(groups.get("expected"))
        value = groups.get("value")
        return Problem(
            kind,
            path=path,
            expected=expected,
            nullable=nullable,
            got=groups.get("got"),
            value=_unquote(value) if value is not None else None,
            op=groups.get("op"),
            bound=groups.get("bound"),
            text=text,
        )
    return Problem(ProblemKind.OTHER, path=path, text=text)


def problem_from_exception(exc: msgspec.ValidationError | RecursionError) -> Problem:
    """A ``Problem`` for a failed item decode (RecursionError: absurdly deep nesting)."""
    if isinstance(exc, RecursionError):
        return Problem(ProblemKind.TOO_DEEP, text="JSON is nested too deeply")
    return parse_validation_message(str(exc))


def _parse_path(text: str) -> tuple[str | int, ...]:
    # "$.items[3].data.amount" -> ("items", 3, "data", "amount"). Anything unexpected
    # (msgspec writes dict keys as "[...]") ends the path there: the prefix is still useful.
    path: list[str | int] = []
    position = 1  # after "$"
    while position < len(text):
        token = _PATH_TOKEN.match(text, position)
        if token is None:
            break
        path.append(token["name"] if token["name"] is not None else int(token["index"]))
        position = token.end()
    return tuple(path)


def _split_nullable(expected: str | None) -> tuple[str | None, bool]:
    if expected is None:
        return None, False
    parts = [part.strip() for part in expected.split("|")]
    others = [part for part in parts if part != "null"]
    if len(others) == len(parts) or not others:
        return expected, False
    return " | ".join(others), True


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def value_at(document: Any, path: Sequence[str | int]) -> Any:
    """The value at ``path`` inside decoded JSON, or ``None`` when there is none."""
    current = document
    for step in path:
        if isinstance(step, str) and isinstance(current, dict):
            current = current.get(step)
        elif isinstance(step, int) and isinstance(current, list) and step < len(current):
            current = current[step]
        else:
            return None
    return current


def field_label(path: Sequence[str | int], root: str) -> str:
    """A field's name as a message shows it: ``properties.amount``, ``unset_traits[2]``."""
    label = ""
    for step in path:
        if isinstance(step, int):
            label += f"[{step}]"
        else:
            label += f".{step}" if label else step
    return label or root


def _echo(value: str) -> str:
    return value if len(value) <= _MAX_ECHO else value[: _MAX_ECHO - 1] + "…"


def _or_list(values: Sequence[str]) -> str:
    # Pydantic's style: "'M' or 'F'", "'yes', 'no' or 'unknown'".
    quoted = [f"'{value}'" for value in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    return ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _bound_value(bound: str) -> int | str:
    return int(bound) if re.fullmatch(r"-?\d+", bound) else bound


# --- 422 ErrorDetail ---------------------------------------------------------------------

#: msgspec's expected type -> (pydantic error type, msg).
TYPE_ERRORS: Final[Mapping[str, tuple[str, str]]] = {
    "str": ("string_type", "Input should be a valid string"),
    "int": ("int_type", "Input should be a valid integer"),
    "float": ("float_type", "Input should be a valid number"),
    "number": ("float_type", "Input should be a valid number"),
    "bool": ("bool_type", "Input should be a valid boolean"),
    "object": ("dict_type", "Input should be a valid dictionary"),
    "array": ("list_type", "Input should be a valid list"),
    "datetime": ("datetime_type", "Input should be a valid datetime"),
    "null": ("none_required", "Input should be None"),
}

_RANGE_ERRORS: Final[Mapping[str, tuple[str, str, str]]] = {
    ">": ("greater_than", "greater than", "gt"),
    ">=": ("greater_than_equal", "greater than or equal to", "ge"),
    "<": ("less_than", "less than", "lt"),
    "<=": ("less_than_equal", "less than or equal to", "le"),
}


def to_error_detail(
    problem: Problem,
    *,
    loc_prefix: Sequence[str | int],
    input_value: Any,
    choices: Choices,
) -> ErrorDetail:
    """Render a ``Problem`` as one 422 ``ErrorDetail``."""
    loc = [*loc_prefix, *problem.path]
    field = problem.path[-1] if problem.path and isinstance(problem.path[-1], str) else ""
    error_type, msg, ctx = _detail_parts(problem, field, choices)
    return ErrorDetail(
        loc=loc,
        msg=msg,
        type=error_type,
        input=None if problem.kind is ProblemKind.MISSING else input_value,
        ctx=ctx,
    )


def _detail_parts(  # noqa: PLR0911, PLR0912 - one branch per kind: a table
    problem: Problem, field: str, choices: Choices
) -> tuple[str, str, dict[str, Any]]:
    kind = problem.kind
    if kind is ProblemKind.MISSING:
        return "missing", "field required", {}
    if kind is ProblemKind.WRONG_TYPE:
        error_type, msg = TYPE_ERRORS.get(
            problem.expected or "",
            ("type_error", f"Input should be of type {problem.expected}"),
        )
        return error_type, msg, {}
    if kind is ProblemKind.INVALID_CHOICE:
        allowed = choices.get(field)
        if not allowed:
            return "enum", "Input should be one of the allowed values", {}
        expected = _or_list(allowed)
        return "enum", f"Input should be {expected}", {"expected": expected}
    if kind is ProblemKind.INVALID_TAG:
        expected = _or_list(choices.get(field, ()))
        tag = problem.value or ""
        return (
            "union_tag_invalid",
            (
                f"Input tag '{_echo(tag)}' found using '{field}' does not match any of the "
                f"expected tags: {expected}"
            ),
            {"discriminator": f"'{field}'", "tag": tag, "expected_tags": expected},
        )
    if kind is ProblemKind.INVALID_DATETIME:
        return (
            "datetime_parsing",
            "Input should be a valid ISO 8601 datetime with a timezone, e.g. 2025-01-15T12:00:00Z",
            {},
        )
    if kind is ProblemKind.NAIVE_DATETIME:
        return "timezone_aware", "Input should have timezone info", {}
    if kind is ProblemKind.TOO_SHORT:
        bound = int(problem.bound or 0)
        if problem.expected == "str":
            unit = "character" if bound == 1 else "characters"
            return (
                "string_too_short",
                f"String should have at least {bound} {unit}",
                {"min_length": bound},
            )
        return "too_short", f"Input should have at least {bound} items", {"min_length": bound}
    if kind is ProblemKind.OUT_OF_RANGE and problem.op is not None and problem.op in _RANGE_ERRORS:
        error_type, words, key = _RANGE_ERRORS[problem.op]
        bound_text = problem.bound or ""
        return error_type, f"Input should be {words} {bound_text}", {key: _bound_value(bound_text)}
    if kind is ProblemKind.NOT_FINITE:
        return "finite_number", "Input should be a finite number", {}
    if kind is ProblemKind.TOO_MANY_DECIMALS:
        places = int(problem.bound or 0)
        return (
            "decimal_max_places",
            f"Decimal input should have no more than {places} decimal places",
            {"decimal_places": places},
        )
    if kind is ProblemKind.TIMESTAMP_OUT_OF_RANGE:
        return (
            "datetime_object_invalid",
            "Invalid datetime object, got out of range once converted to UTC",
            {"error": "out of range once converted to UTC"},
        )
    if kind is ProblemKind.TOO_DEEP:
        return "json_invalid", "JSON decode error", {"error": "JSON is nested too deeply"}
    return "value_error", f"Value error, {problem.text}", {"error": problem.text}


_JSON_POSITION = re.compile(r"\(byte (?P<position>\d+)\)")


def json_invalid_detail(error: str, position: int | None) -> ErrorDetail:
    """The 422 entry for a body that is not JSON.

    ``loc`` ends with the byte position, taken from msgspec's message ``(byte N)`` when it
    names one, else ``position`` (the body's length for truncated input); ``None`` leaves it
    at ``["body"]``.
    """
    found = _JSON_POSITION.search(error)
    at = int(found["position"]) if found else position
    loc: list[str | int] = ["body"] if at is None else ["body", at]
    return ErrorDetail(
        loc=loc, msg="JSON decode error", type="json_invalid", input=None, ctx={"error": error}
    )


# --- track EventError --------------------------------------------------------------------

#: msgspec's expected type -> the words a per-event message uses.
EXPECTED_WORDS: Final[Mapping[str, str]] = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "number": "a number",
    "bool": "a boolean",
    "object": "an object",
    "array": "an array",
    "datetime": "an ISO 8601 datetime string",
    "null": "null",
}
#: msgspec's actual JSON type -> the words a per-event message uses.
GOT_WORDS: Final[Mapping[str, str]] = {
    "str": "string",
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "null": "null",
    "object": "object",
    "array": "array",
}


def to_event_error(
    problem: Problem,
    *,
    index: int,
    event_id: str | None,
    choices: Choices,
    root: str = "event",
) -> EventError:
    """Render a ``Problem`` of one track event as its ``EventError``."""
    code, message = _event_parts(problem, field_label(problem.path, root), choices)
    return EventError(index=index, event_id=event_id, code=code, message=message)


def _event_parts(  # noqa: PLR0911, PLR0912 - one branch per kind: a table
    problem: Problem, field: str, choices: Choices
) -> tuple[EventErrorCode, str]:
    kind = problem.kind
    if kind is ProblemKind.MISSING:
        return EventErrorCode.MISSING_FIELD, f"{field} is required"
    if kind is ProblemKind.WRONG_TYPE:
        expected = EXPECTED_WORDS.get(problem.expected or "", f"of type {problem.expected}")
        if problem.nullable:
            expected += " or null"
        got = f", got {GOT_WORDS.get(problem.got, problem.got)}" if problem.got else ""
        return EventErrorCode.INVALID_TYPE, f"{field} must be {expected}{got}"
    invalid = EventErrorCode.INVALID_VALUE
    value = _echo(problem.value or "")
    if kind is ProblemKind.INVALID_CHOICE:
        name = problem.path[-1] if problem.path else ""
        allowed = choices.get(name, ()) if isinstance(name, str) else ()
        listed = f"one of {', '.join(allowed)}" if allowed else "one of the allowed values"
        return invalid, f"{field} must be {listed}, got '{value}'"
    if kind is ProblemKind.INVALID_TAG:
        return invalid, f"{field} has an unknown value '{value}'"
    if kind is ProblemKind.INVALID_DATETIME:
        return invalid, (
            f"{field} must be an ISO 8601 datetime with a timezone, e.g. 2026-05-18T14:38:00.000Z"
        )
    if kind is ProblemKind.NAIVE_DATETIME:
        return invalid, f"{field} must include a timezone (Z or an offset such as +02:00)"
    if kind is ProblemKind.TOO_SHORT:
        if problem.bound == "1":
            return invalid, f"{field} must not be empty"
        return invalid, f"{field} must have a length of at least {problem.bound}"
    if kind is ProblemKind.OUT_OF_RANGE and problem.op is not None and problem.op in _RANGE_ERRORS:
        return invalid, f"{field} must be {_RANGE_ERRORS[problem.op][1]} {problem.bound}"
    if kind is ProblemKind.NOT_FINITE:
        return invalid, f"{field} must be a finite number"
    if kind is ProblemKind.TOO_MANY_DECIMALS:
        return invalid, f"{field} must have at most {problem.bound} decimal places"
    if kind is ProblemKind.NOT_SNAKE_CASE:
        return invalid, (
            f"{field} must be snake_case (lower-case letters, digits and underscores), "
            f"got '{value}'"
        )
    if kind is ProblemKind.TIMESTAMP_OUT_OF_RANGE:
        return invalid, f"{field} is out of range once converted to UTC"
    if kind is ProblemKind.TOO_DEEP:
        return invalid, f"{field} is nested too deeply"
    return invalid, f"{field} is invalid: {problem.text}"
