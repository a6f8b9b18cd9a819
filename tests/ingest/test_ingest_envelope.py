"""The envelope: exactly the fields the event store reads, immutable, not GC-tracked."""

import gc
from datetime import UTC, datetime

import msgspec
import pytest

from ingest import SOURCE_IDENTIFY, SOURCE_TRACK, SOURCE_UNIFIED, Envelope

AT = datetime(2026, 5, 18, tzinfo=UTC)


def envelope() -> Envelope:
    return Envelope(
        tenant="t",
        environment="live",
        source=SOURCE_TRACK,
        type="bet_placed",
        event_id="e1",
        subject="p1",
        occurred_at=AT,
        received_at=AT,
        client_id=None,
        payload=b"{}",
    )


def test_envelope_has_exactly_the_fields_the_store_reads_in_order() -> None:
    assert Envelope.__struct_fields__ == (
        "tenant",
        "environment",
        "source",
        "type",
        "event_id",
        "subject",
        "occurred_at",
        "received_at",
        "client_id",
        "payload",
    )


def test_envelope_is_frozen() -> None:
    with pytest.raises(AttributeError):
        envelope().tenant = "other"  # type: ignore[misc]


def test_envelope_is_not_tracked_by_the_garbage_collector() -> None:
    assert not gc.is_tracked(envelope())


def test_envelopes_compare_and_hash_by_value() -> None:
    assert envelope() == envelope()
    assert hash(envelope()) == hash(envelope())


def test_envelope_sources_are_the_three_endpoints() -> None:
    assert (SOURCE_TRACK, SOURCE_IDENTIFY, SOURCE_UNIFIED) == ("track", "identify", "unified")


def test_envelope_round_trips_through_msgpack() -> None:
    data = msgspec.msgpack.encode(envelope())

    assert msgspec.msgpack.decode(data, type=Envelope) == envelope()
