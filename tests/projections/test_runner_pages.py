"""The runner's pages: shared by builds at one checkpoint, bigger while behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eventstore import Envelope, EventLog, RecordedEvent
from projections import ProjectionRunner, get_player
from projections.ledger import get_ledger
from projections.standard import standard_projections
from tests.projections.helpers import BOTH_DATABASES, ENV, TENANT, at, money_mix_events, track


class CountingLog:
    """The log as the runner reads it, recording the `limit` of every read."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.limits: list[int] = []

    def read(self, after: int = 0, limit: int = 1000, **kw: Any) -> list[RecordedEvent]:
        self.limits.append(limit)
        return self.log.read(after, limit, **kw)

    def head(self) -> int:
        return self.log.head()


def counting(runner: ProjectionRunner) -> CountingLog:
    reads = CountingLog(runner.log)
    runner.log = reads  # type: ignore[assignment]
    return reads


def test_builds_at_the_same_checkpoint_read_each_page_once(log: EventLog, views: Path) -> None:
    log.append_sync(money_mix_events(400, seed=3)[:450])
    head = log.head()
    with ProjectionRunner(log, standard_projections(), views=views, page_size=100) as runner:
        reads = counting(runner)
        assert runner.catch_up() == 3 * head
        assert len(reads.limits) == head // 100 + 2  # every page once, then one empty read
        assert {(s.position, s.state) for s in runner.status()} == {(head, "live")}


@BOTH_DATABASES
def test_a_projection_failing_in_a_shared_page_stops_alone_and_the_others_go_on(
    log: EventLog, views: Path
) -> None:
    good = [track(f"ply_{i}", "bet_placed", when=at(i), event_id=f"t-{i}") for i in range(5)]
    # players cannot apply these traits; the ledger reads only the anonymous id
    bad = Envelope(
        tenant=TENANT,
        environment=ENV,
        source="identify",
        type="identify",
        event_id="identify-bad",
        subject="ply_9",
        occurred_at=at(9),
        received_at=at(9),
        client_id=None,
        payload=b'{"user_id": "ply_9", "timestamp": "2026-05-18T14:38:09Z", "traits": [1, 2]}',
    )
    after = track("ply_after", "bet_placed", when=at(20), event_id="t-after")
    log.append_sync([*good, bad, after])
    with ProjectionRunner(log, standard_projections(), views=views, page_size=100) as runner:
        assert runner.catch_up() == 5 + 7 + 7
        states = {s.name: s for s in runner.status()}
        assert (states["players"].stopped, states["players"].position) == (True, 5)
        assert states["players"].error is not None
        assert states["players"].error.position == 6
        for name in ("games", "ledger"):
            assert (states[name].stopped, states[name].position, states[name].state) == (
                False,
                7,
                "live",
            )
        assert get_player(runner.conn, TENANT, ENV, "ply_after") is None
        entries = get_ledger(runner.conn, TENANT, ENV, "ply_after").items
        assert [(e.position, e.kind) for e in entries] == [(7, "bet")]


def test_a_build_behind_reads_catch_up_pages_and_one_at_the_head_live_pages(
    log: EventLog, views: Path
) -> None:
    log.append_sync(money_mix_events(250, seed=4)[:250])
    with ProjectionRunner(
        log, standard_projections(), views=views, page_size=10, catch_up_page_size=100
    ) as runner:
        reads = counting(runner)
        runner.catch_up()
        # a live page first; it comes back full, so the build is behind: catch-up
        # pages until one comes back short (at the head), then live pages again
        assert reads.limits == [10, 100, 100, 100, 10]
        log.append_sync(money_mix_events(5, seed=5, prefix="late")[:5])
        reads.limits.clear()
        assert runner.catch_up() == 3 * 5
        assert reads.limits == [10, 10]


def test_page_sizes_default_to_small_live_pages_and_big_catch_up_pages(
    log: EventLog, views: Path
) -> None:
    with ProjectionRunner(log, standard_projections(), views=views) as runner:
        assert (runner.page_size, runner.catch_up_page_size) == (1000, 10_000)
    # a page size chosen alone is used everywhere (tests split pages on purpose)
    with ProjectionRunner(log, standard_projections(), views=views, page_size=37) as runner:
        assert (runner.page_size, runner.catch_up_page_size) == (37, 37)
