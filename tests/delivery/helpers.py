"""Events to deliver, destinations with fast timings, and running a deliverer until
a condition holds."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from delivery.config import Destination, decode_destination
from delivery.deliverer import Deliverer
from delivery.runner import make_sink
from delivery.sink import Sink
from delivery.store import DestinationStore
from eventstore import Envelope, EventLog

SECRET = "test-secret-0123456789abcdef"
FAST_RETRY = {"initial_backoff": 0.01, "max_backoff": 0.05, "dead_letter_after": 30.0}
T0 = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)


def add_events(
    log: EventLog,
    count: int,
    *,
    players: int = 3,
    tenant: str = "casino-a",
    environment: str = "live",
    type_: str | Callable[[int], str] = "bet_placed",
    source: str | Callable[[int], str] = "track",
    prefix: str = "ev",
    received_at: Callable[[int], datetime] | None = None,
) -> list[str]:
    """Append `count` events spread over `players` players; returns their event ids."""
    start = log.head()
    envelopes = []
    for n in range(count):
        at = received_at(n) if received_at else T0 + timedelta(seconds=start + n)
        envelopes.append(
            Envelope(
                tenant=tenant,
                environment=environment,
                source=source(n) if callable(source) else source,
                type=type_(n) if callable(type_) else type_,
                event_id=f"{prefix}-{start + n:06d}",
                subject=f"ply_{n % players}",
                occurred_at=at,
                received_at=at,
                client_id="tests",
                payload=b'{"bet_amount": 12.50, "n": %d, "big": 12345678901234567890}' % n,
            )
        )
    results = log.append_sync(envelopes)
    assert all(r.status == "stored" for r in results)
    return [e.event_id for e in envelopes]


def webhook_destination(url: str, name: str = "crm", **overrides: Any) -> Destination:
    spec: dict[str, Any] = {
        "name": name,
        "tenant": "casino-a",
        "environment": "live",
        "kind": "webhook",
        "webhook": {"url": url, "secret": SECRET, "timeout": 0.3},
        "retry": FAST_RETRY,
        "batch_size": 10,
    }
    spec.update(overrides)
    return _decode(spec)


def nats_destination(
    servers: str, stream: str, name: str = "broker", **overrides: Any
) -> Destination:
    spec: dict[str, Any] = {
        "name": name,
        "tenant": "casino-a",
        "environment": "live",
        "kind": "nats",
        "nats": {
            "servers": servers,
            "subject_prefix": stream.lower(),
            "stream": stream,
            "create_stream": True,
            "ack_timeout": 1.0,
        },
        "retry": FAST_RETRY,
        "batch_size": 20,
    }
    spec.update(overrides)
    return _decode(spec)


def _decode(spec: dict[str, Any]) -> Destination:
    return decode_destination(json.dumps(spec))


async def deliver_until(
    log: EventLog,
    destination: Destination,
    done: Callable[[], bool],
    *,
    timeout: float = 15.0,
    sink: Sink | None = None,
    store: DestinationStore | None = None,
    during: Callable[[], Any] | None = None,
) -> DestinationStore:
    """Store the destination, run its deliverer until `done()` holds, then stop it."""
    store = store or DestinationStore(log)
    if store.get(destination.tenant, destination.environment, destination.name) is None:
        store.put(destination)
    deliverer = Deliverer(
        log, store, destination, sink or make_sink(destination), poll_interval=0.02
    )
    stop = asyncio.Event()
    task = asyncio.create_task(deliverer.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if task.done():
                task.result()
                raise AssertionError("the deliverer stopped on its own")
            if time.monotonic() > deadline:
                raise AssertionError(f"not done within {timeout}s: {store.state(destination)}")
            if during is not None:
                result = during()
                if asyncio.iscoroutine(result):
                    await result
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await task
    return store


def first_receipts(positions: Sequence[int]) -> list[int]:
    """The positions in the order each was first received (later repeats dropped)."""
    seen: set[int] = set()
    order = []
    for p in positions:
        if p not in seen:
            seen.add(p)
            order.append(p)
    return order
