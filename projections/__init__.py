"""playerlog's projections: read models folded from the log, and their queries.

Public surface:

* running: `ProjectionRunner(log, [PlayersProjection()])` with `catch_up()` and
  `async run()`; the read models live in their own SQLite file beside a SQLite
  log, or in a PostgreSQL log's own schema (`views_location_for(log_url)`,
  opened with `open_views`; `database.ViewsConnection` is either).
* operating: `status`, `start_rebuild`, `cancel_rebuild`, `retry`, `skip`.
* reading: `get_player`, `list_players`, `get_ledger`, `get_game`, `list_games`.
* money: `movements_of` and `MOVEMENT_TABLE` (which event moves what), `Rates`.
* writing a projection: the `Projection` protocol, `CannotApply`.

Depends on `eventstore` only (see docs/projections.md).
"""

from __future__ import annotations

from projections.database import (
    ViewsConnection,
    ViewsLocation,
    open_views,
    read_transaction,
    views_location_for,
    views_path_for,
    write_transaction,
)
from projections.games import (
    GAME_FIELDS,
    PLAY_KINDS,
    Game,
    GamePage,
    GamesProjection,
    GameStats,
    get_game,
    list_games,
)
from projections.ledger import (
    InvalidLedgerCursorError,
    LedgerEntry,
    LedgerPage,
    LedgerProjection,
    UnreadableEvent,
    UnreadablePage,
    get_ledger,
    list_unreadable,
)
from projections.movements import (
    EXACT,
    MONEY_EVENTS,
    MOVEMENT_KINDS,
    MOVEMENT_TABLE,
    Movement,
    MovementRule,
    UnreadableMoney,
    decoding_once,
    movements_of,
    read_movements,
)
from projections.players import (
    PLAYER_FIELDS,
    Flow,
    InvalidCursorError,
    MoneyTotals,
    Player,
    PlayerMoney,
    PlayerPage,
    PlayersProjection,
    Unconverted,
    get_player,
    list_players,
)
from projections.protocol import CannotApply, Projection, Tables, physical_name
from projections.rates import NO_RATES, Rates, RatesFileError
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
from projections.runner import DEFAULT_CATCH_UP_PAGE_SIZE, DEFAULT_PAGE_SIZE, ProjectionRunner
from projections.status import Progress, ProjectionError, ProjectionStatus, status

__all__ = [
    "DEFAULT_CATCH_UP_PAGE_SIZE",
    "DEFAULT_PAGE_SIZE",
    "EXACT",
    "GAME_FIELDS",
    "MONEY_EVENTS",
    "MOVEMENT_KINDS",
    "MOVEMENT_TABLE",
    "NO_RATES",
    "PLAYER_FIELDS",
    "PLAY_KINDS",
    "Build",
    "CannotApply",
    "Flow",
    "Game",
    "GamePage",
    "GameStats",
    "GamesProjection",
    "InvalidCursorError",
    "InvalidLedgerCursorError",
    "LedgerEntry",
    "LedgerPage",
    "LedgerProjection",
    "MoneyTotals",
    "Movement",
    "MovementRule",
    "Player",
    "PlayerMoney",
    "PlayerPage",
    "PlayersProjection",
    "Progress",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionStateError",
    "ProjectionStatus",
    "Rates",
    "RatesFileError",
    "Skip",
    "Tables",
    "Unconverted",
    "UnreadableEvent",
    "UnreadableMoney",
    "UnreadablePage",
    "ViewsConnection",
    "ViewsLocation",
    "active_position",
    "cancel_rebuild",
    "decoding_once",
    "get_game",
    "get_ledger",
    "get_player",
    "list_games",
    "list_players",
    "list_unreadable",
    "load_builds",
    "movements_of",
    "open_views",
    "physical_name",
    "read_movements",
    "read_transaction",
    "retry",
    "skip",
    "start_rebuild",
    "status",
    "views_location_for",
    "views_path_for",
    "write_transaction",
]
