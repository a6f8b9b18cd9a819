"""What the read API answers, as JSON-ready builtins, from one read-model snapshot.

Each function runs its queries in one read transaction (one WAL snapshot: it
never blocks the runner, and the checkpoint it reports is the one the rows
come from) and returns the body, or None for an unknown id.

Every body says the log position it reflects in `position`: the checkpoint of
the projection that answered. A client that wrote at position P reads its own
writes once `position >= P` (or asks with `?min_position=P`, which waits).
Single entities also carry `changed_position`, the highest log position of the
events that changed that row.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import msgspec

from ingest import ErrorDetail, RequestInvalid
from projections import (
    Game,
    GamePage,
    InvalidCursorError,
    InvalidLedgerCursorError,
    LedgerPage,
    MoneyTotals,
    Player,
    PlayerPage,
    Unconverted,
    active_position,
    get_game,
    get_ledger,
    get_player,
    list_games,
    list_players,
    list_unreadable,
    read_transaction,
)
from projections.database import ViewsConnection

__all__ = [
    "GameBody",
    "GamesPageBody",
    "LedgerBody",
    "PlayerBody",
    "PlayersPageBody",
    "QueryParams",
    "game_body",
    "games_page_body",
    "ledger_body",
    "player_body",
    "players_page_body",
    "query_int",
    "query_text",
    "query_time",
    "unreadable_body",
]

QueryParams = Mapping[str, str]

_T = TypeVar("_T")

_HIDDEN = ("tenant", "environment")


def _invalid(name: str, message: str, value: object, kind: str) -> RequestInvalid:
    return RequestInvalid([ErrorDetail(["query", name], message, kind, value, {})])


def query_int(
    params: QueryParams, name: str, *, default: int | None, lo: int, hi: int
) -> int | None:
    """An integer query parameter in [lo, hi]; 422 naming it otherwise."""
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _invalid(name, "Input should be a valid integer", text, "int_parsing") from None
    if not lo <= value <= hi:
        raise _invalid(name, f"Input should be between {lo} and {hi}", text, "value_error")
    return value


def query_time(params: QueryParams, name: str) -> datetime | None:
    """An ISO 8601 instant with a zone (`Z` or an offset); 422 naming it otherwise."""
    text = params.get(name)
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace(" ", "+"))  # a `+` left unescaped
    except ValueError:
        raise _invalid(
            name, "Input should be an ISO 8601 date-time with a zone", text, "datetime_parsing"
        ) from None
    if moment.utcoffset() is None:
        raise _invalid(
            name, "Input should have a time zone (Z or an offset)", text, "timezone_aware"
        )
    return moment


def query_text(
    params: QueryParams, name: str, *, choices: tuple[str, ...] | None = None
) -> str | None:
    """A text query parameter, one of `choices` when given; 422 naming it otherwise."""
    text = params.get(name)
    if text is None:
        return None
    if choices is not None and text not in choices:
        raise _invalid(name, f"Input should be one of {', '.join(choices)}", text, "enum")
    if not text:
        raise _invalid(name, "Input should not be empty", text, "string_too_short")
    return text


def _snapshot(conn: ViewsConnection, projection: str, read: Callable[[], _T]) -> tuple[int, _T]:
    with read_transaction(conn):
        return active_position(conn, projection) or 0, read()


def _body_struct(
    name: str, source: type[msgspec.Struct], drop: tuple[str, ...], add: list[tuple[str, Any]]
) -> type[msgspec.Struct]:
    """A response shape: `source`'s fields without `drop`, then `add` (for the
    OpenAPI document; the bodies are built as dicts of exactly these keys)."""
    kept = [(f.name, f.type) for f in msgspec.structs.fields(source) if f.name not in drop]
    return msgspec.defstruct(name, [*kept, *add], kw_only=True)


_ENTITY_DROP = (*_HIDDEN, "position")
_PLAYER_DROP = (*_ENTITY_DROP, "money")
_MONEY: list[tuple[str, Any]] = [
    ("money", dict[str, MoneyTotals]),
    ("money_unconverted", dict[str, Unconverted]),
]
PlayerListItem = _body_struct(
    "PlayerListItem", Player, _PLAYER_DROP, [("changed_position", int), *_MONEY]
)
PlayerBody = _body_struct(
    "PlayerBody", Player, _PLAYER_DROP, [("changed_position", int), *_MONEY, ("position", int)]
)
GameListItem = _body_struct("GameListItem", Game, _ENTITY_DROP, [("changed_position", int)])
GameBody = _body_struct(
    "GameBody", Game, _ENTITY_DROP, [("changed_position", int), ("position", int)]
)
PlayersPageBody = _body_struct(
    "PlayersPageBody",
    PlayerPage,
    ("items",),
    [("items", list[PlayerListItem])],  # type: ignore[valid-type]
)
GamesPageBody = _body_struct("GamesPageBody", GamePage, ("items",), [("items", list[GameListItem])])  # type: ignore[valid-type]
LedgerBody = LedgerPage
"""The response shapes, for the OpenAPI document."""


def _item(value: msgspec.Struct) -> dict[str, Any]:
    """An entity as the API shows it: no tenant/environment (the token's), its own
    last change as `changed_position`, and a player's money keyed by currency."""
    body: dict[str, Any] = msgspec.to_builtins(value)
    for hidden in _HIDDEN:
        body.pop(hidden, None)
    body["changed_position"] = body.pop("position")
    money = body.pop("money", None)
    if money is not None:
        body["money"] = {
            **{code: totals for code, totals in money["currencies"].items() if code != "EUR"},
            "EUR": money["eur"],
        }
        body["money_unconverted"] = money["unconverted"]
    return body


def _entity(value: msgspec.Struct, checkpoint: int) -> dict[str, Any]:
    body = _item(value)
    body["position"] = checkpoint
    return body


def player_body(
    conn: ViewsConnection, tenant: str, environment: str, user_id: str
) -> dict[str, Any] | None:
    """`GET /v1/players/{user_id}`.

    `money` is keyed by currency code, each in its own currency, plus `EUR`:
    everything that converts, in EUR (movements in EUR as they are, the others
    by their `amount_eur` or the rates file); what has no EUR figure is counted
    per currency in `money_unconverted` instead of being guessed.
    """
    checkpoint, player = _snapshot(
        conn, "players", lambda: get_player(conn, tenant, environment, user_id)
    )
    return None if player is None else _entity(player, checkpoint)


def game_body(
    conn: ViewsConnection, tenant: str, environment: str, game_id: str
) -> dict[str, Any] | None:
    """`GET /v1/games/{game_id}`: catalogue fields and play `stats` per currency."""
    checkpoint, game = _snapshot(
        conn, "games", lambda: get_game(conn, tenant, environment, game_id)
    )
    return None if game is None else _entity(game, checkpoint)


def games_page_body(
    conn: ViewsConnection,
    tenant: str,
    environment: str,
    *,
    updated_since: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """`GET /v1/games`: like `GET /v1/players`."""
    try:
        page = list_games(
            conn, tenant, environment, updated_since=updated_since, limit=limit, cursor=cursor
        )
    except InvalidCursorError as problem:
        raise _invalid("cursor", str(problem), cursor, "value_error") from None
    return _page(page)


def ledger_body(
    conn: ViewsConnection,
    tenant: str,
    environment: str,
    user_id: str,
    *,
    kind: str | None,
    from_: datetime | None,
    to: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any] | None:
    """`GET /v1/players/{user_id}/ledger`: the player's movements (and those of its
    linked anonymous ids), oldest first by event time; None (404) for an id that
    is neither a player nor in the ledger."""
    try:
        page = get_ledger(
            conn,
            tenant,
            environment,
            user_id,
            kind=kind,
            from_=from_,
            to=to,
            cursor=cursor,
            limit=limit,
        )
    except InvalidLedgerCursorError as problem:
        raise _invalid("cursor", str(problem), cursor, "value_error") from None
    if not page.items and cursor is None and get_player(conn, tenant, environment, user_id) is None:
        return None
    body: dict[str, Any] = msgspec.to_builtins(page)
    return body


def players_page_body(
    conn: ViewsConnection,
    tenant: str,
    environment: str,
    *,
    updated_since: datetime | None,
    limit: int,
    cursor: str | None,
) -> dict[str, Any]:
    """`GET /v1/players`: `items` (oldest change first, each with its
    `changed_position`), `next_cursor`, `has_more`, and `position`."""
    try:
        page = list_players(
            conn, tenant, environment, updated_since=updated_since, limit=limit, cursor=cursor
        )
    except InvalidCursorError as problem:
        raise _invalid("cursor", str(problem), cursor, "value_error") from None
    return _page(page)


def _page(page: PlayerPage | GamePage) -> dict[str, Any]:
    return {
        "items": [_item(item) for item in page.items],
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
        "position": page.position,
    }


def unreadable_body(
    conn: ViewsConnection, tenant: str, environment: str, *, limit: int, cursor: str | None
) -> dict[str, Any]:
    """`GET /v1/admin/ledger/unreadable`: track money events whose money could not
    be read (so they count nowhere), in log order."""
    try:
        page = list_unreadable(conn, tenant, environment, limit=limit, cursor=cursor)
    except InvalidLedgerCursorError as problem:
        raise _invalid("cursor", str(problem), cursor, "value_error") from None
    body: dict[str, Any] = msgspec.to_builtins(page)
    return body
