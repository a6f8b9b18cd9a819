"""The port every kind of destination implements: send a batch, say how it went."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from eventstore import RecordedEvent

__all__ = ["Outcome", "Sink"]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one `send`.

    `delivered` events at the head of the batch were acknowledged (all of them when
    `error` is None). After an error the rest is retried, unless `permanent`: the
    destination refused them for good (the same request would fail again).
    """

    delivered: int
    error: str | None = None
    permanent: bool = False
    retry_after: float | None = None
    """Seconds the destination asked to wait (HTTP `Retry-After`), if it did."""


class Sink(Protocol):
    async def send(self, events: Sequence[RecordedEvent]) -> Outcome:
        """Deliver `events` in order; never raises for a delivery failure."""
        ...

    async def close(self) -> None: ...
