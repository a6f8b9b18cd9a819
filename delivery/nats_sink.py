"""NATS JetStream destinations: one message per event, in order per player.

Subject: `<subject_prefix>.<tenant>.<event type>`, each token sanitised (NATS
subjects cannot hold spaces, `.`, `*` or `>`). Header `Nats-Msg-Id` is the event
id, so JetStream drops a message it already stored within its duplicate window
(a batch retried after a lost acknowledgement stores each event once).

**The order rule: per player, not across players.** A batch is split into one
chain per player (the envelope's subject), in log order. Up to `max_in_flight`
publishes await their acknowledgement at once, each of a different player: a
player's next message is published only after the previous one was
acknowledged, and a free slot takes the earliest unsent message of a player with
nothing in flight. So JetStream stores each player's events in log order; two
players' events may interleave differently.

**A failure.** A chain stops at its first failed publish (nothing more of that
player is sent in this batch); the other chains finish. The outcome reports as
delivered only the longest prefix of the batch whose every message was
acknowledged; the rest is retried (by the deliverer), from the first event not
acknowledged, which is the failed message of some chain. Per player that is
safe: a player's acknowledged messages form a prefix of its chain and the
failed one was the last sent, so the retry re-publishes, in order, messages
that were either stored (dropped as duplicates by `Nats-Msg-Id`) or never
stored. With `max_in_flight = 1` a batch is published one message at a time,
in log order across players too.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import re
from collections import deque
from collections.abc import Sequence

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.errors import MaxPayloadError, NoRespondersError
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError, NoStreamResponseError, NotFoundError

from delivery.config import Destination, NatsSettings
from delivery.sink import Outcome
from delivery.wire import encode_event
from eventstore import RecordedEvent

__all__ = ["NatsSink", "subject_for", "subject_token"]

logger = logging.getLogger("playerlog.delivery")

_FORBIDDEN = re.compile(r"[\s.*>\x00-\x1f\x7f]")
RECONNECT_WAIT = 0.5
"""Seconds between the client's reconnection tries while the server is away."""
RECONNECT_ATTEMPTS = 4
"""Tries per server before the client gives up (connecting, or after losing the
server). Bounded on purpose: an unbounded client never returns from its first
connect while the server is down; past these tries the batch is retried with the
destination's own backoff, and the next try connects afresh."""


def subject_token(text: str) -> str:
    """`text` as one subject token: what NATS forbids becomes `_`; empty becomes `_`."""
    return _FORBIDDEN.sub("_", text) or "_"


def subject_for(prefix: str, tenant: str, event_type: str) -> str:
    return f"{prefix}.{subject_token(tenant)}.{subject_token(event_type)}"


class NatsSink:
    def __init__(self, destination: Destination, *, reconnect_wait: float = RECONNECT_WAIT):
        if destination.nats is None:
            raise ValueError(f"nats: destination {destination.name!r} has no nats settings")
        self.destination = destination
        self.settings: NatsSettings = destination.nats
        self._reconnect_wait = reconnect_wait
        self._client: Client | None = None
        self._js: JetStreamContext | None = None

    async def _connect(self) -> JetStreamContext:
        if self._client is not None and not self._client.is_closed and self._js is not None:
            return self._js
        timeout = float(self.settings.ack_timeout)

        async def report(error: Exception) -> None:
            logger.warning("delivery %s: NATS: %s", self.destination.name, error)

        client = await asyncio.wait_for(
            nats.connect(
                servers=self.settings.server_list(),
                name=f"playerlog-delivery-{self.destination.name}",
                connect_timeout=max(1, round(timeout)),
                reconnect_time_wait=self._reconnect_wait,
                max_reconnect_attempts=RECONNECT_ATTEMPTS,
                allow_reconnect=True,
                error_cb=report,
            ),
            (timeout + self._reconnect_wait) * (RECONNECT_ATTEMPTS + 1) * 2,
        )
        js = client.jetstream(timeout=timeout)
        try:
            if self.settings.create_stream:
                await self._ensure_stream(js)
        except BaseException:
            await client.close()
            raise
        self._client, self._js = client, js
        return js

    async def _ensure_stream(self, js: JetStreamContext) -> None:
        assert self.settings.stream is not None  # checked with the settings
        try:
            await js.stream_info(self.settings.stream)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=self.settings.stream,
                    subjects=[f"{self.settings.subject_prefix}.>"],
                    storage=StorageType.FILE,
                    duplicate_window=float(self.settings.duplicate_window),
                )
            )

    async def send(self, events: Sequence[RecordedEvent]) -> Outcome:
        try:
            js = await self._connect()
        except (NatsError, OSError, TimeoutError) as problem:
            await self._drop_client()
            return Outcome(delivered=0, error=f"cannot connect to NATS: {_describe(problem)}")
        chains: dict[tuple[str, str, str], deque[int]] = {}
        for index, event in enumerate(events):
            key = (event.tenant, event.environment, event.subject)
            chains.setdefault(key, deque()).append(index)
        # The next message of every player with none in flight, earliest first.
        ready = [(chain[0], key) for key, chain in chains.items()]
        heapq.heapify(ready)
        acked = [False] * len(events)
        failures: dict[int, Outcome] = {}
        in_flight = 0
        changed = asyncio.Condition()

        def startable() -> bool:
            return bool(ready) or in_flight == 0

        async def publisher() -> None:
            nonlocal in_flight
            while True:
                async with changed:
                    await changed.wait_for(startable)
                    if not ready:
                        return  # nothing in flight, nothing left: the batch is done
                    index, key = heapq.heappop(ready)
                    in_flight += 1
                failure = await self._publish(js, events[index])
                async with changed:
                    in_flight -= 1
                    chain = chains[key]
                    chain.popleft()
                    if failure is not None:
                        failures[index] = failure  # nothing more of this player
                    else:
                        acked[index] = True
                        if chain:
                            heapq.heappush(ready, (chain[0], key))
                    changed.notify_all()

        async with asyncio.TaskGroup() as group:
            for _ in range(min(int(self.settings.max_in_flight), len(chains))):
                group.create_task(publisher())
        if not failures:
            return Outcome(delivered=len(events))
        delivered = acked.index(False)
        first = failures[delivered]  # the first event not acknowledged is a failed one
        return Outcome(delivered=delivered, error=first.error, permanent=first.permanent)

    async def _publish(self, js: JetStreamContext, event: RecordedEvent) -> Outcome | None:
        """Publish one event and await its acknowledgement; None when acknowledged,
        else the failure (with `delivered` 0)."""
        subject = subject_for(self.settings.subject_prefix, event.tenant, event.type)
        headers = {
            "Nats-Msg-Id": event.event_id,
            "Playerlog-Position": str(event.position),
            "Playerlog-Environment": event.environment,
            "Playerlog-Source": event.source,
        }
        try:
            await js.publish(
                subject,
                encode_event(event),
                timeout=float(self.settings.ack_timeout),
                stream=self.settings.stream,
                headers=headers,
            )
        except (MaxPayloadError, BadRequestError) as problem:
            return Outcome(delivered=0, error=_describe(problem), permanent=True)
        except (NoRespondersError, NoStreamResponseError):
            return Outcome(delivered=0, error=f"no JetStream stream captures subject {subject!r}")
        except (NatsError, OSError, TimeoutError) as problem:
            return Outcome(delivered=0, error=f"publish not acknowledged: {_describe(problem)}")
        return None

    async def _drop_client(self) -> None:
        client, self._client, self._js = self._client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.close()

    async def close(self) -> None:
        await self._drop_client()


def _describe(problem: BaseException) -> str:
    text = str(problem).strip()
    return f"{type(problem).__name__}: {text}" if text else type(problem).__name__
