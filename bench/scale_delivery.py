"""bench/scale, delivery: events/s from a prefilled PostgreSQL log to a local NATS
JetStream server and to a local webhook receiver, beside bare clients.

Each delivery measurement stores a new destination (checkpoint 0, `start =
beginning`) and runs its `Deliverer` (the same code `playerlog worker` runs) step by
step until a step finds nothing after the checkpoint; the time is from the first
step to the last checkpoint write. Then the checkpoint must be the log head and the
receiver must hold every event (NATS: the stream's message count; webhook: the
receiver's count of events in signed requests).

The ceilings, in the same run, send the same events with nothing of ours:

* NATS: nats-py's `js.publish` of the same bodies and headers (`Nats-Msg-Id`), acks
  awaited, either one at a time or with the same number in flight as the sink.
* Webhook: httpx's `AsyncClient.post` of the same batch bodies, signed before the
  clock starts, one request at a time (as the sink sends), to the same receiver.

Every NATS measurement gets a stream of its own (deleted afterwards), so JetStream's
duplicate window never drops a message a previous measurement sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.request
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import nats
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from bench._common import track_events
from delivery.config import Destination, decode_destination
from delivery.deliverer import Deliverer
from delivery.nats_sink import subject_for
from delivery.runner import make_sink
from delivery.store import DestinationStore
from delivery.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from delivery.wire import encode_batch, encode_event
from eventstore import Envelope, EventLog, RecordedEvent

TENANT = "casino-a"
ENVIRONMENT = "live"
SECRET = "bench-scale-secret-0123456789abcdef"
BATCH_SIZE = 500
"""Events per log read and per webhook request (the destinations' maximum is 1,000)."""
IN_FLIGHT = 64
"""The NATS sink's default `max_in_flight`."""


@dataclass(frozen=True)
class DeliveryCase:
    key: str
    destination: str
    """"webhook" or "nats"."""
    what: str
    players: int
    in_flight: int
    ceiling: bool

    @property
    def label(self) -> str:
        return self.what


CASES = (
    DeliveryCase("webhook", "webhook", "playerlog Deliverer + WebhookSink", 1_000, 1,
                 ceiling=False),
    DeliveryCase("webhook-bare", "webhook", "bare httpx POST loop (ceiling)", 1_000, 1,
                 ceiling=True),
    DeliveryCase("nats", "nats", "playerlog Deliverer + NatsSink", 1_000, IN_FLIGHT,
                 ceiling=False),
    DeliveryCase("nats-bare", "nats", "bare js.publish, acks awaited (ceiling)", 1_000,
                 IN_FLIGHT, ceiling=True),
    DeliveryCase("nats-hot", "nats", "playerlog Deliverer + NatsSink", 10, IN_FLIGHT,
                 ceiling=False),
    DeliveryCase("nats-1", "nats", "playerlog Deliverer + NatsSink (the former rule)", 1_000,
                 1, ceiling=False),
    DeliveryCase("nats-bare-1", "nats", "bare js.publish, one at a time (ceiling)", 1_000, 1,
                 ceiling=True),
)  # fmt: skip


@dataclass
class DeliverySample:
    case: str
    run: int
    events: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def delivery_events(count: int, players: int, seed: int) -> list[Envelope]:
    """Track events (bench/_common's shapes) spread over `players` players in turn-ish
    random order: the player is both the envelope's subject and the payload's user_id."""
    events = track_events(count, seed)
    found: list[Envelope] = []
    for index, event in enumerate(events):
        player = f"ply_{(index * 7919 + seed) % players:06d}"
        payload = event.payload.replace(event.subject.encode(), player.encode(), 1)
        found.append(msgspec.structs.replace(event, subject=player, payload=payload))
    return found


def prefill(log: EventLog, events: Sequence[Envelope]) -> None:
    for start in range(0, len(events), 10_000):
        results = log.append_sync(events[start : start + 10_000])
        if any(r.status != "stored" for r in results):
            raise RuntimeError("prefill: an event was not stored")


def _destination(
    case: DeliveryCase, name: str, *, url: str, nats_url: str, stream: str
) -> Destination:
    spec: dict[str, Any] = {
        "name": name,
        "tenant": TENANT,
        "environment": ENVIRONMENT,
        "kind": case.destination,
        "batch_size": BATCH_SIZE,
        "retry": {"initial_backoff": 0.05, "max_backoff": 1, "dead_letter_after": 600},
    }
    if case.destination == "webhook":
        spec["webhook"] = {"url": url, "secret": SECRET, "timeout": 30}
    else:
        spec["nats"] = {
            "servers": nats_url,
            "subject_prefix": stream.lower(),
            "stream": stream,
            "create_stream": True,
            "ack_timeout": 30,
            "max_in_flight": case.in_flight,
        }
    return decode_destination(json.dumps(spec))


async def run_deliverer(log: EventLog, destination: Destination) -> float:
    """Deliver from checkpoint 0 to the head; the seconds it took."""
    store = DestinationStore(log)
    store.put(destination)
    sink = make_sink(destination)
    deliverer = Deliverer(log, store, destination, sink)
    stop = asyncio.Event()
    try:
        start = time.perf_counter()
        while await deliverer.step(stop):
            pass
        seconds = time.perf_counter() - start
    finally:
        await sink.close()
    state = store.state(destination)
    head = log.head()
    if state.checkpoint != head or state.dead_letters:
        raise RuntimeError(
            f"{destination.name}: checkpoint {state.checkpoint} of head {head}, "
            f"{state.dead_letters} dead letters, last error {state.last_error}"
        )
    return seconds


# -- NATS --------------------------------------------------------------------------------------


async def _make_stream(nats_url: str, stream: str) -> None:
    client = await nats.connect(nats_url)
    try:
        await client.jetstream().add_stream(
            StreamConfig(name=stream, subjects=[f"{stream.lower()}.>"],
                         storage=StorageType.FILE, duplicate_window=120.0)
        )  # fmt: skip
    finally:
        await client.close()


async def stream_count(nats_url: str, stream: str) -> int:
    client = await nats.connect(nats_url)
    try:
        try:
            return int((await client.jetstream().stream_info(stream)).state.messages)
        except NotFoundError:
            return 0
    finally:
        await client.close()


async def delete_stream(nats_url: str, stream: str) -> None:
    client = await nats.connect(nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await client.jetstream().delete_stream(stream)
    finally:
        await client.close()


async def bare_nats(
    nats_url: str, stream: str, events: Sequence[RecordedEvent], in_flight: int
) -> float:
    """js.publish of every event, acks awaited, `in_flight` at once."""
    await _make_stream(nats_url, stream)
    prefix = stream.lower()
    messages = [
        (subject_for(prefix, e.tenant, e.type), encode_event(e),
         {"Nats-Msg-Id": e.event_id, "Playerlog-Position": str(e.position)})
        for e in events
    ]  # fmt: skip
    client = await nats.connect(nats_url)
    try:
        js = client.jetstream(timeout=30)
        todo = iter(messages)

        async def publisher() -> None:
            for subject, body, headers in todo:
                await js.publish(subject, body, stream=stream, headers=dict(headers))

        start = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(in_flight)))
        return time.perf_counter() - start
    finally:
        await client.close()


# -- webhook -----------------------------------------------------------------------------------


def receiver_counts(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url + "/count", timeout=10) as response:  # localhost only
        found: dict[str, int] = json.loads(response.read())
        return found


async def bare_webhook(url: str, events: Sequence[RecordedEvent]) -> float:
    """One signed POST per batch of BATCH_SIZE, one at a time, bodies made before timing."""
    timestamp = str(int(time.time()))
    requests = []
    for start in range(0, len(events), BATCH_SIZE):
        body = encode_batch(events[start : start + BATCH_SIZE])
        requests.append(
            (body, {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                    SIGNATURE_HEADER: sign(SECRET, timestamp, body)})
        )  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as client:
        start_time = time.perf_counter()
        for body, headers in requests:
            response = await client.post(url, content=body, headers=headers)
            response.raise_for_status()
        return time.perf_counter() - start_time


# -- one measurement ---------------------------------------------------------------------------


async def measure_delivery(
    case: DeliveryCase, run: int, log: EventLog, *, receiver_url: str, nats_url: str
) -> DeliverySample:
    """One measurement of `case` from `log` (prefilled with the case's players)."""
    head = log.head()
    tag = uuid.uuid4().hex[:10]
    stream = f"BENCH_SCALE_{tag.upper()}"
    hook_url = f"{receiver_url}/hooks/{tag}"
    if case.destination == "webhook":
        before = receiver_counts(receiver_url)
        if case.ceiling:
            events = await asyncio.to_thread(log.read, 0, head)
            seconds = await bare_webhook(hook_url, events)
        else:
            destination = _destination(case, f"bench-{tag}", url=hook_url, nats_url=nats_url,
                                       stream=stream)  # fmt: skip
            seconds = await run_deliverer(log, destination)
        after = receiver_counts(receiver_url)
        got = after["events"] - before["events"]
        if after["bad_signatures"] != before["bad_signatures"] or got != head:
            raise RuntimeError(f"{case.key}: the receiver counted {got:,} events of {head:,}")
        return DeliverySample(case.key, run, head, seconds)
    try:
        if case.ceiling:
            events = await asyncio.to_thread(log.read, 0, head)
            seconds = await bare_nats(nats_url, stream, events, case.in_flight)
        else:
            destination = _destination(case, f"bench-{tag}", url=hook_url, nats_url=nats_url,
                                       stream=stream)  # fmt: skip
            seconds = await run_deliverer(log, destination)
        stored = await stream_count(nats_url, stream)
    finally:
        await delete_stream(nats_url, stream)
    if stored != head:
        raise RuntimeError(f"{case.key}: the stream holds {stored:,} messages of {head:,}")
    return DeliverySample(case.key, run, head, seconds)
