"""The two error shapes the specs define, and the exception that carries the 422 one.

* ``EventError`` is one rejected event of ``POST /v1/events/track``: the request is still
  answered 202 and the other events are accepted.
* ``ErrorDetail`` is one entry of a 422 body ``{"detail": [...]}``, shared by all three
  endpoints: the track body itself is malformed, the identify body is invalid, or (all or
  nothing) any item of a unified batch is invalid.

Both are msgspec Structs whose field names are the wire names, so the HTTP layer encodes
them as they are.
"""

from enum import StrEnum
from typing import Any

import msgspec

__all__ = ["ErrorDetail", "EventError", "EventErrorCode", "RequestInvalid"]


class EventErrorCode(StrEnum):
    """Machine-readable reasons for rejecting one track event."""

    #: A required field (``user_id``, ``event_name``, ``timestamp``) is absent, or, in strict
    #: catalogue mode, a property the catalogue expects for this event.
    MISSING_FIELD = "MISSING_FIELD"
    #: A field has the wrong JSON type (``"user_id": 42``, ``"properties": []``).
    INVALID_TYPE = "INVALID_TYPE"
    #: The type is right but the value is not allowed: an unknown ``device_type`` or
    #: ``platform``, an ``event_name`` that is not snake_case, a timestamp that is not ISO 8601
    #: with a zone, an empty id.
    INVALID_VALUE = "INVALID_VALUE"
    #: The event's own JSON is larger than ``MAX_EVENT_BYTES``.
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    #: Strict catalogue mode only: ``event_name`` is not in the event catalogue.
    UNKNOWN_EVENT = "UNKNOWN_EVENT"
    #: Decided by the event store, not by ingest: the ``event_id`` is already stored with
    #: different content. Defined here so every per-event code lives in one place.
    EVENT_ID_CONFLICT = "EVENT_ID_CONFLICT"


class EventError(msgspec.Struct, frozen=True, gc=False):
    """One rejected track event, in the spec's ``EventError`` shape."""

    #: Zero-based position of the event in the submitted ``events`` array.
    index: int
    #: The event's own ``event_id`` when it sent a usable one, else ``None``.
    event_id: str | None
    code: EventErrorCode
    #: Names the field, e.g. ``"event_name is required"``.
    message: str


class ErrorDetail(msgspec.Struct, frozen=True):
    """One entry of a 422 body, exactly ``{"loc", "msg", "type", "input", "ctx"}``."""

    #: Path to the failing value, starting at ``"body"``: ``["body", "items", 3, "data",
    #: "amount"]``.
    loc: list[str | int]
    msg: str
    #: Pydantic-style error type: ``missing``, ``string_type``, ``json_invalid``, ...
    type: str
    #: The value received at ``loc`` (``None`` for a missing field).
    input: Any
    ctx: dict[str, Any]


class RequestInvalid(Exception):  # noqa: N818 - the name says what the HTTP layer answers: 422
    """The request as a whole is rejected with 422; ``detail`` lists why."""

    def __init__(self, detail: list[ErrorDetail]) -> None:
        self.detail = detail
        summary = "; ".join(f"{'.'.join(map(str, d.loc))}: {d.msg}" for d in detail[:3])
        more = f" (and {len(detail) - 3} more)" if len(detail) > 3 else ""
        super().__init__(f"request invalid: {summary}{more}")

    def to_dict(self) -> dict[str, Any]:
        """The 422 body, as builtins: ``{"detail": [{"loc": ..., ...}, ...]}``."""
        return {"detail": msgspec.to_builtins(self.detail)}
