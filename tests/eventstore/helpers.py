"""Builders shared by the log's tests."""

from __future__ import annotations

from datetime import UTC, datetime

from eventstore import Envelope

T0 = datetime(2026, 5, 18, 15, 10, tzinfo=UTC)


def envelope(
    event_id: str,
    payload: bytes = b'{"amount": 100, "currency": "EUR"}',
    *,
    tenant: str = "casino-a",
    environment: str = "live",
    type_: str = "deposit_success",
    source: str = "track",
    subject: str = "ply_776192",
    client_id: str | None = "sdk-test",
    received_at: datetime = T0,
) -> Envelope:
    return Envelope(
        tenant=tenant,
        environment=environment,
        source=source,
        type=type_,
        event_id=event_id,
        subject=subject,
        occurred_at=T0,
        received_at=received_at,
        client_id=client_id,
        payload=payload,
    )


def batch(prefix: str, count: int, **kwargs: object) -> list[Envelope]:
    return [
        envelope(f"{prefix}-{i}", f'{{"n": {i}}}'.encode(), **kwargs)  # type: ignore[arg-type]
        for i in range(count)
    ]
