"""What a projection is, as the runner sees it."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from eventstore import RecordedEvent

__all__ = ["CannotApply", "Projection", "Tables", "physical_name"]

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
        self, page: Sequence[RecordedEvent], conn: sqlite3.Connection, tables: Tables
    ) -> None:
        """Apply one page of events (position order) to the build's tables."""
        ...
