"""Group commit: one writer thread per process coalesces concurrent appends.

Every request waiting when the writer comes round joins one transaction, so one
fsync serves many HTTP requests. Each caller's future resolves only after that
transaction is committed (and synced, per the backend's durability setting).
The queue is bounded in events: past the bound `submit` raises LogOverloaded at
once, so a slow disk turns into 503s instead of unbounded memory.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from eventstore.backend import LogBackend
from eventstore.errors import LogClosed, LogOverloaded
from eventstore.idempotency import IdempotencyRecord
from eventstore.results import AppendResult

__all__ = ["GroupCommitWriter"]

log = logging.getLogger(__name__)

DEFAULT_MAX_PENDING_EVENTS = 200_000
DEFAULT_MAX_GROUP_EVENTS = 20_000
UPKEEP_EVENTS_PER_STEP = 2_000
"""After a group, one upkeep step (when due) for every this many events it wrote,
at least one. Upkeep is proportional to what is appended (a SQLite log needs
about one step per 3,500 events: a flush and its share of merges), so one step
per group fell behind whenever groups were big: a backfill in calls of 10,000
left about 300 unmerged runs at 10M events, paid later as 8 s of merges
inside the next 200,000 appends."""


class _Request:
    __slots__ = ("envelopes", "future", "records")

    def __init__(
        self,
        envelopes: Sequence[Any],
        records: Sequence[IdempotencyRecord],
    ) -> None:
        self.envelopes = envelopes
        self.records = records
        self.future: Future[tuple[list[AppendResult], list[IdempotencyRecord]]] = Future()


class GroupCommitWriter:
    def __init__(
        self,
        backend: LogBackend,
        *,
        on_commit: Callable[[], None],
        max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS,
        max_group_events: int = DEFAULT_MAX_GROUP_EVENTS,
    ) -> None:
        self._backend = backend
        self._on_commit = on_commit
        self._max_pending = max_pending_events
        self._max_group = max_group_events
        self._queue: deque[_Request] = deque()
        self._pending_events = 0
        self._cv = threading.Condition()
        self._closed = False
        self.groups_committed = 0
        self.upkeep_steps = 0
        self._thread = threading.Thread(target=self._run, name="playerlog-writer", daemon=True)
        self._thread.start()

    @property
    def pending_events(self) -> int:
        """Events queued and not yet committed (the writer's queue depth)."""
        return self._pending_events

    def submit(
        self,
        envelopes: Sequence[Any],
        records: Sequence[IdempotencyRecord] = (),
    ) -> Future[tuple[list[AppendResult], list[IdempotencyRecord]]]:
        request = _Request(envelopes, records)
        size = len(envelopes)
        with self._cv:
            if self._closed:
                raise LogClosed("the log is closed")
            # A single request larger than the bound is still taken when the queue
            # is empty, or it could never be written.
            if self._pending_events and self._pending_events + size > self._max_pending:
                raise LogOverloaded(self._pending_events + size, self._max_pending)
            self._queue.append(request)
            self._pending_events += size
            self._cv.notify()
        return request.future

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()

    def _take_group(self) -> list[_Request] | None:
        with self._cv:
            while not self._queue:
                if self._closed:
                    return None
                if self._backend.maintenance_due():
                    return []
                self._cv.wait(timeout=1.0)
            group = [self._queue.popleft()]
            size = len(group[0].envelopes)
            while self._queue and size + len(self._queue[0].envelopes) <= self._max_group:
                request = self._queue.popleft()
                size += len(request.envelopes)
                group.append(request)
            return group

    def _run(self) -> None:
        while True:
            group = self._take_group()
            if group is None:
                return
            written = 0
            if group:
                self._commit(group)
                written = sum(len(request.envelopes) for request in group)
            self._upkeep(max(1, written // UPKEEP_EVENTS_PER_STEP))

    def _upkeep(self, steps: int) -> None:
        for _ in range(steps):
            if not self._backend.maintenance_due():
                return
            try:
                self._backend.maintain()
                self.upkeep_steps += 1
            except Exception:
                # Upkeep failing must not stop appends; it is retried next round.
                log.exception("log maintenance failed; will retry")
                return

    def _commit(self, group: list[_Request]) -> None:
        envelopes: list[Any] = []
        records: list[IdempotencyRecord] = []
        for request in group:
            envelopes.extend(request.envelopes)
            records.extend(request.records)
        try:
            results, stored = self._backend.write(envelopes, records)
        except Exception as error:  # noqa: BLE001  (any failure goes to the callers)
            if len(group) > 1:
                # Something in the group failed the shared transaction: write each
                # request on its own, so one bad request cannot fail its neighbours.
                log.warning("group commit failed; retrying its requests one by one: %s", error)
                for request in group:
                    self._commit([request])
                return
            self._settle(group, envelopes)
            group[0].future.set_exception(error)
            return
        self.groups_committed += 1
        self._settle(group, envelopes)
        self._on_commit()
        start = 0
        record_start = 0
        for request in group:
            end = start + len(request.envelopes)
            record_end = record_start + len(request.records)
            request.future.set_result((results[start:end], stored[record_start:record_end]))
            start, record_start = end, record_end

    def _settle(self, group: list[_Request], envelopes: list[Any]) -> None:
        del group
        with self._cv:
            self._pending_events -= len(envelopes)
