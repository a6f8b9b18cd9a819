"""The JSON an event travels as, to every kind of destination.

The payload is embedded exactly as received (`msgspec.Raw`): numbers keep their
text (`12.50` stays `12.50`), which a decode and re-encode would not promise.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from eventstore import RecordedEvent

__all__ = ["WireEvent", "encode_batch", "encode_event", "to_wire"]


class WireEvent(msgspec.Struct, frozen=True, gc=False):
    position: int
    """The event's global log position: increasing, so a receiver can order by it."""
    event_id: str
    """Unique per (tenant, environment): what a receiver dedups by."""
    tenant: str
    environment: str
    source: str
    type: str
    subject: str
    """The player (or other subject) the event is about."""
    occurred_at: datetime
    received_at: datetime
    payload: msgspec.Raw


class _Batch(msgspec.Struct, frozen=True, gc=False):
    events: list[WireEvent]


_encoder = msgspec.json.Encoder()


def to_wire(event: RecordedEvent) -> WireEvent:
    return WireEvent(
        position=event.position,
        event_id=event.event_id,
        tenant=event.tenant,
        environment=event.environment,
        source=event.source,
        type=event.type,
        subject=event.subject,
        occurred_at=event.occurred_at,
        received_at=event.received_at,
        payload=msgspec.Raw(event.payload),
    )


def encode_event(event: RecordedEvent) -> bytes:
    """One event as a JSON object (the body of a NATS message)."""
    return _encoder.encode(to_wire(event))


def encode_batch(events: Sequence[RecordedEvent]) -> bytes:
    """`{"events": [...]}`: the body of a webhook request."""
    return _encoder.encode(_Batch([to_wire(e) for e in events]))
