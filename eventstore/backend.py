"""The port every storage backend implements.

Methods are synchronous: the group-commit writer calls `write` from its own
thread, and readers call `read` from worker threads. Following the log, batching
and waking up readers live above this port (see `writer.py` and `log.py`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence

from eventstore.envelope import NewEvent, RecordedEvent
from eventstore.idempotency import IdempotencyRecord
from eventstore.results import AppendResult

__all__ = ["LogBackend"]


class LogBackend(ABC):
    """One append-only log with a global, gap-free position."""

    url: str
    """The database URL, with any password removed."""

    @abstractmethod
    def migrate(self) -> None:
        """Create the schema and run pending migrations; idempotent and safe when
        several processes start at once."""

    @abstractmethod
    def write(
        self,
        envelopes: Sequence[NewEvent],
        records: Sequence[IdempotencyRecord] = (),
    ) -> tuple[list[AppendResult], list[IdempotencyRecord]]:
        """Append envelopes and save idempotency records in ONE durable transaction.

        Returns one AppendResult per envelope, in order, and for each record the
        one now stored for its key (an unexpired earlier record wins). Envelopes
        must already be validated. Either everything is committed or nothing is.
        """

    @abstractmethod
    def read(
        self,
        after: int = 0,
        limit: int = 1000,
        *,
        tenant: str | None = None,
        environment: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[RecordedEvent]:
        """Events with position > `after`, in position order, at most `limit`."""

    @abstractmethod
    def head(self) -> int:
        """The highest committed position; 0 for an empty log."""

    @abstractmethod
    def get_idempotency(
        self, tenant: str, environment: str, key: str, now: float
    ) -> IdempotencyRecord | None:
        """The unexpired record for the key, or None."""

    @abstractmethod
    def purge_idempotency(self, now: float) -> int:
        """Delete expired records; returns how many."""

    @abstractmethod
    def put_record(self, kind: str, key: str, value: bytes, now: float) -> None:
        """Store a named record (API tokens, tenant settings), replacing any earlier
        one with the same (kind, key), in its own durable transaction."""

    @abstractmethod
    def get_record(self, kind: str, key: str) -> bytes | None:
        """The record's value, or None."""

    @abstractmethod
    def list_records(self, kind: str) -> list[tuple[str, bytes]]:
        """(key, value) of every record of `kind`, ordered by key."""

    def maintenance_due(self) -> bool:
        """Whether `maintain` has work; the writer asks between groups."""
        return False

    def maintain(self) -> None:  # noqa: B027  (optional hook: most backends have nothing to do)
        """One bounded step of background upkeep, in its own transaction."""

    def watch(self, on_change: Callable[[], None]) -> Callable[[], None]:
        """Call `on_change` when another process appends; returns a function that
        stops watching. Backends without cross-process notification return a no-op
        and followers fall back to polling."""
        del on_change
        return _nothing

    @abstractmethod
    def close(self) -> None:
        """Release connections; the backend is unusable afterwards."""


def _nothing() -> None:
    return None
