"""One destination's delivery loop: a consumer of the log with its own checkpoint.

Strict log order per destination: read the destination's next batch after its
checkpoint, send it, and move the checkpoint past it only once it is acknowledged
(or dead-lettered); the next batch is not sent before. Log order contains every
player's order, so a player's events arrive in the order they were stored, and a
receiver never sees event n+1 of a player before event n. Within a batch a sink
may publish different players' events concurrently, as long as each player's stay
in order and `Outcome.delivered` counts only a wholly acknowledged prefix (the
NATS sink does, see delivery/nats_sink.py). The price: one failing batch holds up
the destination (until it succeeds or is dead-lettered), not just that player.

At least once: a crash after a send and before the checkpoint write sends the
batch again, so receivers dedup by `event_id` (NATS JetStream does it for us
within its duplicate window).

A refused batch (HTTP 4xx other than 408/429, a payload NATS refuses) is sent
again one event at a time, so only the events refused on their own are
dead-lettered. A batch still failing `dead_letter_after` its first failure is
dead-lettered whole, and delivery moves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import msgspec

from delivery.backoff import backoff_delay
from delivery.config import Destination
from delivery.sink import Sink
from delivery.store import DeadLetter, DeliveryState, DestinationStore
from eventstore import EventLog, RecordedEvent

__all__ = ["DEFAULT_POLL_INTERVAL", "Deliverer"]

DEFAULT_POLL_INTERVAL = 0.5
"""Seconds between looks at the log (and at a replay made elsewhere) when idle."""

logger = logging.getLogger("playerlog.delivery")

_T = TypeVar("_T")
_replace = msgspec.structs.replace


class _Moved(Exception):  # noqa: N818  (control flow, never escapes this module)
    """The checkpoint moved under us (a replay): drop the batch, start again from it."""


class Deliverer:
    def __init__(
        self,
        log: EventLog,
        store: DestinationStore,
        destination: Destination,
        sink: Sink,
        *,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> None:
        self.log = log
        self.store = store
        self.destination = destination
        self.sink = sink
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not secrets)
        self.poll_interval = poll_interval

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set; closes the sink at the end."""
        try:
            while not stop.is_set():
                generation = self.log.changes.generation()
                if not await self.step(stop):
                    await _first(stop, self.log.changes.wait(generation, self.poll_interval))
        finally:
            await self.sink.close()

    async def step(self, stop: asyncio.Event) -> bool:
        """Deliver the next batch after the checkpoint (retrying it as long as it takes);
        False when there was nothing after the checkpoint."""
        d = self.destination
        state = await asyncio.to_thread(self.store.state, d)
        page = await asyncio.to_thread(
            self.log.read,
            state.checkpoint,
            d.batch_size,
            tenant=d.tenant,
            environment=d.environment,
            types=d.types or None,
        )
        if not page:
            return False
        events = [e for e in page if d.wants_source(e.source)]
        with contextlib.suppress(_Moved):
            await self._deliver(state, events, page[-1].position, stop)
        return True

    async def _deliver(
        self,
        state: DeliveryState,
        events: Sequence[RecordedEvent],
        end: int,
        stop: asyncio.Event,
    ) -> None:
        initial, cap, dead_letter_after = self.destination.retry.seconds()
        pending = list(events)
        one_by_one = False
        while pending:
            batch = pending[:1] if one_by_one else pending
            outcome = await _first(stop, self.sink.send(batch))
            if outcome is None:
                return  # stopping: the batch is sent again by whoever runs next
            if outcome.delivered:
                done, pending = pending[: outcome.delivered], pending[outcome.delivered :]
                state = await self._save(
                    state, self._delivered(state, done[-1].position, len(done))
                )
            if outcome.error is None:
                continue
            now = self._clock()
            attempts = state.attempts + 1
            first_failure = state.first_failure if state.first_failure is not None else now
            if outcome.permanent:
                if len(batch) - outcome.delivered > 1:
                    one_by_one = True  # find which events are refused on their own
                    continue
                state = await self._dead_letter(
                    state, pending[:1], outcome.error, attempts, first_failure
                )
                pending = pending[1:]
                continue
            if now - first_failure >= dead_letter_after:
                reason = (
                    f"{outcome.error} (still failing {now - first_failure:.0f}s after the first "
                    f"failure, {attempts} attempts)"
                )
                state = await self._dead_letter(state, pending, reason, attempts, first_failure)
                pending = []
                continue
            state = await self._save(
                state,
                _replace(
                    state,
                    attempts=attempts,
                    first_failure=first_failure,
                    last_error=outcome.error,
                    last_error_at=now,
                ),
            )
            logger.warning(
                "delivery %s: attempt %d failed: %s", self.destination.name, attempts, outcome.error
            )
            delay = backoff_delay(attempts, initial, cap, self._rng, outcome.retry_after)
            await _first(stop, asyncio.sleep(delay))
            if stop.is_set():
                return
        if state.checkpoint < end:
            await self._save(state, self._delivered(state, end, 0))

    def _delivered(self, state: DeliveryState, position: int, count: int) -> DeliveryState:
        return _replace(
            state,
            checkpoint=position,
            attempts=0,
            first_failure=None,
            delivered=state.delivered + count,
            last_delivered_at=self._clock() if count else state.last_delivered_at,
        )

    async def _dead_letter(
        self,
        state: DeliveryState,
        events: Sequence[RecordedEvent],
        reason: str,
        attempts: int,
        first_failure: float,
    ) -> DeliveryState:
        now = self._clock()
        letters = [
            DeadLetter(
                position=e.position,
                event_id=e.event_id,
                type=e.type,
                subject=e.subject,
                reason=reason,
                first_failure=first_failure,
                attempts=attempts,
                dead_lettered_at=now,
            )
            for e in events
        ]
        # Letters first: a crash before the checkpoint write retries the events (and
        # rewrites the same letters), never loses them.
        await asyncio.to_thread(self.store.add_dead_letters, self.destination, letters)
        logger.error(
            "delivery %s: %d event(s) dead-lettered (positions %d-%d): %s",
            self.destination.name,
            len(events),
            events[0].position,
            events[-1].position,
            reason,
        )
        return await self._save(
            state,
            _replace(
                state,
                checkpoint=events[-1].position,
                attempts=0,
                first_failure=None,
                last_error=reason,
                last_error_at=now,
                dead_letters=state.dead_letters + len(events),
            ),
        )

    async def _save(self, expected: DeliveryState, new: DeliveryState) -> DeliveryState:
        if not await asyncio.to_thread(self.store.save_state, self.destination, expected, new):
            logger.info(
                "delivery %s: checkpoint moved (replay); starting again from it",
                self.destination.name,
            )
            raise _Moved
        return new


async def _first(stop: asyncio.Event, work: Awaitable[_T]) -> _T | None:
    """`work`'s result, or None if `stop` is set first (then `work` is cancelled)."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stopping
    if task.cancelled():
        return None
    if not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    return task.result()
