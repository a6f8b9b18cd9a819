"""Destinations, checkpoints and dead letters as named records, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

import msgspec
import pytest

from delivery.operations import ReplayError, position_at, replay, status_of
from delivery.store import DeadLetter, DestinationStore, UnknownDestination
from eventstore import EventLog
from tests.delivery.helpers import T0, add_events, webhook_destination

URL = "https://crm.example/hooks"


def test_a_new_destination_starts_at_the_beginning_or_at_the_log_s_end(any_log: EventLog) -> None:
    add_events(any_log, 5)
    store = DestinationStore(any_log)

    assert store.put(webhook_destination(URL, name="history"))
    assert store.put(webhook_destination(URL, name="fresh", start="end"))

    assert store.state(webhook_destination(URL, name="history")).checkpoint == 0
    assert store.state(webhook_destination(URL, name="fresh")).checkpoint == 5


def test_replacing_a_destination_keeps_its_checkpoint(any_log: EventLog) -> None:
    store = DestinationStore(any_log)
    destination = webhook_destination(URL)
    store.put(destination)
    state = store.state(destination)
    assert store.save_state(destination, state, msgspec.structs.replace(state, checkpoint=3))

    assert not store.put(webhook_destination(URL, batch_size=50))

    assert store.state(destination).checkpoint == 3
    assert [d.batch_size for d in store.destinations()] == [50]


def test_the_checkpoint_moves_only_from_where_the_writer_read_it(any_log: EventLog) -> None:
    store = DestinationStore(any_log)
    destination = webhook_destination(URL)
    store.put(destination)
    read = store.state(destination)
    replace = msgspec.structs.replace

    assert store.save_state(destination, read, replace(read, checkpoint=10))
    assert not store.save_state(destination, read, replace(read, checkpoint=20)), "stale"
    assert store.state(destination).checkpoint == 10


def test_a_replay_wins_over_a_deliverer_that_read_before_it(any_log: EventLog) -> None:
    add_events(any_log, 30)
    store = DestinationStore(any_log)
    destination = webhook_destination(URL)
    store.put(destination)
    read = store.state(destination)
    assert store.save_state(destination, read, msgspec.structs.replace(read, checkpoint=30))
    in_flight = store.state(destination)

    replay(store, destination, from_position=5)

    assert not store.save_state(
        destination, in_flight, msgspec.structs.replace(in_flight, checkpoint=30)
    )
    assert store.state(destination).checkpoint == 4


def test_deleting_forgets_settings_state_and_dead_letters(any_log: EventLog) -> None:
    store = DestinationStore(any_log)
    destination = webhook_destination(URL)
    other = webhook_destination(URL, name="crm2")
    store.put(destination)
    store.put(other)
    letter = DeadLetter(
        position=1,
        event_id="e1",
        type="t",
        subject="s",
        reason="HTTP 400",
        first_failure=1.0,
        attempts=1,
        dead_lettered_at=2.0,
    )
    store.add_dead_letters(destination, [letter])
    store.add_dead_letters(other, [letter])

    store.delete(destination)

    assert [d.name for d in store.destinations()] == ["crm2"]
    assert store.get("casino-a", "live", "crm") is None
    assert store.dead_letters(destination) == []
    assert store.dead_letters(other) == [letter]
    assert store.put(destination), "created anew"
    assert store.state(destination).checkpoint == 0


def test_finding_by_name_asks_for_the_tenant_when_two_use_it(any_log: EventLog) -> None:
    store = DestinationStore(any_log)
    store.put(webhook_destination(URL))
    store.put(webhook_destination(URL, tenant="casino-b"))

    with pytest.raises(
        UnknownDestination, match=r"several tenants \(.*\); give --tenant and --env"
    ):
        store.find("crm")
    with pytest.raises(UnknownDestination, match="no destination 'nope'"):
        store.find("nope")
    assert store.find("crm", tenant="casino-b").tenant == "casino-b"


def test_status_reports_checkpoint_head_lag_and_failures(any_log: EventLog) -> None:
    add_events(any_log, 8)
    store = DestinationStore(any_log)
    destination = webhook_destination(URL)
    store.put(destination)
    state = store.state(destination)
    store.save_state(
        destination,
        state,
        msgspec.structs.replace(
            state, checkpoint=3, attempts=2, first_failure=1.0, last_error="HTTP 503"
        ),
    )

    status = status_of(store, destination)

    assert (status.checkpoint, status.head, status.lag) == (3, 8, 5)
    assert (status.attempts, status.last_error) == (2, "HTTP 503")
    assert status.first_failure is not None
    assert status.first_failure.year == 1970


def test_replay_from_a_time_starts_a_margin_before_it(log: EventLog) -> None:
    add_events(log, 600)  # received one second apart from T0
    store = DestinationStore(log)
    destination = webhook_destination(URL)
    store.put(destination)

    checkpoint = replay(store, destination, from_time=T0.replace(minute=5))

    assert checkpoint == 240, "events from 12:04:00 on (one minute of margin) go again"
    assert log.read(after=checkpoint, limit=1)[0].received_at == T0.replace(minute=4)
    assert position_at(log, T0.replace(hour=13)) == 601, "after the last: nothing to replay"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"from_position": 0}, "from_position: must be 1 to 4"),
        ({"from_position": 9}, "from_position: must be 1 to 4"),
        ({}, "give exactly one of them"),
        ({"from_time": T0.replace(tzinfo=None)}, "from_time: give a time zone"),
    ],
)
def test_a_replay_from_nowhere_is_refused(
    log: EventLog, kwargs: dict[str, object], message: str
) -> None:
    add_events(log, 3)
    store = DestinationStore(log)
    destination = webhook_destination(URL)
    store.put(destination)

    with pytest.raises(ReplayError, match=message):
        replay(store, destination, **kwargs)  # type: ignore[arg-type]
