"""NATS JetStream delivery against real servers: the shared one on 127.0.0.1:4222,
and for an outage a `nats-server` of the test's own, stopped and restarted while
delivery goes on."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from delivery.config import Destination
from delivery.nats_sink import NatsSink, subject_for, subject_token
from delivery.operations import replay
from delivery.sink import Outcome
from delivery.store import DestinationStore
from eventstore import Envelope, EventLog, RecordedEvent
from tests.delivery.helpers import (
    T0,
    add_events,
    deliver_until,
    first_receipts,
    nats_destination,
)


def test_subject_tokens_lose_what_nats_forbids() -> None:
    assert subject_token("promo.claimed *now>") == "promo_claimed__now_"
    assert subject_token("") == "_"
    assert subject_for("playerlog.live", "casino-a", "bet_placed") == (
        "playerlog.live.casino-a.bet_placed"
    )


async def _messages(url: str, stream: str) -> list[Any]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        info = await js.stream_info(stream)
        return [
            await js.get_msg(stream, seq)
            for seq in range(info.state.first_seq, info.state.last_seq + 1)
        ]
    finally:
        await client.close()


async def _stored(url: str, stream: str) -> int:
    client = await nats.connect(url)
    try:
        try:
            return (await client.jetstream().stream_info(stream)).state.messages
        except NotFoundError:
            return 0
    finally:
        await client.close()


def _positions_per_player(messages: list[Any]) -> dict[str, list[int]]:
    """Each player's positions in the order the stream first stored them."""
    stored: dict[str, list[int]] = {}
    for m in messages:
        stored.setdefault(json.loads(m.data)["subject"], []).append(
            int(m.headers["Playerlog-Position"])
        )
    return {player: first_receipts(found) for player, found in stored.items()}


def _assert_in_order_per_player(messages: list[Any]) -> None:
    for player, positions in _positions_per_player(messages).items():
        assert positions == sorted(positions), f"{player}'s events out of order: {positions}"


@pytest.fixture
async def stream(nats_url: str) -> AsyncIterator[str]:
    """A stream name no other test uses; the stream is deleted after the test."""
    name = f"TEST_{uuid.uuid4().hex[:12].upper()}"
    yield name
    client = await nats.connect(nats_url)
    try:
        with contextlib.suppress(NotFoundError):
            await client.jetstream().delete_stream(name)
    finally:
        await client.close()


async def test_each_event_is_a_message_with_its_id_header_on_its_tenant_and_type_subject(
    log: EventLog, nats_url: str, stream: str
) -> None:
    ids = add_events(log, 30, type_=lambda n: ("bet_placed", "promo.claimed")[n % 2])
    destination = nats_destination(nats_url, stream)
    counted: list[int] = []

    async def count() -> None:
        counted.append(await _stored(nats_url, stream))

    await deliver_until(log, destination, lambda: bool(counted) and counted[-1] >= 30, during=count)

    messages = await _messages(nats_url, stream)
    assert sorted(m.headers["Nats-Msg-Id"] for m in messages) == sorted(ids)
    assert sorted(int(m.headers["Playerlog-Position"]) for m in messages) == list(range(1, 31))
    _assert_in_order_per_player(messages)
    prefix = stream.lower()
    assert {m.subject for m in messages} == {
        f"{prefix}.casino-a.bet_placed",
        f"{prefix}.casino-a.promo_claimed",
    }
    body = json.loads(messages[0].data)
    assert body["event_id"] == ids[0]
    assert body["position"] == 1
    assert b'"payload":{"bet_amount": 12.50' in messages[0].data


async def test_a_replay_within_the_duplicate_window_stores_nothing_twice(
    log: EventLog, nats_url: str, stream: str
) -> None:
    add_events(log, 15)
    destination = nats_destination(nats_url, stream)
    store = DestinationStore(log)
    await deliver_until(
        log, destination, lambda: store.state(destination).checkpoint == 15, store=store
    )

    replay(store, destination, from_position=1)
    await deliver_until(
        log, destination, lambda: store.state(destination).checkpoint == 15, store=store
    )

    assert store.state(destination).delivered == 30, "every event was published twice"
    assert await _stored(nats_url, stream) == 15, "JetStream dropped the duplicates"


async def test_a_subject_no_stream_captures_is_retried_not_dropped(
    log: EventLog, nats_url: str, stream: str
) -> None:
    add_events(log, 2)
    destination = nats_destination(
        nats_url,
        stream,
        nats={
            "servers": nats_url,
            "subject_prefix": f"nostream{uuid.uuid4().hex[:8]}",
            "ack_timeout": 0.5,
        },
    )
    store = DestinationStore(log)

    await deliver_until(
        log, destination, lambda: store.state(destination).attempts >= 2, store=store
    )

    state = store.state(destination)
    assert state.checkpoint == 0
    assert state.last_error is not None
    assert "no JetStream stream" in state.last_error
    assert store.dead_letters(destination) == []


# -- an outage: a server of our own, stopped and restarted mid-delivery ---------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnServer:
    def __init__(self, binary: str, store_dir: Path) -> None:
        self.port = _free_port()
        self.args = [binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(store_dir)]
        self.url = f"nats://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[OwnServer]:
    binary = shutil.which("nats-server")
    if binary is None:
        pytest.skip(
            "the nats-server binary is not on PATH: the outage test needs a server "
            "of its own to stop and restart (apt-get install nats-server)"
        )
    server = OwnServer(binary, tmp_path / "jetstream")
    server.start()
    yield server
    server.stop()


async def test_a_nats_server_restart_during_delivery_loses_and_reorders_nothing(
    log: EventLog, own_server: OwnServer
) -> None:
    ids = add_events(log, 40, players=5)
    destination = nats_destination(own_server.url, "OUTAGE", batch_size=5)
    store = DestinationStore(log)
    phase = {"name": "first"}

    async def outage() -> None:
        state = store.state(destination)
        if phase["name"] == "first" and state.checkpoint >= 10:
            own_server.stop()
            ids.extend(add_events(log, 20, players=5, prefix="during"))
            phase["name"] = "down"
        elif phase["name"] == "down" and state.attempts >= 2:
            own_server.start()
            phase["name"] = "back"

    await deliver_until(
        log,
        destination,
        lambda: phase["name"] == "back" and store.state(destination).checkpoint == 60,
        store=store,
        during=outage,
        timeout=30,
    )

    messages = await _messages(own_server.url, "OUTAGE")
    positions = [int(m.headers["Playerlog-Position"]) for m in messages]
    assert {m.headers["Nats-Msg-Id"] for m in messages} == set(ids), "none lost"
    _assert_in_order_per_player(messages)
    assert len(positions) == 60, "a publish retried after the outage was deduplicated"
    assert store.dead_letters(destination) == []


async def test_an_unreachable_server_is_a_failure_to_retry(log: EventLog) -> None:
    add_events(log, 1)
    destination = nats_destination(f"nats://127.0.0.1:{_free_port()}", "NOWHERE")
    sink = NatsSink(destination, reconnect_wait=0.01)
    try:
        outcome = await asyncio.wait_for(sink.send(log.read(0, 10)), 20)
    finally:
        await sink.close()

    assert outcome.delivered == 0
    assert not outcome.permanent
    assert outcome.error is not None
    assert outcome.error.startswith("cannot connect to NATS")


# -- order per player, concurrency across players ----------------------------------------------


class CountingSink(NatsSink):
    """Counts the publishes awaiting their acknowledgement at once."""

    def __init__(self, destination: Destination) -> None:
        super().__init__(destination)
        self.in_flight = 0
        self.most_in_flight = 0
        self.players_in_flight: set[str] = set()

    async def _publish(self, js: JetStreamContext, event: RecordedEvent) -> Outcome | None:
        assert event.subject not in self.players_in_flight, "one message per player in flight"
        self.players_in_flight.add(event.subject)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            return await super()._publish(js, event)
        finally:
            self.in_flight -= 1
            self.players_in_flight.discard(event.subject)


async def test_many_players_are_published_concurrently_each_in_its_own_order(
    log: EventLog, nats_url: str, stream: str
) -> None:
    ids = add_events(log, 600, players=37)
    destination = nats_destination(
        nats_url,
        stream,
        batch_size=200,
        nats={
            "servers": nats_url,
            "subject_prefix": stream.lower(),
            "stream": stream,
            "create_stream": True,
            "max_in_flight": 8,
        },
    )
    store = DestinationStore(log)
    sink = CountingSink(destination)

    await deliver_until(
        log,
        destination,
        lambda: store.state(destination).checkpoint == 600,
        store=store,
        sink=sink,
    )

    messages = await _messages(nats_url, stream)
    assert sorted(m.headers["Nats-Msg-Id"] for m in messages) == sorted(ids), "each once"
    per_player = _positions_per_player(messages)
    assert len(per_player) == 37
    _assert_in_order_per_player(messages)
    assert sink.most_in_flight == 8, "players' chains ran concurrently, 8 at most"


class FlakySink(NatsSink):
    """Fails the publish of the events in `fail` (by position) the first time each is sent."""

    def __init__(self, destination: Destination, fail: set[int]) -> None:
        super().__init__(destination)
        self.fail = set(fail)
        self.sent: list[int] = []

    async def _publish(self, js: JetStreamContext, event: RecordedEvent) -> Outcome | None:
        self.sent.append(event.position)
        if event.position in self.fail:
            self.fail.discard(event.position)
            await asyncio.sleep(0.05)  # the others go on meanwhile
            return Outcome(delivered=0, error="publish not acknowledged: injected")
        return await super()._publish(js, event)


async def test_a_failed_publish_stops_its_players_chain_and_the_batch_is_retried_in_order(
    log: EventLog, nats_url: str, stream: str
) -> None:
    add_events(log, 40, players=4)  # ply_k holds positions k+1, k+5, k+9, ...
    destination = nats_destination(nats_url, stream, batch_size=40)
    sink = FlakySink(destination, fail={10})  # ply_1's third event
    try:
        outcome = await sink.send(log.read(0, 40))
        after_first = await _messages(nats_url, stream)
    finally:
        await sink.close()

    assert outcome.delivered == 9, "the longest acknowledged prefix: positions 1-9"
    assert outcome.error == "publish not acknowledged: injected"
    assert not outcome.permanent
    stored = {int(m.headers["Playerlog-Position"]) for m in after_first}
    assert stored == set(range(1, 41)) - set(range(10, 41, 4)), (
        "ply_1's chain stopped at its failure; the other players' chains finished"
    )

    # The deliverer retries from position 10: everything stored again is deduplicated.
    sink = FlakySink(destination, fail={10, 22})
    store = DestinationStore(log)
    await deliver_until(
        log, destination, lambda: store.state(destination).checkpoint == 40, store=store, sink=sink
    )

    messages = await _messages(nats_url, stream)
    assert sorted(int(m.headers["Playerlog-Position"]) for m in messages) == list(range(1, 41))
    _assert_in_order_per_player(messages)
    assert store.state(destination).delivered >= 40
    assert store.dead_letters(destination) == []


async def test_with_one_in_flight_the_stream_holds_the_log_order(
    log: EventLog, nats_url: str, stream: str
) -> None:
    ids = add_events(log, 50, players=7)
    destination = nats_destination(
        nats_url,
        stream,
        nats={
            "servers": nats_url,
            "subject_prefix": stream.lower(),
            "stream": stream,
            "create_stream": True,
            "max_in_flight": 1,
        },
    )
    store = DestinationStore(log)

    await deliver_until(
        log, destination, lambda: store.state(destination).checkpoint == 50, store=store
    )

    messages = await _messages(nats_url, stream)
    assert [m.headers["Nats-Msg-Id"] for m in messages] == ids


async def test_a_message_nats_refuses_is_dead_lettered_alone_and_the_rest_stays_in_order(
    log: EventLog, nats_url: str, stream: str
) -> None:
    ids = add_events(log, 12, players=3)
    big = Envelope(
        tenant="casino-a",
        environment="live",
        source="track",
        type="bet_placed",
        event_id="too-big",
        subject="ply_1",
        occurred_at=T0,
        received_at=T0,
        client_id="tests",
        payload=b'{"pad": "' + b"x" * 2_000_000 + b'"}',  # past the server's max_payload
    )
    assert log.append_sync([big])[0].status == "stored"
    ids += add_events(log, 12, players=3, prefix="after")
    destination = nats_destination(nats_url, stream, batch_size=25)
    store = DestinationStore(log)

    await deliver_until(
        log, destination, lambda: store.state(destination).checkpoint == 25, store=store
    )

    assert [letter.event_id for letter in store.dead_letters(destination)] == ["too-big"]
    messages = await _messages(nats_url, stream)
    assert sorted(m.headers["Nats-Msg-Id"] for m in messages) == sorted(ids)
    _assert_in_order_per_player(messages)
