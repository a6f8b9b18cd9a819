"""Write-behind: a build that is behind folds its pages in memory and writes them,
with the checkpoint of the last one, only every `flush_events` events (or
seconds, or keys held), at the head, and on flush or close."""

from __future__ import annotations

import gc
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from eventstore import Envelope, EventLog, RecordedEvent, open_log
from projections import PlayersProjection, ProjectionRunner, Tables, get_player, list_players
from projections import players as players_module
from projections.protocol import Buffer
from projections.registry import load_builds
from projections.runner import FLUSH_TIME_RATIO
from projections.standard import standard_projections
from tests.projections.helpers import (
    BOTH_DATABASES,
    ENV,
    TENANT,
    ApplyOnly,
    at,
    dump,
    dump_all,
    fresh_build,
    mixed_events,
    money_mix_events,
    track,
)

NEVER = 10**9  # events or seconds: no flush for that reason within a test


def checkpoint(conn: sqlite3.Connection, name: str = "players") -> int:
    (build,) = [b for b in load_builds(conn, [name]) if b.active]
    return build.position


def prefix_build(
    envelopes: Sequence[Envelope], tmp_path: Path, name: str
) -> dict[str, list[tuple[Any, ...]]]:
    """The players tables a fresh build of just these events holds."""
    prefix = open_log(f"sqlite:///{tmp_path / f'{name}.db'}")
    try:
        prefix.append_sync(list(envelopes))
        return fresh_build(prefix, tmp_path / f"{name}.views.db")
    finally:
        prefix.close()


def bad_identify(position_hint: int) -> Envelope:
    """An identify call whose traits are a list: players cannot apply it."""
    return Envelope(
        tenant=TENANT,
        environment=ENV,
        source="identify",
        type="identify",
        event_id="identify-bad",
        subject="ply_bad",
        occurred_at=at(position_hint),
        received_at=at(position_hint),
        client_id=None,
        payload=b'{"user_id": "ply_bad", "timestamp": "2026-05-18T14:38:09Z", "traits": [1, 2]}',
    )


def test_a_build_behind_writes_only_at_its_flushes_and_each_flush_is_a_whole_prefix(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    envelopes = mixed_events(1000, seed=11)
    log.append_sync(envelopes)
    with ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=100, flush_events=300
    ) as runner:
        seen = []
        for _ in range(4):
            runner.step()
            seen.append(checkpoint(runner.conn))
        # three pages folded, then flushed together with the checkpoint of the third
        assert seen == [0, 0, 300, 300]
        assert dump(runner.conn) == prefix_build(envelopes[:300], tmp_path, "prefix")
        runner.catch_up()
        assert checkpoint(runner.conn) == 1000
        assert dump(runner.conn) == fresh_build(log, tmp_path / "fresh.views.db")


def test_write_behind_builds_the_same_tables_as_applying_every_page(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(money_mix_events(3000, seed=12))
    with ProjectionRunner(
        log, standard_projections(), views=views, page_size=64, flush_events=500
    ) as runner:
        runner.catch_up()
        buffered = dump_all(runner.conn)
    unbuffered = [ApplyOnly(p) for p in standard_projections()]
    with ProjectionRunner(
        log, unbuffered, views=tmp_path / "pages.views.db", page_size=64
    ) as runner:
        runner.catch_up()
        assert buffered == dump_all(runner.conn)
    assert all(buffered.values())


@BOTH_DATABASES
def test_an_event_that_cannot_be_folded_mid_buffer_stops_the_build_at_its_position(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    before = mixed_events(230, seed=13)
    after = mixed_events(70, seed=14, prefix="late")
    log.append_sync([*before, bad_identify(231), *after])
    # pages 1..200 are folded and not flushed when the page 201..250 fails
    with ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=50, flush_events=NEVER
    ) as runner:
        assert runner.catch_up() == 230
        (state,) = runner.status()
        assert (state.stopped, state.position) == (True, 230)
        assert state.error is not None
        assert (state.error.position, state.error.event_id) == (231, "identify-bad")
        assert "traits" in state.error.message
        assert dump(runner.conn) == prefix_build(before, tmp_path, "before")


class _FailingFlush:
    """A players buffer whose flush writes, then fails, once it holds `bad_event_id`."""

    def __init__(self, inner: Buffer, bad_event_id: str) -> None:
        self.inner = inner
        self.bad_event_id = bad_event_id
        self.holds_bad = False

    @property
    def size(self) -> int:
        return self.inner.size

    def fold(self, page: Sequence[RecordedEvent]) -> None:
        self.holds_bad |= any(e.event_id == self.bad_event_id for e in page)
        self.inner.fold(page)

    def flush(self, conn: sqlite3.Connection) -> None:
        self.inner.flush(conn)
        if self.holds_bad:
            raise RuntimeError("the rules have a bug")


class FailingPlayers(PlayersProjection):
    """Fails on one event id: applying it, or flushing a buffer that holds it."""

    def __init__(self, bad_event_id: str) -> None:
        super().__init__()
        self.bad_event_id = bad_event_id

    def buffer(self, tables: Tables) -> _FailingFlush:  # type: ignore[override]
        return _FailingFlush(super().buffer(tables), self.bad_event_id)

    def apply(
        self, page: Sequence[RecordedEvent], conn: sqlite3.Connection, tables: Tables
    ) -> None:
        if any(e.event_id == self.bad_event_id for e in page):
            raise RuntimeError("the rules have a bug")
        super().apply(page, conn, tables)


def test_a_flush_that_fails_is_rolled_back_and_the_culprit_isolated(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    events = mixed_events(400, seed=15)
    log.append_sync(events)
    bad_id = events[260].event_id
    with ProjectionRunner(
        log, [FailingPlayers(bad_id)], views=views, page_size=50, flush_events=150
    ) as runner:
        runner.catch_up()
        (state,) = runner.status()
        assert (state.stopped, state.position) == (True, 260)
        assert state.error is not None
        assert (state.error.position, state.error.event_id) == (261, bad_id)
        assert "the rules have a bug" in state.error.message
        # the flush's half-written tables were rolled back with it
        assert dump(runner.conn) == prefix_build(events[:260], tmp_path, "before")


class _Sizes:
    """Records a buffer's size after every fold."""

    def __init__(self, inner: Buffer, log: list[int]) -> None:
        self.inner = inner
        self.log = log

    @property
    def size(self) -> int:
        return self.inner.size

    def fold(self, page: Sequence[RecordedEvent]) -> None:
        self.inner.fold(page)
        self.log.append(self.inner.size)

    def flush(self, conn: sqlite3.Connection) -> None:
        self.inner.flush(conn)


class SizedPlayers(PlayersProjection):
    def __init__(self) -> None:
        super().__init__()
        self.buffers: list[list[int]] = []

    def buffer(self, tables: Tables) -> _Sizes:  # type: ignore[override]
        self.buffers.append([])
        return _Sizes(super().buffer(tables), self.buffers[-1])


def test_a_buffer_is_flushed_as_soon_as_it_holds_more_keys_than_the_bound(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(mixed_events(800, seed=16))
    projection = SizedPlayers()
    with ProjectionRunner(
        log,
        [projection],
        views=views,
        page_size=20,
        flush_events=NEVER,
        flush_seconds=NEVER,
        max_buffered_keys=150,
    ) as runner:
        checkpoints = set()
        while runner.step():
            checkpoints.add(checkpoint(runner.conn))
        assert len(checkpoints - {0, 800}) >= 3  # flushed along the way, not at the end only
        assert dump(runner.conn) == fresh_build(log, tmp_path / "fresh.views.db")
    for sizes in projection.buffers:
        # no page was folded into a buffer that had reached the bound
        assert all(size < 150 for size in sizes[:-1])
    assert sum(len(sizes) for sizes in projection.buffers) == 40


def test_a_build_is_flushed_after_flush_seconds(log: EventLog, views: Path) -> None:
    log.append_sync(mixed_events(300, seed=17))
    with ProjectionRunner(
        log,
        [PlayersProjection()],
        views=views,
        page_size=100,
        flush_events=NEVER,
        flush_seconds=0.0,
    ) as runner:
        runner.step()
        assert checkpoint(runner.conn) == 100


SLOW_FLUSH = 0.25  # seconds


class _SlowFlush(_Sizes):
    """A buffer whose flush takes SLOW_FLUSH seconds longer."""

    def flush(self, conn: sqlite3.Connection) -> None:
        time.sleep(SLOW_FLUSH)
        super().flush(conn)


class SlowFlushPlayers(PlayersProjection):
    def buffer(self, tables: Tables) -> _SlowFlush:  # type: ignore[override]
        return _SlowFlush(super().buffer(tables), [])


def test_an_active_build_behind_waits_a_multiple_of_its_last_flush_before_the_next(
    log: EventLog, views: Path
) -> None:
    log.append_sync(mixed_events(300, seed=19))
    with ProjectionRunner(
        log,
        [SlowFlushPlayers()],
        views=views,
        page_size=20,
        flush_events=NEVER,
        flush_seconds=0.0,
    ) as runner:
        runner.step()
        assert checkpoint(runner.conn) == 20  # no write measured yet: flush_seconds rules
        began = time.monotonic()
        while time.monotonic() - began < 0.5 and runner.step():
            # folded within FLUSH_TIME_RATIO x SLOW_FLUSH of the last flush: not written
            assert checkpoint(runner.conn) == 20
        time.sleep(FLUSH_TIME_RATIO * SLOW_FLUSH)
        runner.step()
        assert checkpoint(runner.conn) > 40


def test_at_the_head_every_page_is_flushed_so_readers_see_the_head(
    log: EventLog, views: Path
) -> None:
    log.append_sync(mixed_events(500, seed=18))
    with ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=100, flush_events=NEVER
    ) as runner:
        runner.catch_up()
        assert checkpoint(runner.conn) == 500
        log.append_sync([track("ply_late", "bet_placed", when=at(900), event_id="late-1")])
        assert runner.step() == 1
        assert checkpoint(runner.conn) == 501
        assert list_players(runner.conn, TENANT, ENV).position == 501
        assert get_player(runner.conn, TENANT, ENV, "ply_late") is not None


def test_folded_events_are_written_by_flush_and_by_close(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(mixed_events(400, seed=19))
    with ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=50, flush_events=NEVER
    ) as runner:
        runner.step()
        runner.step()
        assert checkpoint(runner.conn) == 0
        runner.flush()
        assert checkpoint(runner.conn) == 100
        runner.step()
        runner.step()
    with ProjectionRunner(log, [PlayersProjection()], views=views, page_size=50) as runner:
        assert checkpoint(runner.conn) == 200
        assert runner.catch_up() == 200
        assert dump(runner.conn) == fresh_build(log, tmp_path / "fresh.views.db")


@BOTH_DATABASES
def test_a_buffer_is_dropped_when_another_runner_moved_the_checkpoint(
    log: EventLog, views: Path, tmp_path: Path
) -> None:
    log.append_sync(mixed_events(400, seed=20))
    first = ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=100, flush_events=NEVER
    )
    second = ProjectionRunner(log, [PlayersProjection()], views=views, page_size=70)
    try:
        first.step()
        first.step()  # 200 events folded, none written
        second.catch_up()  # applies everything
        assert first.catch_up() == 0  # its buffer is stale: dropped, never written
        assert checkpoint(first.conn) == 400
        assert dump(first.conn) == fresh_build(log, tmp_path / "fresh.views.db")
    finally:
        first.close()
        second.close()


class _GcWatch(_Sizes):
    """Records whether the cyclic collector ran during each fold."""

    def fold(self, page: Sequence[RecordedEvent]) -> None:
        self.log.append(int(gc.isenabled()))
        self.inner.fold(page)


class GcWatchedPlayers(PlayersProjection):
    def __init__(self) -> None:
        super().__init__()
        self.enabled: list[int] = []

    def buffer(self, tables: Tables) -> _GcWatch:  # type: ignore[override]
        return _GcWatch(super().buffer(tables), self.enabled)


def test_a_step_pauses_the_cyclic_collector_and_restores_it(
    log: EventLog, views: Path
) -> None:
    log.append_sync(mixed_events(200, seed=20))
    projection = GcWatchedPlayers()
    with ProjectionRunner(log, [projection], views=views, page_size=50) as runner:
        assert gc.isenabled()
        assert runner.step() > 0
        assert gc.isenabled()
        gc.disable()
        try:
            assert runner.step() > 0
            assert not gc.isenabled()  # someone else's choice is left alone
        finally:
            gc.enable()
    assert projection.enabled == [0, 0]  # both folds ran with the collector paused


def test_a_flush_writes_money_in_chunks_to_the_rows_one_chunk_gives(
    log: EventLog, views: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log.append_sync(money_mix_events(3000, seed=14))
    whole = fresh_build(log, tmp_path / "whole.views.db")
    monkeypatch.setattr(players_module, "MONEY_CHUNK", 7)
    with ProjectionRunner(
        log, [PlayersProjection()], views=views, page_size=500, flush_events=1500
    ) as runner:
        runner.catch_up()
        chunked = dump(runner.conn)
    assert len(chunked["players_money"]) > 7 * 10  # many chunks a flush
    assert chunked == whole
