"""playerlog's projections: read models folded from the log, and their queries.

Public surface:

* running: `ProjectionRunner(log, [PlayersProjection()])` with `catch_up()` and
  `async run()`; the read models live in their own SQLite file
  (`views_path_for(log_url)`, opened with `open_views`).
* operating: `status`, `start_rebuild`, `cancel_rebuild`, `retry`, `skip`.
* reading: `get_player`, `list_players`.
* writing a projection: the `Projection` protocol, `CannotApply`.

Depends on `eventstore` only (see docs/projections.md).
"""

from __future__ import annotations

from projections.database import open_views, read_transaction, views_path_for, write_transaction
from projections.players import (
    PLAYER_FIELDS,
    InvalidCursorError,
    Player,
    PlayerPage,
    PlayersProjection,
    get_player,
    list_players,
)
from projections.protocol import CannotApply, Projection, Tables, physical_name
from projections.registry import (
    Build,
    ProjectionStateError,
    Skip,
    active_position,
    cancel_rebuild,
    load_builds,
    retry,
    skip,
    start_rebuild,
)
from projections.runner import DEFAULT_PAGE_SIZE, ProjectionRunner
from projections.status import Progress, ProjectionError, ProjectionStatus, status

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "PLAYER_FIELDS",
    "Build",
    "CannotApply",
    "InvalidCursorError",
    "Player",
    "PlayerPage",
    "PlayersProjection",
    "Progress",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionStateError",
    "ProjectionStatus",
    "Skip",
    "Tables",
    "active_position",
    "cancel_rebuild",
    "get_player",
    "list_players",
    "load_builds",
    "open_views",
    "physical_name",
    "read_transaction",
    "retry",
    "skip",
    "start_rebuild",
    "status",
    "views_path_for",
    "write_transaction",
]
