"""Destinations, their delivery state and their dead letters, kept as named records
beside the log, so every process (API, worker, command line) sees the same ones.

Three record kinds, keyed `tenant \\x1f environment \\x1f name`:

* `destination`: the settings (`Destination`);
* `destination_state`: the checkpoint and the retry state (`DeliveryState`);
* `destination_dead_letter`: one per dead-lettered event, the key ending in the
  zero-padded position so the list comes back in log order.

Named records cannot be deleted (the log has no delete); a deleted destination's
records are overwritten with an empty value, which every reader here skips.

The checkpoint is compare-and-set in this module: `save_state` re-reads the record
and writes only if its checkpoint and epoch are still those the caller started
from. Named records are plain upserts, so a write by another process between that
re-read and the write is not seen (a window of one record write). What that race
can do: move a checkpoint back (events are delivered again: at least once allows
it) or, against a replay made in that same instant, undo the replay (run it
again). It can never move a checkpoint past an event nobody delivered, because a
deliverer only ever writes a position it had acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from delivery.config import Destination, destination_key
from eventstore import EventLog

__all__ = [
    "DeadLetter",
    "DeliveryState",
    "DestinationStore",
    "UnknownDestination",
]

CONFIG_KIND = "destination"
STATE_KIND = "destination_state"
DEAD_LETTER_KIND = "destination_dead_letter"
_DELETED = b""


class UnknownDestination(LookupError):  # noqa: N818  (reads as the outcome)
    """No destination of that name (for that tenant and environment)."""


class DeliveryState(msgspec.Struct, kw_only=True):
    checkpoint: int = 0
    """Every matching event at or below this position is delivered or dead-lettered."""
    epoch: int = 0
    """Bumped by each replay: a deliverer that started from an older epoch never writes."""
    attempts: int = 0
    """Failed attempts at the batch under way (0 when the last attempt succeeded)."""
    first_failure: float | None = None
    """When the batch under way first failed (Unix seconds): the dead-letter clock."""
    last_error: str | None = None
    last_error_at: float | None = None
    delivered: int = 0
    """Events acknowledged by the destination, ever (replays count again)."""
    last_delivered_at: float | None = None
    dead_letters: int = 0


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """An event given up on; it stays in the log, so a replay can deliver it again."""

    position: int
    event_id: str
    type: str
    subject: str
    reason: str
    first_failure: float
    attempts: int
    dead_lettered_at: float


_destination = msgspec.json.Decoder(Destination)
_state = msgspec.json.Decoder(DeliveryState)
_dead_letter = msgspec.json.Decoder(DeadLetter)
_encode = msgspec.json.encode


class DestinationStore:
    """Synchronous (the log's records are): async callers use `asyncio.to_thread`."""

    def __init__(self, log: EventLog, clock: Callable[[], float] = time.time) -> None:
        self.log = log
        self.clock = clock

    # -- destinations ---------------------------------------------------------------

    def destinations(
        self, tenant: str | None = None, environment: str | None = None
    ) -> list[Destination]:
        found = [
            _destination.decode(value)
            for _, value in self.log.list_records(CONFIG_KIND)
            if value != _DELETED
        ]
        return [
            d
            for d in found
            if (tenant is None or d.tenant == tenant)
            and (environment is None or d.environment == environment)
        ]

    def get(self, tenant: str, environment: str, name: str) -> Destination | None:
        value = self.log.get_record(CONFIG_KIND, destination_key(tenant, environment, name))
        return None if not value else _destination.decode(value)

    def find(
        self, name: str, tenant: str | None = None, environment: str | None = None
    ) -> Destination:
        """The one destination called `name`; tenant and environment narrow it down when
        several tenants use the name. Raises UnknownDestination saying what to add."""
        matches = [d for d in self.destinations(tenant, environment) if d.name == name]
        if not matches:
            where = "/".join(x for x in (tenant, environment) if x)
            raise UnknownDestination(
                f"no destination {name!r}" + (f" for {where}" if where else "")
            )
        if len(matches) > 1:
            owners = ", ".join(f"{d.tenant}/{d.environment}" for d in matches)
            raise UnknownDestination(
                f"destination {name!r} exists for several tenants ({owners}); "
                "give --tenant and --env"
            )
        return matches[0]

    def put(self, destination: Destination) -> bool:
        """Create or replace; True when it is new. A new one starts at the tenant's first
        event (`start = "beginning"`) or at the log's head (`"end"`)."""
        key = destination.key
        new = not self.log.get_record(CONFIG_KIND, key)
        if new:
            checkpoint = self.log.head() if destination.start == "end" else 0
            self.log.put_record(STATE_KIND, key, _encode(DeliveryState(checkpoint=checkpoint)))
        self.log.put_record(CONFIG_KIND, key, _encode(destination))
        return new

    def delete(self, destination: Destination) -> None:
        """Forget the destination, its checkpoint and its dead letters."""
        key = destination.key
        self.log.put_record(CONFIG_KIND, key, _DELETED)
        self.log.put_record(STATE_KIND, key, _DELETED)
        for dead_key, value in self.log.list_records(DEAD_LETTER_KIND):
            if value != _DELETED and dead_key.startswith(key + "\x1f"):
                self.log.put_record(DEAD_LETTER_KIND, dead_key, _DELETED)

    # -- delivery state ---------------------------------------------------------------

    def state(self, destination: Destination) -> DeliveryState:
        value = self.log.get_record(STATE_KIND, destination.key)
        return _state.decode(value) if value else DeliveryState()

    def save_state(
        self, destination: Destination, expected: DeliveryState, new: DeliveryState
    ) -> bool:
        """Write `new` only if the stored checkpoint and epoch are still `expected`'s
        (see the module's note on the race this leaves); False when they moved."""
        current = self.state(destination)
        if (current.checkpoint, current.epoch) != (expected.checkpoint, expected.epoch):
            return False
        self.log.put_record(STATE_KIND, destination.key, _encode(new))
        return True

    def replay(self, destination: Destination, after: int) -> DeliveryState:
        """Move the checkpoint to `after` (events above it are delivered again) and clear
        the retry state; a deliverer working on a batch drops it at its next step."""
        current = self.state(destination)
        replayed = msgspec.structs.replace(
            current,
            checkpoint=after,
            epoch=current.epoch + 1,
            attempts=0,
            first_failure=None,
        )
        self.log.put_record(STATE_KIND, destination.key, _encode(replayed))
        return replayed

    # -- dead letters -------------------------------------------------------------------

    def add_dead_letters(self, destination: Destination, letters: list[DeadLetter]) -> None:
        for letter in letters:
            key = f"{destination.key}\x1f{letter.position:020d}"
            self.log.put_record(DEAD_LETTER_KIND, key, _encode(letter))

    def dead_letters(self, destination: Destination) -> list[DeadLetter]:
        prefix = destination.key + "\x1f"
        return [
            _dead_letter.decode(value)
            for key, value in self.log.list_records(DEAD_LETTER_KIND)
            if value != _DELETED and key.startswith(prefix)
        ]
