"""The DeliveryRunner: one deliverer per enabled destination, following changes made
in any process, and safe when two run at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from delivery.config import DestinationError
from delivery.runner import DeliveryRunner
from delivery.store import DestinationStore
from eventstore import EventLog
from tests.delivery.helpers import SECRET, add_events, first_receipts, webhook_destination
from tests.delivery.receiver import Receiver


async def _until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def _runner(log: EventLog, **options: object) -> DeliveryRunner:
    return DeliveryRunner(log, config_poll=0.05, poll_interval=0.02, **options)  # type: ignore[arg-type]


async def test_destinations_created_changed_and_deleted_while_running_are_followed(
    any_log: EventLog,
) -> None:
    ids = add_events(any_log, 12)
    store = DestinationStore(any_log)
    runner = _runner(any_log)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        with Receiver(SECRET) as first, Receiver(SECRET) as second:
            store.put(webhook_destination(first.url))
            await _until(lambda: first.event_ids() >= set(ids))

            store.put(webhook_destination(second.url))  # moved: same name, new URL
            await _until(
                lambda: [d.webhook.url for d in runner.delivering if d.webhook] == [second.url]
            )
            more = add_events(any_log, 5, prefix="more")
            await _until(lambda: second.event_ids() >= set(more))
            assert not first.event_ids() & set(more)

            store.delete(webhook_destination(second.url))
            await _until(lambda: runner.delivering == [])
    finally:
        stop.set()
        await task


async def test_a_disabled_destination_is_not_delivered(log: EventLog) -> None:
    add_events(log, 3)
    with Receiver(SECRET) as receiver:
        DestinationStore(log).put(webhook_destination(receiver.url, enabled=False))
        runner = _runner(log)

        await runner.reconcile()

        assert runner.delivering == []


async def test_two_runners_at_once_deliver_everything_in_order_none_skipped(
    log: EventLog,
) -> None:
    with Receiver(SECRET) as receiver:
        DestinationStore(log).put(webhook_destination(receiver.url, batch_size=3))
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_runner(log).run(stop)) for _ in range(2)]
        ids: list[str] = []
        try:
            for round_ in range(10):
                ids += add_events(log, 7, prefix=f"r{round_}")
                await asyncio.sleep(0.01)
            await _until(lambda: receiver.event_ids() >= set(ids))
        finally:
            stop.set()
            await asyncio.gather(*tasks)

        order = first_receipts(receiver.positions())
        assert order == list(range(1, 71)), "duplicates allowed, never a skip or a reorder"


async def test_the_destinations_file_is_applied_at_start(log: EventLog, tmp_path: Path) -> None:
    ids = add_events(log, 4)
    with Receiver(SECRET) as receiver:
        path = tmp_path / "destinations.json"
        spec = {
            "destinations": [
                {
                    "name": "crm",
                    "tenant": "casino-a",
                    "environment": "live",
                    "kind": "webhook",
                    "webhook": {"url": receiver.url, "secret": SECRET},
                }
            ]
        }
        path.write_text(json.dumps(spec))
        stop = asyncio.Event()
        task = asyncio.create_task(_runner(log, destinations_file=path).run(stop))
        try:
            await _until(lambda: receiver.event_ids() >= set(ids))
        finally:
            stop.set()
            await task


async def test_an_invalid_destinations_file_stops_the_runner_with_the_reason(
    log: EventLog, tmp_path: Path
) -> None:
    path = tmp_path / "destinations.json"
    path.write_text(json.dumps({"destinations": [{"name": "crm"}]}))

    with pytest.raises(
        DestinationError, match=r"destinations\.json: Object missing required field"
    ):
        await _runner(log, destinations_file=path).run(asyncio.Event())
