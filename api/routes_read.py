"""The read API (scope `projections:read`): players, their ledgers, and games.

Tenant and environment come from the token, so another tenant's ids are simply
unknown (404). Every body says the log `position` it reflects; `?min_position=N`
first waits (at most `min_position_timeout` seconds) until the projection has
applied the log up to N, so a client can read its own writes; when it has not
got there in time the answer is 503 `projection_behind` with `Retry-After`.
Queries run in a worker thread, on that thread's read connection, in one
snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from litestar import Litestar, Request, Response, get
from litestar.enums import ParamType
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Parameter, Schema
from litestar.params import FromPath

from api.auth import Principal
from api.openapi import ErrorBody, ValidationErrorBody, json_answer, register_schemas
from api.reads import (
    GameBody,
    GamesPageBody,
    LedgerBody,
    PlayerBody,
    PlayersPageBody,
    QueryParams,
    game_body,
    games_page_body,
    ledger_body,
    player_body,
    players_page_body,
    query_int,
    query_text,
    query_time,
    unreadable_body,
)
from api.responses import error, json_response
from api.routes_ingest import ingest_guard, services_of
from projections import MOVEMENT_KINDS
from projections.database import ViewsConnection

__all__ = ["READ_ROUTES", "document_read_routes"]

_READ = {"scope": "projections:read"}
_MAX_POSITION = 2**63 - 1
MAX_PAGE = 1000

Body = dict[str, Any] | None
Read = Callable[[ViewsConnection], Body]


class PageBody(Protocol):
    def __call__(
        self,
        conn: ViewsConnection,
        tenant: str,
        environment: str,
        *,
        updated_since: datetime | None,
        limit: int,
        cursor: str | None,
    ) -> Body: ...


def _paging(params: QueryParams) -> tuple[int, str | None]:
    limit = query_int(params, "limit", default=100, lo=1, hi=MAX_PAGE) or 100
    return limit, params.get("cursor") or None  # `cursor=` (empty): from the start


async def _listing(
    request: Request[Any, Any, Any], projection: str, page_body: PageBody
) -> Response[bytes]:
    """`GET /v1/players` and `GET /v1/games`: changed since a cursor or a time."""
    who, params = _principal(request), request.query_params
    since = query_time(params, "updated_since")
    limit, cursor = _paging(params)
    return await _answer(
        request,
        projection,
        lambda conn: page_body(
            conn, who.tenant, who.environment, updated_since=since, limit=limit, cursor=cursor
        ),
        "",
    )


def _principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal


async def _answer(
    request: Request[Any, Any, Any],
    projection: str,
    read: Read,
    missing: str,
    *,
    point: bool = False,
) -> Response[bytes]:
    """Wait for `?min_position`, run `read`, map None to 404.

    A `point` read (one row by its key: tens of microseconds, and a WAL reader
    never waits for the runner) runs on the event loop: a hop to a worker
    thread would cost more than the query and add its queueing to the p99.
    Listings, whose cost grows with the page, run in a worker thread.
    Handlers parse their other parameters before calling this, so a bad one is
    a 422 at once, not after the wait."""
    services = services_of(request)
    wanted = query_int(request.query_params, "min_position", default=None, lo=0, hi=_MAX_POSITION)
    if wanted is not None:
        reached = await services.projections.wait_for_position(
            projection, wanted, services.settings.min_position_timeout
        )
        if not reached:
            return error(
                503,
                "projection_behind",
                f"the {projection} projection has not reached position {wanted} within "
                f"{services.settings.min_position_timeout:g} s; retry later",
                **{"Retry-After": "1"},
            )

    def run() -> Body:
        with services.projections.reader() as conn:
            return read(conn)

    body = run() if point else await asyncio.to_thread(run)
    if body is None:
        return error(404, "not_found", missing)
    return json_response(body, 200)


@get(
    "/v1/players/{user_id:str}",
    opt=_READ,
    guards=[ingest_guard],
    tags=["Read models"],
    summary="One player: merged traits, profile fields, activity and money",
)
async def read_player(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[bytes]:
    who = _principal(request)
    return await _answer(
        request,
        "players",
        lambda conn: player_body(conn, who.tenant, who.environment, user_id),
        f"no player {user_id!r} in this tenant and environment",
        point=True,
    )


@get(
    "/v1/players",
    opt=_READ,
    guards=[ingest_guard],
    tags=["Read models"],
    summary="Players changed since a cursor or a time, oldest change first",
)
async def read_players(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _listing(request, "players", players_page_body)


@get(
    "/v1/players/{user_id:str}/ledger",
    opt=_READ,
    guards=[ingest_guard],
    tags=["Read models"],
    summary="A player's money movements, oldest first by event time",
)
async def read_ledger(request: Request[Any, Any, Any], user_id: FromPath[str]) -> Response[bytes]:
    who, params = _principal(request), request.query_params
    kind = query_text(params, "kind", choices=MOVEMENT_KINDS)
    from_, to = query_time(params, "from"), query_time(params, "to")
    limit, cursor = _paging(params)
    return await _answer(
        request,
        "ledger",
        lambda conn: ledger_body(
            conn,
            who.tenant,
            who.environment,
            user_id,
            kind=kind,
            from_=from_,
            to=to,
            limit=limit,
            cursor=cursor,
        ),
        f"no player {user_id!r} in this tenant and environment",
    )


@get(
    "/v1/games/{game_id:str}",
    opt=_READ,
    guards=[ingest_guard],
    tags=["Read models"],
    summary="One game: catalogue fields and play per currency",
)
async def read_game(request: Request[Any, Any, Any], game_id: FromPath[str]) -> Response[bytes]:
    who = _principal(request)
    return await _answer(
        request,
        "games",
        lambda conn: game_body(conn, who.tenant, who.environment, game_id),
        f"no game {game_id!r} in this tenant and environment",
        point=True,
    )


@get(
    "/v1/games",
    opt=_READ,
    guards=[ingest_guard],
    tags=["Read models"],
    summary="Games changed since a cursor or a time, oldest change first",
)
async def read_games(request: Request[Any, Any, Any]) -> Response[bytes]:
    return await _listing(request, "games", games_page_body)


@get(
    "/v1/admin/ledger/unreadable",
    opt={"scope": "admin"},
    guards=[ingest_guard],
    tags=["Admin"],
    summary="Track money events whose amount or currency could not be read (counted nowhere)",
)
async def read_unreadable(request: Request[Any, Any, Any]) -> Response[bytes]:
    who, params = _principal(request), request.query_params
    limit, cursor = _paging(params)
    return await _answer(
        request,
        "ledger",
        lambda conn: unreadable_body(conn, who.tenant, who.environment, limit=limit, cursor=cursor),
        "",
    )


READ_ROUTES = [read_player, read_players, read_ledger, read_game, read_games, read_unreadable]


def _query(name: str, description: str, schema: Schema) -> Parameter:
    return Parameter(
        name=name, param_in=ParamType.QUERY, description=description, required=False, schema=schema
    )


_MIN_POSITION = _query(
    "min_position",
    "Wait (bounded) until the read model has applied the log up to this position "
    "(the `X-Log-Position` of your write); 503 `projection_behind` if it does not in time",
    Schema(type=OpenAPIType.INTEGER, minimum=0),
)
_LISTING = [
    _query(
        "updated_since",
        "Only rows changed (received) at or after this instant (ISO 8601 with a zone)",
        Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
    ),
    _query(
        "limit",
        f"Page size, 1 to {MAX_PAGE} (default 100)",
        Schema(type=OpenAPIType.INTEGER, minimum=1, maximum=MAX_PAGE),
    ),
    _query("cursor", "`next_cursor` of the previous page", Schema(type=OpenAPIType.STRING)),
]
_LEDGER = [
    _query(
        "kind",
        "Only this kind of movement",
        Schema(type=OpenAPIType.STRING, enum=list(MOVEMENT_KINDS)),
    ),
    _query(
        "from",
        "Movements at or after this event time (ISO 8601 with a zone)",
        Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
    ),
    _query(
        "to",
        "Movements before this event time (ISO 8601 with a zone)",
        Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
    ),
    *_LISTING[1:],
]


def document_read_routes(app: Litestar) -> None:
    """The bodies and query parameters these handlers really use (they parse and
    encode their own, so Litestar cannot see them)."""
    paths = register_schemas(
        app,
        [
            PlayerBody,
            PlayersPageBody,
            GameBody,
            GamesPageBody,
            LedgerBody,
            ErrorBody,
            ValidationErrorBody,
        ],
    )
    refused = {
        "401": json_answer(
            "Missing or malformed Authorization header; or an invalid, revoked or expired token",
            "ErrorBody",
        ),
        "403": json_answer("Token scope insufficient", "ErrorBody"),
        "422": json_answer("A query parameter is invalid (`loc` names it)", "ValidationErrorBody"),
        "429": json_answer("Rate limit for this token exceeded; see Retry-After", "ErrorBody"),
        "503": json_answer(
            "`min_position` not reached within the wait; see Retry-After", "ErrorBody"
        ),
    }
    unknown = {"404": json_answer("Unknown in this tenant and environment", "ErrorBody")}
    documented = {
        "/v1/players/{user_id}": ("PlayerBody", [_MIN_POSITION], unknown),
        "/v1/players": ("PlayersPageBody", [*_LISTING, _MIN_POSITION], {}),
        "/v1/players/{user_id}/ledger": ("LedgerBody", [*_LEDGER, _MIN_POSITION], unknown),
        "/v1/games/{game_id}": ("GameBody", [_MIN_POSITION], unknown),
        "/v1/games": ("GamesPageBody", [*_LISTING, _MIN_POSITION], {}),
        "/v1/admin/ledger/unreadable": ("UnreadablePage", [*_LISTING[1:], _MIN_POSITION], {}),
    }
    for path, (body, parameters, missing) in documented.items():
        operation = paths[path].get
        if operation is None:
            continue
        operation.responses = {
            "200": json_answer(
                "The read model's answer; `position` is the log position it reflects", body
            ),
            **missing,
            **refused,
        }
        operation.parameters = [*(operation.parameters or []), *parameters]
