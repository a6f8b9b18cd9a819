"""The log as callers use it: append (grouped), read, follow, idempotency keys."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future

from eventstore.backend import LogBackend
from eventstore.envelope import NewEvent, RecordedEvent, validate_envelopes
from eventstore.idempotency import DEFAULT_IDEMPOTENCY_TTL, IdempotencyRecord
from eventstore.results import AppendResult
from eventstore.signal import ChangeSignal
from eventstore.writer import DEFAULT_MAX_PENDING_EVENTS, GroupCommitWriter

__all__ = ["EventLog"]

DEFAULT_POLL_INTERVAL = 0.5
"""Seconds a follower waits before re-reading when no wake-up came: the bound on
how late it sees an append made by another process without notification."""


class EventLog:
    """One log over one backend; one group-commit writer per instance.

    Create one per process (the composition root does) and share it.
    """

    def __init__(
        self,
        backend: LogBackend,
        *,
        max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS,
        idempotency_ttl: float = DEFAULT_IDEMPOTENCY_TTL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.idempotency_ttl = idempotency_ttl
        self._clock = clock
        self.changes = ChangeSignal()
        self._writer = GroupCommitWriter(
            backend, on_commit=self.changes.notify, max_pending_events=max_pending_events
        )
        self._stop_watching = backend.watch(self.changes.notify)

    @property
    def pending_events(self) -> int:
        """Events waiting for the writer (exported as a metric)."""
        return self._writer.pending_events

    # -- appending -------------------------------------------------------------

    def _submit(
        self, envelopes: Sequence[NewEvent], records: Sequence[IdempotencyRecord] = ()
    ) -> Future[tuple[list[AppendResult], list[IdempotencyRecord]]]:
        validate_envelopes(envelopes)
        return self._writer.submit(envelopes, records)

    async def append(self, envelopes: Sequence[NewEvent]) -> list[AppendResult]:
        """Append durably; one result per envelope, in order.

        Raises InvalidEnvelope (nothing stored) or LogOverloaded (nothing queued).
        """
        if not envelopes:
            return []
        results, _ = await asyncio.wrap_future(self._submit(envelopes))
        return results

    def append_sync(self, envelopes: Sequence[NewEvent]) -> list[AppendResult]:
        """`append` for threads and command-line tools (blocks until durable)."""
        if not envelopes:
            return []
        results, _ = self._submit(envelopes).result()
        return results

    # -- reading ---------------------------------------------------------------

    def read(
        self,
        after: int = 0,
        limit: int = 1000,
        *,
        tenant: str | None = None,
        environment: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        return self.backend.read(
            after, limit, tenant=tenant, environment=environment, types=types
        )

    def head(self) -> int:
        return self.backend.head()

    async def follow(
        self,
        after: int = 0,
        *,
        page_size: int = 1000,
        tenant: str | None = None,
        environment: str | None = None,
        types: Sequence[str] | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
    ) -> AsyncIterator[RecordedEvent]:
        """Every event after `after`, in position order: catch up, then wait.

        Never skips: positions are handed out in commit order, so nothing can
        appear later below a position already read.
        """
        while True:
            generation = self.changes.generation()
            page = await asyncio.to_thread(
                self.backend.read,
                after,
                page_size,
                tenant=tenant,
                environment=environment,
                types=types,
            )
            for event in page:
                yield event
            if page:
                after = page[-1].position
                if len(page) == page_size:
                    continue
            await self.changes.wait(generation, poll_interval)

    # -- idempotency keys -------------------------------------------------------

    def get_idempotency(
        self, tenant: str, environment: str, key: str
    ) -> IdempotencyRecord | None:
        return self.backend.get_idempotency(tenant, environment, key, self._clock())

    def new_idempotency_record(
        self,
        *,
        tenant: str,
        environment: str,
        key: str,
        fingerprint: str,
        status_code: int,
        content_type: str,
        body: bytes,
    ) -> IdempotencyRecord:
        now = self._clock()
        return IdempotencyRecord(
            tenant=tenant,
            environment=environment,
            key=key,
            fingerprint=fingerprint,
            status_code=status_code,
            content_type=content_type,
            body=body,
            created_at=now,
            expires_at=now + self.idempotency_ttl,
        )

    async def save_idempotency(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store durably; returns the record now in force for the key (an earlier
        unexpired one wins a race)."""
        _, stored = await asyncio.wrap_future(self._writer.submit((), (record,)))
        return stored[0]

    def save_idempotency_sync(self, record: IdempotencyRecord) -> IdempotencyRecord:
        _, stored = self._writer.submit((), (record,)).result()
        return stored[0]

    def purge_idempotency(self) -> int:
        return self.backend.purge_idempotency(self._clock())

    # -- named records (tokens, settings) ---------------------------------------------

    def put_record(self, kind: str, key: str, value: bytes) -> None:
        """Store `value` under (kind, key), replacing any earlier one, durably."""
        self.backend.put_record(kind, key, value, self._clock())

    def get_record(self, kind: str, key: str) -> bytes | None:
        return self.backend.get_record(kind, key)

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        """(key, value) pairs of one kind, ordered by key."""
        return self.backend.list_records(kind)

    # -- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the writer, release the database."""
        self._stop_watching()
        self._writer.close()
        self.backend.close()
