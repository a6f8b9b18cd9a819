"""Fakes for the API tests (no mocks): a backend that can stall or fail, a clock to
move by hand, and a log whose writer can be made to look overloaded."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from eventstore import EventLog, IdempotencyRecord, LogBackend, LogOverloaded
from eventstore.backend import LogBackend as _Port


class GatedBackend(_Port):
    """A real backend whose writes wait for a gate, or fail on demand; reads of the
    head fail on demand too (an unreachable database, as /readyz sees it)."""

    def __init__(self, inner: LogBackend) -> None:
        self.inner = inner
        self.url = inner.url
        self.gate = threading.Event()
        self.gate.set()
        self.fail_with: Exception | None = None
        self.head_fails_with: Exception | None = None

    def migrate(self) -> None:
        self.inner.migrate()

    def write(
        self, envelopes: Sequence[Any], records: Sequence[IdempotencyRecord] = ()
    ) -> tuple[list[Any], list[IdempotencyRecord]]:
        self.gate.wait(10)
        if self.fail_with is not None and envelopes:
            raise self.fail_with
        return self.inner.write(envelopes, records)

    def read(self, after: int = 0, limit: int = 1000, **filters: Any) -> list[Any]:
        return self.inner.read(after, limit, **filters)

    def head(self) -> int:
        if self.head_fails_with is not None:
            raise self.head_fails_with
        return self.inner.head()

    def get_idempotency(self, *args: Any) -> IdempotencyRecord | None:
        return self.inner.get_idempotency(*args)

    def purge_idempotency(self, now: float) -> int:
        return self.inner.purge_idempotency(now)

    def put_record(self, kind: str, key: str, value: bytes, now: float) -> None:
        self.inner.put_record(kind, key, value, now)

    def get_record(self, kind: str, key: str) -> bytes | None:
        return self.inner.get_record(kind, key)

    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        return self.inner.list_records(kind)

    def close(self) -> None:
        self.inner.close()


class FakeClock:
    """Seconds since the epoch, moved only by `advance` (for the log's key expiry)."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SwitchableLog(EventLog):
    """A real log that refuses appends as an overloaded writer does, while
    `overloaded` is set (a 503 without having to fill the writer's queue)."""

    overloaded = False

    async def append(self, envelopes: Sequence[Any]) -> list[Any]:
        if self.overloaded:
            raise LogOverloaded(self.pending_events + len(envelopes), 0)
        return await super().append(envelopes)
