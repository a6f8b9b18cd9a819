"""What operators do with destinations, shared by the command line and the admin API:
status, replay, dead letters, and the public view of a destination's settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from delivery.config import Destination
from delivery.store import DeadLetter, DestinationStore
from eventstore import EventLog

__all__ = [
    "REPLAY_TIME_MARGIN",
    "DestinationStatus",
    "ReplayError",
    "position_at",
    "public_settings",
    "replay",
    "status_of",
]

REPLAY_TIME_MARGIN = timedelta(minutes=1)
"""How far before the asked time a replay by time starts. `received_at` is stamped
by each API process before its append commits, so across processes it is not
strictly increasing with the position; starting a minute early covers clocks and
commit delays, at the cost of delivering a minute more again (receivers dedup)."""

HIDDEN = "********"


class ReplayError(ValueError):
    """A replay's starting point is invalid; the message names the field."""


class DestinationStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    tenant: str
    environment: str
    kind: str
    enabled: bool
    checkpoint: int
    head: int
    lag: int
    """Log positions after the checkpoint, every tenant's: an upper bound of the
    events still to deliver (the filters are not counted)."""
    delivered: int
    last_delivered_at: datetime | None
    attempts: int
    """Failed attempts at the batch under way; 0 when delivery is healthy."""
    first_failure: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    dead_letters: int


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def status_of(store: DestinationStore, destination: Destination) -> DestinationStatus:
    state = store.state(destination)
    head = store.log.head()
    return DestinationStatus(
        name=destination.name,
        tenant=destination.tenant,
        environment=destination.environment,
        kind=destination.kind,
        enabled=destination.enabled,
        checkpoint=state.checkpoint,
        head=head,
        lag=max(0, head - state.checkpoint),
        delivered=state.delivered,
        last_delivered_at=_time(state.last_delivered_at),
        attempts=state.attempts,
        first_failure=_time(state.first_failure),
        last_error=state.last_error,
        last_error_at=_time(state.last_error_at),
        dead_letters=state.dead_letters,
    )


def public_settings(destination: Destination) -> dict[str, Any]:
    """The settings as JSON builtins, the webhook secret hidden."""
    shown: dict[str, Any] = msgspec.to_builtins(destination)
    if shown.get("webhook"):
        shown["webhook"]["secret"] = HIDDEN
    return shown


def dead_letter_view(letter: DeadLetter) -> dict[str, Any]:
    shown: dict[str, Any] = msgspec.to_builtins(letter)
    for field in ("first_failure", "dead_lettered_at"):
        moment = _time(shown[field])
        shown[field] = None if moment is None else moment.isoformat()
    return shown


def position_at(log: EventLog, moment: datetime) -> int:
    """The first position whose `received_at` is at or after `moment` (head + 1 when
    none is): a binary search over the gap-free positions, a handful of reads."""
    low, high = 1, log.head() + 1
    while low < high:
        middle = (low + high) // 2
        found = log.read(after=middle - 1, limit=1)
        if found and found[0].received_at < moment:
            low = middle + 1
        else:
            high = middle
    return low


def replay(
    store: DestinationStore,
    destination: Destination,
    *,
    from_position: int | None = None,
    from_time: datetime | None = None,
) -> int:
    """Deliver again from `from_position` (that event included) or from the events
    received at `from_time` (less REPLAY_TIME_MARGIN); returns the new checkpoint.

    Events after it are sent again, in order, whether or not they were delivered or
    dead-lettered before: receivers dedup by event id.
    """
    if (from_position is None) == (from_time is None):
        raise ReplayError("from_position/from_time: give exactly one of them")
    head = store.log.head()
    if from_time is not None:
        if from_time.tzinfo is None:
            raise ReplayError("from_time: give a time zone, e.g. 2025-01-31T12:00:00Z")
        start = position_at(store.log, from_time - REPLAY_TIME_MARGIN)
    else:
        assert from_position is not None
        if not 1 <= from_position <= head + 1:
            raise ReplayError(
                f"from_position: must be 1 to {head + 1} (the log's head is {head}), "
                f"got {from_position}"
            )
        start = from_position
    return store.replay(destination, start - 1).checkpoint
