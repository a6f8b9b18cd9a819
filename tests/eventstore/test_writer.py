"""The group-commit writer, with a fake backend (no database needed)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import pytest

from eventstore import EventLog, LogOverloaded
from eventstore.backend import LogBackend
from eventstore.idempotency import IdempotencyRecord
from eventstore.results import AppendResult
from eventstore.writer import UPKEEP_EVENTS_PER_STEP, GroupCommitWriter
from tests.eventstore.helpers import batch, envelope


class ListBackend(LogBackend):
    """An in-memory log: enough to drive the writer (dedup is the contract's job)."""

    url = "memory://"

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.groups: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def migrate(self) -> None:
        return None

    def write(
        self, envelopes: Sequence[Any], records: Sequence[IdempotencyRecord] = ()
    ) -> tuple[list[AppendResult], list[IdempotencyRecord]]:
        self.entered.set()
        self.gate.wait(10)
        if any(e.event_id == "poison" for e in envelopes):
            raise OSError("the disk refused this one")
        self.groups.append(len(envelopes))
        start = len(self.events)
        self.events.extend(envelopes)
        return [AppendResult("stored", start + i + 1) for i in range(len(envelopes))], list(
            records
        )

    def read(self, after: int = 0, limit: int = 1000, **_: Any) -> list[Any]:
        return []

    def head(self) -> int:
        return len(self.events)

    def get_idempotency(self, *_: Any) -> IdempotencyRecord | None:
        return None

    def purge_idempotency(self, now: float) -> int:
        return 0

    def put_record(self, kind: str, key: str, value: bytes, now: float) -> None:
        return None

    def get_record(self, kind: str, key: str) -> bytes | None:
        return None

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return []

    def close(self) -> None:
        return None


def test_waiting_requests_share_one_transaction() -> None:
    backend = ListBackend()
    log = EventLog(backend)
    backend.gate.clear()
    futures = [log._submit(batch("r0", 10))]
    assert backend.entered.wait(10)  # the writer holds the first request
    futures += [log._submit(batch(f"r{i}", 10)) for i in range(1, 5)]
    backend.gate.set()
    assert [len(f.result(10)[0]) for f in futures] == [10] * 5
    log.close()
    assert backend.groups[0] == 10  # the first request went alone, the writer was busy
    assert backend.groups[1:] == [40]  # the four that waited: one transaction


def test_a_failing_request_does_not_fail_the_others_in_its_group() -> None:
    backend = ListBackend()
    log = EventLog(backend)
    backend.gate.clear()
    first = log._submit(batch("first", 2))
    assert backend.entered.wait(10)
    good = log._submit(batch("good", 3))
    bad = log._submit([envelope("poison")])
    also_good = log._submit(batch("also", 1))
    backend.gate.set()
    assert len(first.result(10)[0]) == 2
    assert len(good.result(10)[0]) == 3
    assert len(also_good.result(10)[0]) == 1
    with pytest.raises(OSError, match="refused"):
        bad.result(10)
    log.close()
    assert len(backend.events) == 6
    assert log.pending_events == 0


def test_queue_past_its_bound_refuses_at_once() -> None:
    backend = ListBackend()
    log = EventLog(backend, max_pending_events=10)
    backend.gate.clear()
    busy = log._submit(batch("busy", 8))
    with pytest.raises(LogOverloaded) as refused:
        log.append_sync(batch("more", 5))
    assert refused.value.bound == 10
    backend.gate.set()
    busy.result(10)
    assert len(log.append_sync(batch("later", 5))) == 5
    log.close()


def test_one_request_larger_than_the_bound_is_still_taken_when_idle() -> None:
    backend = ListBackend()
    log = EventLog(backend, max_pending_events=10)
    assert len(log.append_sync(batch("big", 50))) == 50
    log.close()


class UpkeepBackend(ListBackend):
    """A backend with an endless backlog of upkeep, noting the steps taken before
    each write."""

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0
        self.steps_at_writes: list[int] = []

    def write(
        self, envelopes: Sequence[Any], records: Sequence[IdempotencyRecord] = ()
    ) -> tuple[list[AppendResult], list[IdempotencyRecord]]:
        self.steps_at_writes.append(self.steps)
        return super().write(envelopes, records)

    def maintenance_due(self) -> bool:
        return True

    def maintain(self) -> None:
        self.steps += 1


def test_upkeep_between_groups_grows_with_the_group_written() -> None:
    backend = UpkeepBackend()
    writer = GroupCommitWriter(backend, on_commit=lambda: None, max_group_events=9_000)
    backend.gate.clear()  # hold the writer in its first write; the rest queue behind it
    first = writer.submit(batch("warm", 1))
    assert backend.entered.wait(5)
    big = [writer.submit(batch(f"big{n}", 9_000)) for n in range(2)]
    backend.gate.set()
    for future in (first, *big):
        future.result(5)
    writer.close()

    assert backend.groups == [1, 9_000, 9_000]
    # (the idle writer did upkeep before the first write) then, with requests
    # waiting: one step after the 1-event group, one per 2,000 events after a big one
    at = backend.steps_at_writes
    assert [at[1] - at[0], at[2] - at[1]] == [1, 9_000 // UPKEEP_EVENTS_PER_STEP]
