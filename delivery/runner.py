"""`DeliveryRunner`: runs one deliverer per enabled destination in this process.

It belongs in the one process that drives the projections (the holder of the
runner lock, see projections/worker.py), so each destination has one deliverer
across all processes. Two runners by mistake are still safe: the checkpoint is
compare-and-set (delivery/store.py), so the worst is an event delivered twice,
never one skipped.

The destinations are re-read every `config_poll` seconds: one created, changed,
disabled or deleted through the admin API or the command line (in any process)
is picked up within that time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from delivery.config import Destination, load_destinations_file
from delivery.deliverer import DEFAULT_POLL_INTERVAL, Deliverer
from delivery.nats_sink import NatsSink
from delivery.sink import Sink
from delivery.store import DestinationStore
from delivery.webhook import WebhookSink
from eventstore import EventLog

__all__ = ["DEFAULT_CONFIG_POLL", "DeliveryRunner", "apply_destinations_file", "make_sink"]

DEFAULT_CONFIG_POLL = 5.0
"""Seconds between re-reads of the destinations' settings."""

logger = logging.getLogger("playerlog.delivery")


def make_sink(destination: Destination) -> Sink:
    if destination.kind == "webhook":
        return WebhookSink(destination)
    return NatsSink(destination)


def apply_destinations_file(log: EventLog, path: str | Path) -> list[Destination]:
    """Validate every destination of the file, then store them all (create or replace).

    Destinations missing from the file are left alone (delete them with the CLI or
    the admin API). Raises DestinationError, storing nothing, when one is invalid.
    """
    destinations = load_destinations_file(path)
    store = DestinationStore(log)
    for destination in destinations:
        store.put(destination)
    return destinations


class _Running:
    def __init__(
        self,
        destination: Destination,
        settings: bytes,
        stop: asyncio.Event,
        task: asyncio.Task[None],
    ) -> None:
        self.destination = destination
        self.settings = settings
        self.stop = stop
        self.task = task


class DeliveryRunner:
    def __init__(
        self,
        log: EventLog,
        *,
        destinations_file: str | Path | None = None,
        config_poll: float = DEFAULT_CONFIG_POLL,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        make_sink: Callable[[Destination], Sink] = make_sink,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if config_poll <= 0:
            raise ValueError("config_poll must be positive (seconds between settings re-reads)")
        self.log = log
        self.store = DestinationStore(log, clock)
        self.destinations_file = destinations_file
        self.config_poll = config_poll
        self.poll_interval = poll_interval
        self._make_sink = make_sink
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311  (jitter, not secrets)
        self._running: dict[str, _Running] = {}

    @property
    def delivering(self) -> list[Destination]:
        """The destinations (with the settings in use) this runner delivers now."""
        return [self._running[key].destination for key in sorted(self._running)]

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver every enabled destination until `stop` is set; then stop each
        deliverer (a batch under way is sent again by the next runner)."""
        if self.destinations_file is not None:
            applied = await asyncio.to_thread(
                apply_destinations_file, self.log, self.destinations_file
            )
            logger.info("delivery: %d destination(s) from %s", len(applied), self.destinations_file)
        try:
            while not stop.is_set():
                try:
                    await self.reconcile()
                except Exception:
                    # The database may be away for a moment; the deliverers already
                    # running go on, and the next re-read tries again.
                    logger.exception("delivery: cannot read the destinations; trying again")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config_poll)
        finally:
            await self._stop_all()

    async def reconcile(self) -> None:
        """Start, restart (settings changed, or it crashed) and stop deliverers so that
        exactly the enabled destinations run."""
        wanted = {d.key: d for d in await asyncio.to_thread(self.store.destinations) if d.enabled}
        for key in list(self._running):
            running = self._running[key]
            destination = wanted.get(key)
            changed = destination is None or msgspec.json.encode(destination) != running.settings
            if changed or running.task.done():
                await self._stop_one(key)
        for key, destination in wanted.items():
            if key not in self._running:
                self._start(destination)

    def _start(self, destination: Destination) -> None:
        deliverer = Deliverer(
            self.log,
            self.store,
            destination,
            self._make_sink(destination),
            clock=self._clock,
            rng=self._rng,
            poll_interval=self.poll_interval,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(deliverer.run(stop), name=f"delivery-{destination.name}")
        self._running[destination.key] = _Running(
            destination, msgspec.json.encode(destination), stop, task
        )
        logger.info(
            "delivery %s: delivering to %s (%s/%s)",
            destination.name,
            destination.kind,
            destination.tenant,
            destination.environment,
        )

    async def _stop_one(self, key: str) -> None:
        running = self._running.pop(key)
        running.stop.set()
        try:
            await running.task
        except Exception:
            # A crashed deliverer (a database error, say) is restarted at the next
            # reconcile; its checkpoint says where to resume.
            logger.exception("delivery: deliverer %r failed; restarting it", key)

    async def _stop_all(self) -> None:
        for key in list(self._running):
            await self._stop_one(key)
