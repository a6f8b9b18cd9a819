"""Webhook delivery against a real HTTP receiver that fails, times out, refuses and
recovers: every event arrives at least once, in log order, none skipped."""

from __future__ import annotations

import json

from delivery.operations import replay
from delivery.store import DestinationStore
from eventstore import EventLog
from tests.delivery.helpers import (
    SECRET,
    add_events,
    deliver_until,
    first_receipts,
    webhook_destination,
)
from tests.delivery.receiver import Receiver


async def test_failures_timeouts_then_recovery_deliver_every_event_in_order(log: EventLog) -> None:
    ids = add_events(log, 45, players=4)
    with Receiver(SECRET) as receiver:
        receiver.script = ["500", "500", "timeout", "503", "429", "408", "timeout", "500"]
        destination = webhook_destination(receiver.url)
        store = DestinationStore(log)

        # Until the checkpoint moves, not just until the receiver has every event:
        # it records a batch before its 200 reaches the sender.
        await deliver_until(
            log, destination, lambda: store.state(destination).checkpoint == 45, store=store
        )

        assert receiver.event_ids() >= set(ids)
        assert receiver.bad_signatures == 0
        order = first_receipts(receiver.positions())
        assert order == sorted(order) == list(range(1, 46)), "log order, none skipped"
        assert receiver.requests > 5, "the failures were retried"
        state = store.state(destination)
        assert state.checkpoint == 45
        assert state.attempts == 0
        assert state.first_failure is None
        assert state.last_error is not None, "the last failure stays visible to operators"
        assert store.dead_letters(destination) == []


async def test_events_go_in_signed_batches_with_the_event_id_and_exact_numbers(
    log: EventLog,
) -> None:
    ids = add_events(log, 25)
    with Receiver(SECRET) as receiver:
        await deliver_until(
            log, webhook_destination(receiver.url), lambda: receiver.event_ids() >= set(ids)
        )

        assert [len(json.loads(b)["events"]) for b in receiver.bodies] == [10, 10, 5]
        first = receiver.delivered[0]
        assert set(first) == {
            "position",
            "event_id",
            "tenant",
            "environment",
            "source",
            "type",
            "subject",
            "occurred_at",
            "received_at",
            "payload",
        }
        assert first["event_id"] == ids[0]
        assert first["occurred_at"] == "2025-01-31T12:00:00Z"
        assert (
            b'"payload":{"bet_amount": 12.50, "n": 0, "big": 12345678901234567890}'
            in (receiver.bodies[0])
        ), "the payload is embedded exactly as received"


async def test_a_refused_event_is_dead_lettered_alone_and_delivery_moves_on(
    log: EventLog,
) -> None:
    ids = add_events(log, 12)
    poison = ids[4]

    def refuse_poison(events: list[dict[str, object]]) -> int:
        return 400 if any(e["event_id"] == poison for e in events) else 200

    with Receiver(SECRET) as receiver:
        receiver.always = refuse_poison
        destination = webhook_destination(receiver.url)
        store = DestinationStore(log)

        await deliver_until(
            log, destination, lambda: store.state(destination).checkpoint == 12, store=store
        )

        assert receiver.event_ids() == set(ids) - {poison}
        letters = store.dead_letters(destination)
        assert [(d.position, d.event_id, d.attempts) for d in letters] == [(5, poison, 1)]
        assert letters[0].reason.startswith("HTTP 400")
        assert store.state(destination).dead_letters == 1
        assert first_receipts(receiver.positions()) == sorted(receiver.positions())


async def test_a_batch_failing_past_dead_letter_after_is_dead_lettered_whole(
    log: EventLog,
) -> None:
    ids = add_events(log, 3)
    with Receiver(SECRET) as receiver:
        receiver.always = "503"
        destination = webhook_destination(
            receiver.url,
            retry={"initial_backoff": 0.01, "max_backoff": 0.02, "dead_letter_after": 0.3},
        )
        store = DestinationStore(log)

        await deliver_until(
            log, destination, lambda: store.state(destination).checkpoint == 3, store=store
        )

        letters = store.dead_letters(destination)
        assert [d.event_id for d in letters] == ids
        assert all(d.attempts > 1 and "HTTP 503" in d.reason for d in letters)
        assert receiver.delivered == []


async def test_replay_from_a_position_delivers_those_events_again(log: EventLog) -> None:
    ids = add_events(log, 20)
    with Receiver(SECRET) as receiver:
        destination = webhook_destination(receiver.url)
        store = await deliver_until(log, destination, lambda: receiver.event_ids() >= set(ids))
        before = len(receiver.delivered)

        assert replay(store, destination, from_position=15) == 14
        await deliver_until(
            log, destination, lambda: len(receiver.delivered) >= before + 6, store=store
        )

        assert receiver.positions()[before:] == [15, 16, 17, 18, 19, 20]


async def test_filters_by_source_and_type_deliver_only_matching_events(log: EventLog) -> None:
    add_events(
        log,
        30,
        type_=lambda n: ("bet_placed", "deposit_completed", "login")[n % 3],
        source=lambda n: ("track", "unified")[n % 2],
    )
    add_events(log, 5, tenant="casino-b", prefix="other")
    add_events(log, 5, environment="staging", prefix="staging")
    with Receiver(SECRET) as receiver:
        destination = webhook_destination(
            receiver.url, sources=["track"], types=["bet_placed", "deposit_completed"]
        )
        store = DestinationStore(log)

        await deliver_until(
            log, destination, lambda: store.state(destination).checkpoint >= 29, store=store
        )

        got = receiver.delivered
        assert got, "something matched"
        assert all(e["source"] == "track" for e in got)
        assert all(e["type"] in ("bet_placed", "deposit_completed") for e in got)
        assert all((e["tenant"], e["environment"]) == ("casino-a", "live") for e in got)
        assert len(got) == 10  # n even (track) and n % 3 != 2, of 30


async def test_events_appended_while_delivering_follow_without_a_gap(log: EventLog) -> None:
    with Receiver(SECRET) as receiver:
        destination = webhook_destination(receiver.url)
        added: list[str] = []

        def append_more() -> None:
            if len(added) < 60:
                added.extend(add_events(log, 7, prefix=f"live{len(added)}"))

        await deliver_until(
            log,
            destination,
            lambda: len(added) >= 60 and receiver.event_ids() >= set(added),
            during=append_more,
        )

        assert first_receipts(receiver.positions()) == list(range(1, len(added) + 1))
