"""The games read model: the catalogue and the play of each game, per tenant and environment.

Rules (each independent of the order events arrive in, so a late or
out-of-order event gives the row an in-order one would):

* **catalogue**, from unified `game` items (`GAME_FIELDS`: name, provider,
  categories, features, themes, device, has_freespins), merged per field: the
  value with the latest event time wins (the item's `timestamp`, i.e. the
  envelope's `occurred_at`), equal times go to the higher log position. A field
  absent from an item leaves the stored value alone; a field sent as `null`
  sets it to null (JSON merge-patch, the rule of the players' unified fields).
  Every field of every item is checked, winner or not, so whether an item
  stops the projection never depends on where pages are cut.
* **play**: the `bet` and `win` movements (`projections.movements`, the one
  table of which events move money) that carry a `game_id`. A game seen only
  in play gets a row with empty catalogue fields. Per game and currency:
  `bets` and `wins` (totals over both wallets; `bonus_bets`/`bonus_wins` are
  the bonus wallet's part of them), `ggr` = bets - wins, `rounds`,
  `win_count` and `players`. A track `bet_placed`/`bet_won` whose money cannot
  be read (free-form properties: amount missing, bad `game_id`, …) is no
  movement and counts nowhere here (the ledger lists it in `ledger_unreadable`);
  a unified `gameround`'s bad money stops the projection (validated at ingest).
* **rounds** are bets: one stake is one round, whether or not its win (paired
  by `round_id`) follows, and whether the sender sends a bet and a win per
  round or one event. `win_count` counts the wins. Distinct round ids would
  need a table with a row per round ever played, one B-tree insert per bet:
  measured, that halves this model's rebuild rate, and the table would grow
  with the log; a bet count is exact for every sender that stakes once per
  round.
* **players** count distinct user ids (the movement's actor) with a bet or a
  win on the game in that currency, exactly: every (game, currency, user) is
  kept in `games_players`.
* Amounts are exact `Decimal`s summed without rounding (a sum that could not
  be held exactly stops the projection instead) and stored as TEXT in plain
  notation (`0.30`, never `3E-1`).
* `position` is the highest log position of the events that touched the game,
  `updated_at` the `received_at` of that event: a poller that pages by
  position never misses a change (`list_games`).

Tables (base names; each build has its own, e.g. `games_b2`, and the views by
these names point at the active build): `games`, `games_fields`,
`games_stats`, `games_players`.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

import msgspec

from eventstore import RecordedEvent
from projections.database import (
    QUERY_ERRORS,
    ViewsConnection,
    is_missing_table,
    read_transaction,
)
from projections.key_order import in_key_order
from projections.listing import MAX_LIST_LIMIT, create_listing_indexes, list_changed
from projections.movements import MOVEMENT_TABLE, Movement, movements_of
from projections.protocol import CannotApply, Tables
from projections.timefmt import parse_time, time_text

__all__ = [
    "GAME_FIELDS",
    "HAS_FREESPINS",
    "MAX_LIST_LIMIT",
    "PLAY_KINDS",
    "Game",
    "GamePage",
    "GameStats",
    "GamesProjection",
    "get_game",
    "list_games",
]

GAME_FIELDS: Final = (
    "name",
    "provider",
    "categories",
    "features",
    "themes",
    "device",
    "has_freespins",
)
HasFreespins = Literal["yes", "no", "unknown"]
HAS_FREESPINS: Final = ("yes", "no", "unknown")
#: The movement kinds that are play on a game.
PLAY_KINDS: Final = frozenset({"bet", "win"})
# The (source, type) pairs whose movements can be play: anything else is passed
# over without decoding its payload.
_PLAY_EVENTS: Final = frozenset(
    key
    for key, rule in MOVEMENT_TABLE.items()
    if rule.kind in PLAY_KINDS or rule.win_kind in PLAY_KINDS
)
_LIST_FIELDS: Final = frozenset({"categories", "features", "themes"})
_TEXT_FIELDS: Final = frozenset({"name", "provider", "device"})

# Sums must be exact, never rounded to the default 28 digits: amounts are below
# 10**18 with at most 18 decimal places (projections.movements), so 80 digits
# hold any realistic total, and a sum that would not fit raises instead.
_EXACT: Final = decimal.Context(
    prec=80, traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow]
)
_ZERO: Final = Decimal(0)

Key = tuple[str, str, str]
"""(tenant, environment, game_id)."""
StatsKey = tuple[str, str, str, str]
"""(tenant, environment, game_id, currency)."""
Scope = tuple[str, str]
"""(tenant, environment)."""
Member = tuple[str, str, str]
"""(game_id, currency, user_id), within a scope."""


class _GameItem(msgspec.Struct, gc=False):
    data: dict[str, msgspec.Raw]


_GAME_ITEM = msgspec.json.Decoder(_GameItem)
_TEXT = msgspec.json.Decoder(str | None)
_LIST = msgspec.json.Decoder(list[str] | None)
_FREESPINS = msgspec.json.Decoder(HasFreespins | None)
_encode = msgspec.json.encode


def _field_json(name: str, raw: msgspec.Raw, event: RecordedEvent) -> str:
    """A catalogue field, checked and normalised, as JSON text."""
    value: Any
    try:
        if name in _TEXT_FIELDS:
            value = _TEXT.decode(raw)
        elif name in _LIST_FIELDS:
            value = _LIST.decode(raw)
        else:  # has_freespins
            value = _FREESPINS.decode(raw)
    except msgspec.ValidationError as error:
        raise CannotApply(
            f"unified game item {event.event_id!r}: data.{name}: {error} "
            f"(got {bytes(raw).decode()})"
        ) from None
    return _encode(value).decode()


def _money_text(amount: Decimal) -> str:
    # Plain notation: `str()` would write some values as `1E+2` or `0E-8`.
    return format(amount, "f")


# -- folding one page in memory ------------------------------------------------------------


class _Page:
    """One page reduced to what it changes, before any SQL."""

    __slots__ = ("fields", "money", "players", "touched")

    def __init__(self) -> None:
        self.touched: dict[Key, tuple[int, datetime]] = {}  # game → (position, received_at)
        # (tenant, environment, game, field) → (time, position, value JSON)
        self.fields: dict[tuple[str, str, str, str], tuple[str, int, str]] = {}
        # [bets, wins, bonus_bets, bonus_wins, rounds, win_count, highest position]
        self.money: dict[StatsKey, list[Any]] = {}
        # kept by scope: that is how they are sent to SQL
        self.players: dict[Scope, set[Member]] = {}

    def add(self, event: RecordedEvent) -> None:
        source, type_ = event.source, event.type
        if (source, type_) in _PLAY_EVENTS:
            for movement in movements_of(event):
                self._play(event, movement)
        elif source == "unified" and type_ == "game":
            self._catalogue(event)

    def _play(self, event: RecordedEvent, movement: Movement) -> None:
        game, kind = movement.game_id, movement.kind
        if not game or kind not in PLAY_KINDS:
            return
        tenant, environment, currency = event.tenant, event.environment, movement.currency
        # Pages come in position order: the last event to touch a game is its highest.
        self.touched[(tenant, environment, game)] = (event.position, event.received_at)
        key = (tenant, environment, game, currency)
        money = self.money.get(key)
        if money is None:
            money = self.money[key] = [_ZERO, _ZERO, _ZERO, _ZERO, 0, 0, 0]
        money[6] = event.position
        amount, bonus = movement.amount, movement.wallet == "bonus"
        if kind == "bet":
            money[0] += amount
            if bonus:
                money[2] += amount
            money[4] += 1
        else:
            money[1] += amount
            if bonus:
                money[3] += amount
            money[5] += 1
        scope = (tenant, environment)
        players = self.players.get(scope)
        if players is None:
            players = self.players[scope] = set()
        players.add((game, currency, movement.user_id))

    def _catalogue(self, event: RecordedEvent) -> None:
        try:
            data = _GAME_ITEM.decode(event.payload).data
        except msgspec.DecodeError as error:
            raise CannotApply(f"unified game item {event.event_id!r}: {error}") from None
        tenant, environment, game = event.tenant, event.environment, event.subject
        self.touched[(tenant, environment, game)] = (event.position, event.received_at)
        when, position = time_text(event.occurred_at), event.position
        fields = self.fields
        for name in GAME_FIELDS:
            raw = data.get(name)
            if raw is None:  # absent: the stored value stays
                continue
            value = _field_json(name, raw, event)
            slot = (tenant, environment, game, name)
            current = fields.get(slot)
            if current is None or (when, position) > current[:2]:
                fields[slot] = (when, position, value)


# -- SQL --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Statements:
    upsert_field: str
    fields_of: str
    touch_game: str
    set_catalogue: str
    add_players: str
    stats_of: str
    upsert_stats: str


_STATS_COLUMNS: Final = "rounds, bets, wins, ggr, bonus_bets, bonus_wins, win_count, players"

# Templates: `{games}` and the like are replaced by one build's physical table
# names (from the registry, never from input); values are always parameters.
_SQL: Final = {
    "upsert_field": (
        "INSERT INTO {games_fields} AS cur (tenant, environment, game_id, field, value, time, "
        "position) VALUES (?,?,?,?,?,?,?) "
        "ON CONFLICT (tenant, environment, game_id, field) DO UPDATE SET "
        "value = excluded.value, time = excluded.time, position = excluded.position "
        "WHERE (excluded.time, excluded.position) > (cur.time, cur.position)"
    ),
    "fields_of": (
        "SELECT game_id, field, value FROM {games_fields} WHERE {scope} AND game_id {in_json}"
    ),
    "touch_game": (
        "INSERT INTO {games} AS cur (tenant, environment, game_id, position, updated_at) "
        "VALUES (?,?,?,?,?) ON CONFLICT (tenant, environment, game_id) DO UPDATE SET "
        "updated_at = CASE WHEN excluded.position >= cur.position "
        "THEN excluded.updated_at ELSE cur.updated_at END, "
        "position = CASE WHEN excluded.position > cur.position "
        "THEN excluded.position ELSE cur.position END"
    ),
    "set_catalogue": "UPDATE {games} SET {catalogue_columns} WHERE {scope} AND game_id = ?",
    # One statement per scope both adds the page's players and says which were new:
    # DO NOTHING rows are not RETURNed. (`WHERE true` lets the parser tell the
    # upsert's ON CONFLICT from a join constraint.)
    "add_players": (
        "INSERT INTO {games_players} (tenant, environment, game_id, currency, user_id) "
        "SELECT ?, ?, value ->> 0, value ->> 1, value ->> 2 FROM json_each(?) WHERE true "
        "ON CONFLICT DO NOTHING RETURNING game_id, currency"
    ),
    # CROSS JOIN: walk the page's keys and look each one up by primary key.
    "stats_of": (
        "SELECT s.game_id, s.currency, s.rounds, s.bets, s.wins, s.bonus_bets, s.bonus_wins, "
        "s.win_count, s.players FROM json_each(?) AS k "
        "CROSS JOIN {games_stats} AS s WHERE s.tenant = ? AND s.environment = ? "
        "AND s.game_id = k.value ->> 0 AND s.currency = k.value ->> 1"
    ),
    "upsert_stats": (
        "INSERT INTO {games_stats} (tenant, environment, game_id, currency, "
        "{stats_columns}, position) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT (tenant, environment, game_id, currency) DO UPDATE SET "
        "rounds = excluded.rounds, bets = excluded.bets, wins = excluded.wins, "
        "ggr = excluded.ggr, bonus_bets = excluded.bonus_bets, "
        "bonus_wins = excluded.bonus_wins, win_count = excluded.win_count, "
        "players = excluded.players, "
        "position = excluded.position"
    ),
}

_FRAGMENTS: Final = {
    "scope": "tenant = ? AND environment = ?",
    "in_json": "IN (SELECT value FROM json_each(?))",
    "catalogue_columns": ", ".join(f"{name} = ?" for name in GAME_FIELDS),
    "stats_columns": _STATS_COLUMNS,
}


def _statements(tables: Tables) -> _Statements:
    names = {base: '"' + name.replace('"', '""') + '"' for base, name in tables.items()}
    return _Statements(**{name: sql.format(**names, **_FRAGMENTS) for name, sql in _SQL.items()})


def _by_scope(keys: Iterable[tuple[str, ...]]) -> dict[tuple[str, str], list[tuple[str, ...]]]:
    """Keys grouped by (tenant, environment), the rest of each key in sorted order."""
    grouped: dict[tuple[str, str], list[tuple[str, ...]]] = {}
    for key in sorted(keys):
        grouped.setdefault((key[0], key[1]), []).append(key[2:])
    return grouped


def _json(values: Sequence[Any]) -> str:
    return _encode(values).decode()


def _add_players(
    conn: ViewsConnection, sql: str, members: dict[Scope, set[Member]]
) -> dict[StatsKey, int]:
    """Add the page's players to `games_players`; returns how many were new, per game
    and currency."""
    added: dict[StatsKey, int] = {}
    for (t, e), scoped in members.items():
        # in primary-key order: a set's order would insert all over the B-tree
        for game, currency in conn.execute(sql, (t, e, _encode(sorted(scoped)).decode())):
            key = (t, e, game, currency)
            added[key] = added.get(key, 0) + 1
    return added


def _catalogue_columns(values: dict[str, str]) -> list[Any]:
    columns: list[Any] = []
    for name in GAME_FIELDS:
        text = values.get(name)
        if text is None or text == "null":
            columns.append(None)
        elif name in _LIST_FIELDS:
            columns.append(text)  # kept as JSON text: Datasette shows it as an array
        else:
            columns.append(msgspec.json.decode(text))
    return columns


class _Buffer:
    """Pages folded into one `_Page` until the runner flushes them."""

    __slots__ = ("_fold", "_statements", "_write")

    def __init__(
        self,
        statements: _Statements,
        write: Callable[[ViewsConnection, _Statements, _Page], None],
    ) -> None:
        self._statements = statements
        self._write = write
        self._fold = _Page()

    @property
    def size(self) -> int:
        fold = self._fold
        return (
            len(fold.touched)
            + len(fold.fields)
            + len(fold.money)
            + sum(len(members) for members in fold.players.values())
        )

    def fold(self, page: Sequence[RecordedEvent]) -> None:
        fold = self._fold
        with decimal.localcontext(_EXACT):
            for event in page:
                fold.add(event)

    def flush(self, conn: ViewsConnection) -> None:
        self._write(conn, self._statements, self._fold)


class GamesProjection:
    """The `games` projection (see the module's docstring for the rules)."""

    name = "games"
    catch_up_cost = 1.0  # relative fold cost an event (10 us; `projections.helpers`)
    version = 2  # 2: unreadable track money counts as none instead of stopping
    tables = ("games", "games_fields", "games_stats", "games_players")

    def __init__(self) -> None:
        self._cache: dict[str, _Statements] = {}

    def create(self, db: Any, tables: Tables) -> None:
        scope = {"tenant": str, "environment": str}
        db.table(tables["games"]).create(
            {
                **scope,
                "game_id": str,
                **dict.fromkeys(GAME_FIELDS, str),
                "position": int,
                "updated_at": str,
            },
            pk=("tenant", "environment", "game_id"),
            not_null={"tenant", "environment", "game_id", "position", "updated_at"},
        )
        db.table(tables["games_fields"]).create(
            {**scope, "game_id": str, "field": str, "value": str, "time": str, "position": int},
            pk=("tenant", "environment", "game_id", "field"),
            not_null={"tenant", "environment", "game_id", "field", "value", "time", "position"},
        )
        money = {"bets": str, "wins": str, "ggr": str, "bonus_bets": str, "bonus_wins": str}
        counts = {"rounds": int, "win_count": int, "players": int}
        db.table(tables["games_stats"]).create(
            {**scope, "game_id": str, "currency": str, **counts, **money, "position": int},
            pk=("tenant", "environment", "game_id", "currency"),
            not_null={*scope, "game_id", "currency", *counts, *money, "position"},
            column_order=[
                *scope,
                "game_id",
                "currency",
                "rounds",
                "bets",
                "wins",
                "ggr",
                "bonus_bets",
                "bonus_wins",
                "win_count",
                "players",
                "position",
            ],
        )
        db.table(tables["games_players"]).create(
            {**scope, "game_id": str, "currency": str, "user_id": str},
            pk=("tenant", "environment", "game_id", "currency", "user_id"),
            not_null={*scope, "game_id", "currency", "user_id"},
        )

    def create_read_indexes(self, db: Any, tables: Tables) -> None:
        """`list_games` pages by position and filters by `updated_at`."""
        create_listing_indexes(db, tables["games"], "game_id")

    def _statements(self, tables: Tables) -> _Statements:
        key = tables["games"]
        statements = self._cache.get(key)
        if statements is None:
            statements = self._cache[key] = _statements(tables)
        return statements

    def apply(
        self, page: Sequence[RecordedEvent], conn: ViewsConnection, tables: Tables
    ) -> None:
        buffer = self.buffer(tables)
        buffer.fold(page)
        buffer.flush(conn)

    def buffer(self, tables: Tables) -> _Buffer:
        """Write-behind (`protocol.Buffer`): pages folded into one `_Page` are one
        bigger page."""
        return _Buffer(self._statements(tables), self._write)

    @classmethod
    def _write(cls, conn: ViewsConnection, s: _Statements, fold: _Page) -> None:
        """Merge what `fold` holds into the build's tables."""
        with decimal.localcontext(_EXACT):
            if not fold.touched:
                return
            conn.executemany(
                s.touch_game,
                [
                    (t, e, g, position, time_text(received))
                    for (t, e, g), (position, received) in in_key_order(fold.touched)
                ],
            )
            if fold.fields:
                cls._merge_catalogue(conn, s, fold)
            if fold.money:
                cls._add_play(conn, s, fold)

    @staticmethod
    def _merge_catalogue(conn: ViewsConnection, s: _Statements, fold: _Page) -> None:
        conn.executemany(
            s.upsert_field,
            [
                (t, e, g, name, value, when, position)
                for (t, e, g, name), (when, position, value) in in_key_order(fold.fields)
            ],
        )
        updates: list[tuple[Any, ...]] = []
        for (t, e), rest in _by_scope({key[:3] for key in fold.fields}).items():
            games = [g for (g,) in rest]
            values: dict[str, dict[str, str]] = {g: {} for g in games}
            for game, field, value in conn.execute(s.fields_of, (t, e, _json(games))):
                values[game][field] = value
            updates.extend((*_catalogue_columns(values[g]), t, e, g) for g in games)
        conn.executemany(s.set_catalogue, updates)

    @staticmethod
    def _add_play(conn: ViewsConnection, s: _Statements, fold: _Page) -> None:
        added_players = _add_players(conn, s.add_players, fold.players)

        stored: dict[StatsKey, tuple[Any, ...]] = {}
        for (t, e), rest in _by_scope(fold.money).items():
            for game, currency, *row in conn.execute(s.stats_of, (_json(rest), t, e)):
                stored[(t, e, game, currency)] = tuple(row)
        rows: list[tuple[Any, ...]] = []
        for key, money in in_key_order(fold.money):
            bets, wins, bonus_bets, bonus_wins, rounds, n_wins, position = money
            old = stored.get(key)
            if old is not None:
                rounds0, bets0, wins0, bonus_bets0, bonus_wins0, n_wins0, players0 = old
                bets += Decimal(bets0)
                wins += Decimal(wins0)
                bonus_bets += Decimal(bonus_bets0)
                bonus_wins += Decimal(bonus_wins0)
            else:
                rounds0 = n_wins0 = players0 = 0
            rows.append(
                (
                    *key,
                    rounds0 + rounds,
                    _money_text(bets),
                    _money_text(wins),
                    _money_text(bets - wins),
                    _money_text(bonus_bets),
                    _money_text(bonus_wins),
                    n_wins0 + n_wins,
                    players0 + added_players.get(key, 0),
                    position,
                )
            )
        conn.executemany(s.upsert_stats, rows)


# -- queries ------------------------------------------------------------------------------------


class GameStats(msgspec.Struct, frozen=True, kw_only=True):
    """A game's play in one currency. Amounts are exact (JSON: decimal strings)."""

    rounds: int
    """Bets: one stake is one round (its win pairs with it by `round_id`)."""
    bets: Decimal
    wins: Decimal
    ggr: Decimal
    """bets - wins."""
    bonus_bets: Decimal
    """The part of `bets` staked from the bonus wallet."""
    bonus_wins: Decimal
    """The part of `wins` paid to the bonus wallet."""
    win_count: int
    """Wins (movements of kind `win`)."""
    players: int
    """Distinct user ids with a bet or a win on the game in this currency."""


class Game(msgspec.Struct, frozen=True, kw_only=True):
    """A game as the read model holds it."""

    tenant: str
    environment: str
    game_id: str
    name: str | None
    provider: str | None
    categories: list[str] | None
    features: list[str] | None
    themes: list[str] | None
    device: str | None
    has_freespins: str | None
    """`yes`, `no`, `unknown` or None."""
    stats: dict[str, GameStats]
    """Play per currency code (empty for a game never played)."""
    position: int
    """The highest log position of the events that touched this game."""
    updated_at: datetime
    """`received_at` of the event at `position`."""


class GamePage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[Game]
    next_cursor: str | None
    """Pass it back as `cursor` for the next page; None only when nothing was ever listed."""
    has_more: bool
    """Whether the page was full (ask again at once) or the listing reached the end."""
    position: int
    """The projection's checkpoint: this listing reflects the log up to here."""


_COLUMNS: Final = (
    "tenant, environment, game_id, " + ", ".join(GAME_FIELDS) + ", position, updated_at"
)
_STATS_SELECT: Final = (
    f"SELECT game_id, currency, {_STATS_COLUMNS} FROM games_stats "  # noqa: S608
    "WHERE tenant = ? AND environment = ? AND game_id IN (SELECT value FROM json_each(?)) "
    "ORDER BY game_id, currency"
)
_LISTS: Final = msgspec.json.Decoder(list[str] | None)


def _stats_of(
    conn: ViewsConnection, tenant: str, environment: str, games: list[str]
) -> dict[str, dict[str, GameStats]]:
    found: dict[str, dict[str, GameStats]] = {g: {} for g in games}
    rows = conn.execute(_STATS_SELECT, (tenant, environment, _json(games)))
    for game, currency, rounds, bets, wins, ggr, b_bets, b_wins, n_wins, players in rows:
        found[game][currency] = GameStats(
            rounds=rounds,
            bets=Decimal(bets),
            wins=Decimal(wins),
            ggr=Decimal(ggr),
            bonus_bets=Decimal(b_bets),
            bonus_wins=Decimal(b_wins),
            win_count=n_wins,
            players=players,
        )
    return found


def _game(row: Sequence[Any], stats: dict[str, GameStats]) -> Game:
    (
        tenant,
        environment,
        game_id,
        name,
        provider,
        categories,
        features,
        themes,
        device,
        has_freespins,
        position,
        updated_at,
    ) = row
    return Game(
        tenant=tenant,
        environment=environment,
        game_id=game_id,
        name=name,
        provider=provider,
        categories=None if categories is None else _LISTS.decode(categories),
        features=None if features is None else _LISTS.decode(features),
        themes=None if themes is None else _LISTS.decode(themes),
        device=device,
        has_freespins=has_freespins,
        stats=stats,
        position=position,
        updated_at=parse_time(updated_at),
    )


def get_game(conn: ViewsConnection, tenant: str, environment: str, game_id: str) -> Game | None:
    """The game `game_id` of that tenant and environment, from the active build."""
    try:
        with read_transaction(conn):
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM games "  # noqa: S608
                "WHERE tenant = ? AND environment = ? AND game_id = ?",
                (tenant, environment, game_id),
            ).fetchone()
            if row is None:
                return None
            stats = _stats_of(conn, tenant, environment, [game_id])
    except QUERY_ERRORS as error:
        if is_missing_table(error, "games"):
            return None
        raise
    return _game(row, stats[game_id])


def list_games(
    conn: ViewsConnection,
    tenant: str,
    environment: str,
    *,
    updated_since: datetime | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> GamePage:
    """Games changed after `cursor` (and, if given, received since `updated_since`),
    oldest change first, in pages of `limit` (1 to 1000), each with its stats.

    Order is by (position, game_id): a game that changes while a poller pages
    (a new round, a catalogue update) gets a higher position and so comes again
    later; nothing is missed. A poller asks with `updated_since` once, then
    keeps passing `next_cursor` (it is returned even when the page is empty,
    pointing at the checkpoint). Raises `InvalidCursorError` for a cursor it
    did not make.
    """
    listing = list_changed(
        conn,
        projection="games",
        table="games",
        key="game_id",
        columns=_COLUMNS,
        tenant=tenant,
        environment=environment,
        updated_since=updated_since,
        limit=limit,
        cursor=cursor,
        enrich=lambda c, rows: _stats_of(c, tenant, environment, [row[2] for row in rows]),
    )
    stats = listing.extra or {}
    return GamePage(
        items=[_game(row, stats[row[2]]) for row in listing.rows],
        next_cursor=listing.next_cursor,
        has_more=listing.has_more,
        position=listing.position,
    )
