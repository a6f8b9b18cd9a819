"""``POST /v1/events/track``: a batch of events, each accepted or rejected on its own.

The body is ``{"events": [event, ...]}``. Only a malformed body is a 422 (not JSON, not an
object, ``events`` missing or not an array, empty, more than ``MAX_TRACK_EVENTS``); every
other problem rejects just that event with an ``EventError`` and the rest are accepted.

Decoding, fastest path first:

1. the body with ``events: list[msgspec.Raw]``: checks the JSON and the envelope, and slices
   out each event's bytes, which become the envelope's ``payload`` untouched;
2. the body again, fully typed, in one pass. When that succeeds (the common case) every event
   is valid as far as types go;
3. only if it fails, each event on its own with the per-event Decoder, to find which ones are
   wrong and why (msgspec reports only the first error of a decode).

Then, per event: size (``MAX_EVENT_BYTES`` of JSON), ``event_name`` in snake_case, the
timestamp in UTC, and the catalogue in the requested mode.

Choices the spec leaves open: ``null`` for an optional field means absent; unknown fields
are accepted (and kept in the payload); ids must be non-empty strings; an event without
``event_id`` gets a server-generated UUIDv7.
"""

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import msgspec

from ingest.body import check_batch_size, decode_body, decode_item, untyped
from ingest.catalogue import (
    CATALOGUE_MODES,
    Catalogue,
    CatalogueMode,
    Violation,
    ViolationCode,
    default_catalogue,
)
from ingest.envelope import SOURCE_TRACK, Envelope
from ingest.errors import EventError, EventErrorCode
from ingest.ids import Identifier, uuid7
from ingest.problems import Choices, Problem, ProblemKind, to_event_error
from ingest.timestamps import AwareDatetime, TimestampOutOfRangeError, require_utc, to_utc

__all__ = [
    "DEVICE_TYPES",
    "MAX_EVENT_BYTES",
    "MAX_TRACK_EVENTS",
    "PLATFORMS",
    "AcceptedEvent",
    "DeviceType",
    "EventViolation",
    "Platform",
    "TrackBatch",
    "TrackEvent",
    "TrackRequest",
    "decode_track",
    "decode_track_event",
]

#: Most events in one request; more is a 422.
MAX_TRACK_EVENTS: Final = 2_500
#: Largest JSON of one event (32 KB); a larger event is rejected with PAYLOAD_TOO_LARGE.
MAX_EVENT_BYTES: Final = 32 * 1024

DeviceType = Literal["mobile", "tablet", "desktop"]
Platform = Literal["ios", "android", "web"]
DEVICE_TYPES: Final[tuple[str, ...]] = get_args(DeviceType)
PLATFORMS: Final[tuple[str, ...]] = get_args(Platform)

_CHOICES: Final[Choices] = {"device_type": DEVICE_TYPES, "platform": PLATFORMS}
_SNAKE_CASE: Final = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
_SNAKE_CASE_SEEN: Final[set[str]] = set()
_SNAKE_CASE_SEEN_MAX: Final = 10_000
_STRICT_CODES: Final = {
    ViolationCode.UNKNOWN_EVENT: EventErrorCode.UNKNOWN_EVENT,
    ViolationCode.MISSING_PROPERTY: EventErrorCode.MISSING_FIELD,
    ViolationCode.PROPERTY_TYPE_MISMATCH: EventErrorCode.INVALID_TYPE,
}


# gc=False on the wire Structs: a decoded batch is a tree (no reference cycles possible),
# and thousands of GC-tracked Structs alive at once slow every collection.
class TrackEvent(msgspec.Struct, frozen=True, gc=False):
    """One event of a track request."""

    user_id: Identifier
    event_name: str
    timestamp: AwareDatetime
    session_id: str | None = None
    event_id: Identifier | None = None
    device_type: DeviceType | None = None
    platform: Platform | None = None
    brand_id: str | None = None
    properties: dict[str, Any] | None = None


class TrackRequest(msgspec.Struct, frozen=True, gc=False):
    """The body of ``POST /v1/events/track``."""

    events: list[TrackEvent]


class _RawTrackRequest(msgspec.Struct, frozen=True, gc=False):
    events: list[msgspec.Raw]


_RAW_REQUEST: Final = msgspec.json.Decoder(_RawTrackRequest)
_REQUEST: Final = msgspec.json.Decoder(TrackRequest)
_EVENT: Final = msgspec.json.Decoder(TrackEvent)


class AcceptedEvent(msgspec.Struct, frozen=True, gc=False):
    """An accepted event and its position in the request's ``events`` array."""

    index: int
    envelope: Envelope


class EventViolation(msgspec.Struct, frozen=True, gc=False):
    """A catalogue finding about an accepted event (``warn`` mode)."""

    index: int
    event_id: str
    violation: Violation


class TrackBatch(msgspec.Struct, frozen=True, gc=False):
    """The outcome of decoding a track request."""

    #: How many events the request held.
    received: int
    #: The accepted events in request order, each with its index.
    accepted: list[AcceptedEvent]
    #: One per rejected event, in request order.
    errors: list[EventError]
    #: Catalogue findings about accepted events (``warn`` mode; empty otherwise).
    violations: list[EventViolation]

    @property
    def envelopes(self) -> list[Envelope]:
        return [accepted.envelope for accepted in self.accepted]

    @property
    def rejected(self) -> int:
        return len(self.errors)


def decode_track(
    body: bytes,
    *,
    tenant: str,
    environment: str,
    client_id: str | None,
    received_at: datetime,
    catalogue_mode: CatalogueMode = "warn",
    catalogue: Catalogue | None = None,
    new_event_id: Callable[[], str] = uuid7,
) -> TrackBatch:
    """Decode a track request into envelopes and per-event errors.

    Raises ``RequestInvalid`` (422) only when the body itself is malformed. ``catalogue``
    defaults to the shipped one; ``new_event_id`` makes ids for events that have none.
    """
    if catalogue_mode not in CATALOGUE_MODES:
        raise ValueError(f"catalogue_mode must be one of {CATALOGUE_MODES}, not {catalogue_mode!r}")
    received_at = require_utc(received_at)
    raw_events = decode_body(_RAW_REQUEST, body, choices=_CHOICES).events
    check_batch_size(len(raw_events), field="events", limit=MAX_TRACK_EVENTS, noun="events")
    typed = _decode_all(body)
    checker = None if catalogue_mode == "off" else (catalogue or default_catalogue())

    accepted: list[AcceptedEvent] = []
    errors: list[EventError] = []
    violations: list[EventViolation] = []
    # The hot loop (tens of thousands of events a second): what a helper would do is
    # written inline where it saves a call per event, the rare cases go to helpers.
    check = None if checker is None else checker.check
    strict = catalogue_mode == "strict"
    snake_case_seen = _SNAKE_CASE_SEEN
    for index, raw in enumerate(raw_events):
        payload = bytes(raw)
        if len(payload) > MAX_EVENT_BYTES:
            errors.append(_too_large(index, payload))
            continue
        event = typed[index] if typed is not None else _decode_one(payload)
        if isinstance(event, Problem):
            errors.append(
                to_event_error(
                    event, index=index, event_id=_sent_event_id(payload), choices=_CHOICES
                )
            )
            continue
        event_name = event.event_name
        timestamp = event.timestamp
        if event_name in snake_case_seen and timestamp.tzinfo is UTC:
            occurred_at = timestamp
        else:
            checked = _occurred_at(event)
            if isinstance(checked, Problem):
                errors.append(
                    to_event_error(checked, index=index, event_id=event.event_id, choices=_CHOICES)
                )
                continue
            occurred_at = checked
        found = check(event_name, event.properties) if check is not None else None
        if found and strict:
            errors.append(_strict_error(index, event.event_id, found))
            continue
        event_id = event.event_id
        envelope = Envelope(
            tenant,
            environment,
            SOURCE_TRACK,
            event_name,
            event_id if event_id is not None else new_event_id(),
            event.user_id,
            occurred_at,
            received_at,
            client_id,
            payload,
        )
        accepted.append(AcceptedEvent(index, envelope))
        if found:
            violations.extend(EventViolation(index, envelope.event_id, v) for v in found)
    return TrackBatch(
        received=len(raw_events), accepted=accepted, errors=errors, violations=violations
    )


def decode_track_event(payload: bytes) -> TrackEvent:
    """Decode one stored track payload (one event object) into its Struct.

    For readers of the log. Raises ``msgspec.ValidationError`` / ``msgspec.DecodeError`` on
    anything msgspec rejects (the snake_case and catalogue checks are not repeated).
    """
    return _EVENT.decode(payload)


def _decode_all(body: bytes) -> list[TrackEvent] | None:
    # The one typed pass over the whole batch; None sends the caller to per-event decoding.
    try:
        return _REQUEST.decode(body).events
    except (msgspec.ValidationError, RecursionError):
        return None


def _decode_one(payload: bytes) -> TrackEvent | Problem:
    return decode_item(_EVENT, payload)


def _occurred_at(event: TrackEvent) -> datetime | Problem:
    # Checks msgspec cannot express; they come after its checks, so a batch that decoded in
    # one pass still gets them for every event.
    if not _is_snake_case(event.event_name):
        return Problem(ProblemKind.NOT_SNAKE_CASE, path=("event_name",), value=event.event_name)
    try:
        return to_utc(event.timestamp)
    except TimestampOutOfRangeError:
        return Problem(ProblemKind.TIMESTAMP_OUT_OF_RANGE, path=("timestamp",))


def _is_snake_case(name: str) -> bool:
    # A batch repeats a handful of names; remembering the good ones skips most regex runs.
    # Bounded, so a sender inventing names cannot grow it without limit.
    if name in _SNAKE_CASE_SEEN:
        return True
    if _SNAKE_CASE.fullmatch(name) is None:
        return False
    if len(_SNAKE_CASE_SEEN) < _SNAKE_CASE_SEEN_MAX:
        _SNAKE_CASE_SEEN.add(name)
    return True


def _sent_event_id(payload: bytes) -> str | None:
    # The id to name in an EventError when the event did not decode: the sender's, if usable.
    document = untyped(payload)
    event_id = document.get("event_id") if isinstance(document, dict) else None
    return event_id if isinstance(event_id, str) and event_id else None


def _too_large(index: int, payload: bytes) -> EventError:
    return EventError(
        index=index,
        event_id=_sent_event_id(payload),
        code=EventErrorCode.PAYLOAD_TOO_LARGE,
        message=(
            f"event is {len(payload)} bytes of JSON; the limit is {MAX_EVENT_BYTES} bytes "
            f"({MAX_EVENT_BYTES // 1024} KB)"
        ),
    )


def _strict_error(index: int, event_id: str | None, found: list[Violation]) -> EventError:
    # One error per rejected event (the spec's shape): the first finding gives the code, the
    # message names every finding so the sender can fix them in one go.
    return EventError(
        index=index,
        event_id=event_id,
        code=_STRICT_CODES[found[0].code],
        message="; ".join(violation.message for violation in found),
    )
