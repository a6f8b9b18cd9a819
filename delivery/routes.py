"""Admin API for destinations (scope `admin`), within the caller's tenant and
environment: an admin token of casino-a/live sees and changes only casino-a/live's
destinations, and cannot create one for another tenant.

The app wires these in beside `api.routes_admin.ADMIN_ROUTES`; they use only the
log (`services_of(request).log`), where the destinations are kept as records.
"""

from __future__ import annotations

import asyncio
import re
from datetime import datetime
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, delete, get, post
from litestar.openapi.spec import (
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    Reference,
    RequestBody,
)
from litestar.params import FromPath

from api.auth import Principal
from api.openapi import ErrorBody, ValidationErrorBody, json_answer, register_schemas
from api.responses import error, json_response
from api.routes_ingest import ingest_guard, services_of
from delivery.config import Destination, DestinationError
from delivery.operations import (
    DestinationStatus,
    ReplayError,
    dead_letter_view,
    public_settings,
    replay,
    status_of,
)
from delivery.store import DeadLetter, DestinationStore

__all__ = ["DESTINATION_ROUTES", "document_destination_routes"]

_ADMIN = {"scope": "admin"}
_TAGS = ["Admin: destinations"]
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


class ReplayRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    from_position: int | None = None
    """Deliver again from this log position (included)."""
    from_time: datetime | None = None
    """Deliver again the events received from this time (ISO 8601 with a zone)."""


def _who(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _store(request: Request[Any, Any, Any]) -> DestinationStore:
    return DestinationStore(services_of(request).log)


def _invalid(message: str, body: Any = None) -> Response[bytes]:
    """422 in the API's validation shape; `loc` from msgspec's "- at `$.a.b`" suffix."""
    loc: list[str | int] = ["body"]
    found = _AT.search(message)
    if found:
        message = message[: found.start()]
        for name, index in _PART.findall(found.group("path")):
            loc.append(int(index) if index else name)
    field = message.split(":", 1)[0]
    if field.isidentifier() and not (len(loc) > 1 and loc[-1] == field):
        loc.append(field)
    return json_response(
        {"detail": [{"loc": loc, "msg": message, "type": "value_error", "input": body, "ctx": {}}]},
        422,
    )


def _not_found(name: str, who: Principal) -> Response[bytes]:
    return error(404, "not_found", f"no destination {name!r} in {who.tenant}/{who.environment}")


def _view(store: DestinationStore, destination: Destination) -> dict[str, Any]:
    return {
        **public_settings(destination),
        "status": msgspec.to_builtins(status_of(store, destination)),
    }


@get(
    "/v1/admin/destinations",
    opt=_ADMIN,
    guards=[ingest_guard],
    tags=_TAGS,
    summary="This tenant's destinations in this environment, with their delivery status",
)
async def list_destinations(request: Request[Any, Any, Any]) -> Response[bytes]:
    who, store = _who(request), _store(request)

    def views() -> list[dict[str, Any]]:
        return [_view(store, d) for d in store.destinations(who.tenant, who.environment)]

    return json_response({"destinations": await asyncio.to_thread(views)}, 200)


@post(
    "/v1/admin/destinations",
    opt=_ADMIN,
    guards=[ingest_guard],
    tags=_TAGS,
    summary="Create (201) or replace (200) a destination of this tenant and environment",
)
async def put_destination(request: Request[Any, Any, Any]) -> Response[bytes]:
    who, store = _who(request), _store(request)
    try:
        raw = msgspec.json.decode(await request.body())
    except msgspec.DecodeError as problem:
        return _invalid(f"body is not JSON: {problem}")
    if not isinstance(raw, dict):
        return _invalid("body: must be a JSON object describing one destination", raw)
    for field, mine in (("tenant", who.tenant), ("environment", who.environment)):
        if raw.setdefault(field, mine) != mine:
            return error(
                403,
                "forbidden",
                f"{field}: this token acts for {who.tenant}/{who.environment} only",
            )
    try:
        destination = msgspec.convert(raw, Destination)
    except msgspec.ValidationError as problem:
        return _invalid(str(problem))
    except DestinationError as problem:  # pragma: no cover - convert wraps __post_init__
        return _invalid(str(problem))
    created = await asyncio.to_thread(store.put, destination)
    view = await asyncio.to_thread(_view, store, destination)
    return json_response(view, 201 if created else 200)


@get(
    "/v1/admin/destinations/{name:str}",
    opt=_ADMIN,
    guards=[ingest_guard],
    tags=_TAGS,
    summary="One destination's settings and delivery status",
)
async def get_destination(request: Request[Any, Any, Any], name: FromPath[str]) -> Response[bytes]:
    who, store = _who(request), _store(request)
    destination = await asyncio.to_thread(store.get, who.tenant, who.environment, name)
    if destination is None:
        return _not_found(name, who)
    return json_response(await asyncio.to_thread(_view, store, destination), 200)


@delete(
    "/v1/admin/destinations/{name:str}",
    opt=_ADMIN,
    guards=[ingest_guard],
    tags=_TAGS,
    status_code=200,
    summary="Delete a destination, its checkpoint and its dead letters",
)
async def delete_destination(
    request: Request[Any, Any, Any], name: FromPath[str]
) -> Response[bytes]:
    who, store = _who(request), _store(request)
    destination = await asyncio.to_thread(store.get, who.tenant, who.environment, name)
    if destination is None:
        return _not_found(name, who)
    await asyncio.to_thread(store.delete, destination)
    return json_response({"deleted": name}, 200)


@get(
    "/v1/admin/destinations/{name:str}/dead-letters",
    opt=_ADMIN,
    guards=[ingest_guard],
    tags=_TAGS,
    summary="Events delivery gave up on, in log order",
)
async def list_dead_letters(
    request: Request[Any, Any, Any], name: FromPath[str]
) -> Response[bytes]:
    who, store = _who(request), _store(request)
    destination = await asyncio.to_thread(store.get, who.tenant, who.environment, name)
    if destination is None:
        return _not_found(name, who)
    letters = await asyncio.to_thread(store.dead_letters, destination)
    return json_response({"dead_letters": [dead_letter_view(x) for x in letters]}, 200)


@post(
    "/v1/admin/destinations/{name:str}/replay",
    opt=_ADMIN,
    guards=[ingest_guard],
    tags=_TAGS,
    status_code=200,
    summary="Deliver again from a log position or a time (receivers dedup by event id)",
)
async def replay_destination(
    request: Request[Any, Any, Any], name: FromPath[str]
) -> Response[bytes]:
    who, store = _who(request), _store(request)
    try:
        asked = msgspec.json.decode(await request.body(), type=ReplayRequest)
    except (msgspec.DecodeError, msgspec.ValidationError) as problem:
        return _invalid(str(problem))
    destination = await asyncio.to_thread(store.get, who.tenant, who.environment, name)
    if destination is None:
        return _not_found(name, who)
    try:
        checkpoint = await asyncio.to_thread(
            replay,
            store,
            destination,
            from_position=asked.from_position,
            from_time=asked.from_time,
        )
    except ReplayError as problem:
        return _invalid(str(problem))
    return json_response({"name": name, "checkpoint": checkpoint}, 200)


DESTINATION_ROUTES = [
    list_destinations,
    put_destination,
    get_destination,
    delete_destination,
    list_dead_letters,
    replay_destination,
]


_DestinationView = msgspec.defstruct(
    "DestinationView",
    [
        *((f.name, f.type, f.default) for f in msgspec.structs.fields(Destination)),
        ("status", DestinationStatus),
    ],
    kw_only=True,
)
_DeadLetterView = msgspec.defstruct(
    "DeadLetterView",
    [
        (f.name, str | None if f.name in ("first_failure", "dead_lettered_at") else f.type)
        for f in msgspec.structs.fields(DeadLetter)
    ],
    kw_only=True,
)


class DestinationList(msgspec.Struct):
    destinations: list[_DestinationView]  # type: ignore[valid-type]


class DeadLetterList(msgspec.Struct):
    dead_letters: list[_DeadLetterView]  # type: ignore[valid-type]


class Deleted(msgspec.Struct):
    deleted: str


class Replayed(msgspec.Struct):
    name: str
    checkpoint: int
    """Delivery goes on after this position."""


def document_destination_routes(app: Litestar) -> None:
    """The bodies these handlers really send and take (they encode their own)."""
    paths = register_schemas(
        app,
        [
            Destination,
            _DestinationView,
            DestinationList,
            DeadLetterList,
            Deleted,
            Replayed,
            ReplayRequest,
            ErrorBody,
            ValidationErrorBody,
        ],
    )
    refused = {
        "401": json_answer(
            "Missing or malformed Authorization header; or an invalid, revoked or expired token",
            "ErrorBody",
        ),
        "403": json_answer(
            "Token scope insufficient, or another tenant's destination", "ErrorBody"
        ),
        "429": json_answer("Rate limit for this token exceeded; see Retry-After", "ErrorBody"),
    }
    unknown = {"404": json_answer("No such destination here", "ErrorBody")}
    invalid = {
        "422": json_answer("The body is invalid (`loc` names the field)", "ValidationErrorBody")
    }
    base, one = "/v1/admin/destinations", "/v1/admin/destinations/{name}"
    documented: list[tuple[str, str, dict[str, OpenAPIResponse], str | None]] = [
        (base, "get", {"200": json_answer("The destinations", "DestinationList")}, None),
        (
            base,
            "post",
            {
                "200": json_answer("Replaced", "DestinationView"),
                "201": json_answer("Created", "DestinationView"),
                **invalid,
            },
            "Destination",
        ),
        (one, "get", {"200": json_answer("The destination", "DestinationView"), **unknown}, None),
        (one, "delete", {"200": json_answer("Deleted", "Deleted"), **unknown}, None),
        (
            f"{one}/dead-letters",
            "get",
            {"200": json_answer("Dead letters, in log order", "DeadLetterList"), **unknown},
            None,
        ),
        (
            f"{one}/replay",
            "post",
            {
                "200": json_answer("Delivery restarts after `checkpoint`", "Replayed"),
                **unknown,
                **invalid,
            },
            "ReplayRequest",
        ),
    ]
    for path, method, answers, body in documented:
        operation: Operation | None = getattr(paths[path], method)
        if operation is None:
            continue
        operation.responses = {**answers, **refused}
        if body is not None:
            operation.request_body = RequestBody(
                content={
                    "application/json": OpenAPIMediaType(
                        schema=Reference(ref=f"#/components/schemas/{body}")
                    )
                },
                required=True,
            )
