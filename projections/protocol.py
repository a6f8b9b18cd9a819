"""What a projection is, as the runner sees it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from eventstore import RecordedEvent
from projections.database import ViewsConnection

__all__ = [
    "Buffer",
    "Buffered",
    "CannotApply",
    "Projection",
    "ReadIndexed",
    "Tables",
    "physical_name",
]

Tables = Mapping[str, str]
"""A build's table names: base name (`players`) → physical table (`players_b2`)."""


def physical_name(base: str, build: int) -> str:
    """The table of `base` in build `build` (`players`, 2 → `players_b2`)."""
    return f"{base}_b{build}"


class CannotApply(Exception):  # noqa: N818  (reads as what happened: the event cannot be applied)
    """Raised by a projection for an event it cannot apply (bad payload, impossible value).

    Any other exception is treated the same way once the runner has isolated the
    event that raises it; this one just says so plainly.
    """


class Projection(Protocol):
    """A read model folded from the log.

    * `name` is stable (it names the registry rows and the SQL views readers use).
    * `version` is the version of the rules: raising it makes the runner build
      the new version beside the old one and swap when it reaches the head.
    * `tables` are the base names of the tables it owns; each build gets its
      own physical tables (`physical_name`) and readers use SQL views named by
      the base names, pointing at the active build.
    * `create` makes a build's tables (with sqlite-utils, so analysts can open
      them with its CLI or Datasette), inside the runner's transaction.
    * `apply` writes one page's changes, inside the runner's transaction, which
      also writes the checkpoint. It must not commit. Applying a page must give
      the same tables as applying its events one page each, in order: pages
      split differently live and in a rebuild, and the runner isolates a
      failing event by applying the page's events one at a time.
    """

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> int: ...

    @property
    def tables(self) -> Sequence[str]: ...

    def create(self, db: Any, tables: Tables) -> None:
        """Create the tables (and indexes) of one build; `db` is a `sqlite_utils.Database`."""
        ...

    def apply(
        self, page: Sequence[RecordedEvent], conn: ViewsConnection, tables: Tables
    ) -> None:
        """Apply one page of events (position order) to the build's tables."""
        ...


class Buffer(Protocol):
    """One build's changes folded in memory across pages, not yet written (write-behind).

    The runner folds the pages of a build that is behind into one buffer and
    flushes it, with the checkpoint of the last folded event, in one
    transaction: every `flush_events` events, every `flush_seconds`, when the
    buffer holds more than `max_buffered_keys` keys, at the head and on stop.
    A crash loses only what was folded since the last flush, and the restart
    folds it again from the checkpoint.

    * `fold` adds a page (position order) in memory only. If it raises, the
      runner throws the buffer away (it may hold half the page) and re-applies
      from the last flushed checkpoint a page at a time with `apply`, which
      isolates the culprit event.
    * `size` is how many keys (rows, or row deltas) the buffer holds: what
      bounds its memory.
    * `flush` writes everything folded, inside the runner's transaction (it must
      not commit). Folding pages p1, p2, … and flushing must give the same
      tables as `apply(p1 + p2 + …)`. A buffer is flushed once, then dropped.
    """

    @property
    def size(self) -> int: ...

    def fold(self, page: Sequence[RecordedEvent]) -> None: ...

    def flush(self, conn: ViewsConnection) -> None: ...


@runtime_checkable
class ReadIndexed(Protocol):
    """A projection with indexes that only its readers need (listing by position,
    a player's ledger, ...), not its writes.

    The runner creates them (`IF NOT EXISTS`) when a build first reaches the head:
    before a rebuild swaps in, or when an active build catching up from zero
    first gets there. A build catching up does not maintain them row by row,
    which is most of what a flush into large tables costs; one `CREATE INDEX`
    over the finished table sorts once instead. Until then an active build's
    reads that would use them scan (correct, slower).
    """

    def create_read_indexes(self, db: Any, tables: Tables) -> None:
        """Create the read indexes of one build, `if_not_exists=True`; `db` as for `create`."""
        ...


@runtime_checkable
class Buffered(Protocol):
    """A projection that can also fold pages into a `Buffer` (the runner's
    write-behind while a build catches up); without it, the runner calls
    `apply` for every page."""

    def buffer(self, tables: Tables) -> Buffer:
        """A new, empty buffer for the build with these tables."""
        ...
