"""Request-level decoding shared by the three endpoints.

Each endpoint first decodes its body with a cached Decoder; anything wrong at this level
(not JSON, not an object, the batch array missing or of the wrong type, too few or too many
items) rejects the whole request with 422. Item-level problems are each endpoint's business.
"""

from collections.abc import Sequence
from typing import Any, Final, NoReturn, TypeVar

import msgspec

from ingest.errors import ErrorDetail, RequestInvalid
from ingest.problems import (
    Choices,
    Problem,
    json_invalid_detail,
    parse_validation_message,
    problem_from_exception,
    to_error_detail,
    value_at,
)

__all__ = [
    "MIN_BATCH_MESSAGE",
    "check_batch_size",
    "decode_body",
    "decode_item",
    "problem_detail",
    "raise_invalid",
    "untyped",
]

T = TypeVar("T")

MIN_BATCH_MESSAGE: Final = "Minimum one event per request"

_UNTYPED: Final = msgspec.json.Decoder()


def untyped(data: bytes) -> Any:
    """Decode JSON into builtins for quoting inputs back; ``None`` when that fails."""
    try:
        return _UNTYPED.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None


def decode_body(decoder: msgspec.json.Decoder[T], body: bytes, *, choices: Choices) -> T:
    """Decode a whole request body, or raise ``RequestInvalid`` with one detail."""
    _require_utf8(body)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:  # before DecodeError: it is a subclass
        problem = parse_validation_message(str(exc))
        raise_invalid(problem, loc_prefix=["body"], document=untyped(body), choices=choices)
    except msgspec.DecodeError as exc:
        raise RequestInvalid([json_invalid_detail(str(exc), len(body))]) from None
    except RecursionError:
        raise RequestInvalid([json_invalid_detail("JSON is nested too deeply", None)]) from None


def _require_utf8(body: bytes) -> None:
    # msgspec checks UTF-8 only in strings it decodes; those it skips (unknown fields, Raw
    # slices) pass unchecked, and would reach the log as payloads no reader can decode. An
    # ASCII body (the usual case) needs no further check, and isascii() costs ~1 us per 15 KB.
    if body.isascii():
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        error = f"JSON is malformed: invalid UTF-8 (byte {exc.start})"
        raise RequestInvalid([json_invalid_detail(error, len(body))]) from None


def decode_item(decoder: msgspec.json.Decoder[T], item: bytes) -> T | Problem:
    """Decode one item of a batch; a failure comes back as its ``Problem``.

    Only called after the item was sliced out of a syntactically valid body, so the only
    failures are validation errors (and nesting deeper than the recursion limit).
    """
    try:
        return decoder.decode(item)
    except (msgspec.ValidationError, RecursionError) as exc:
        return problem_from_exception(exc)


def problem_detail(
    problem: Problem, *, loc_prefix: Sequence[str | int], document: Any, choices: Choices
) -> ErrorDetail:
    """The 422 detail for ``problem``, quoting the input found at its path in ``document``."""
    return to_error_detail(
        problem,
        loc_prefix=loc_prefix,
        input_value=value_at(document, problem.path),
        choices=choices,
    )


def raise_invalid(
    problem: Problem, *, loc_prefix: Sequence[str | int], document: Any, choices: Choices
) -> NoReturn:
    raise RequestInvalid(
        [problem_detail(problem, loc_prefix=loc_prefix, document=document, choices=choices)]
    ) from None


def check_batch_size(count: int, *, field: str, limit: int, noun: str) -> None:
    """Reject an empty batch, or one over ``limit``, with 422."""
    if count == 0:
        raise RequestInvalid(
            [
                ErrorDetail(
                    loc=["body", field],
                    msg=MIN_BATCH_MESSAGE,
                    type="too_short",
                    input=[],
                    ctx={"field_type": "List", "min_length": 1, "actual_length": 0},
                )
            ]
        )
    if count > limit:
        raise RequestInvalid(
            [
                ErrorDetail(
                    loc=["body", field],
                    msg=f"At most {limit} {noun} per request, got {count}",
                    type="too_long",
                    # The array itself is not quoted back: it can be megabytes.
                    input=None,
                    ctx={"field_type": "List", "max_length": limit, "actual_length": count},
                )
            ]
        )
