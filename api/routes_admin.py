"""Admin API (scope `admin`): tokens, tenant settings, what operators must see.

An admin token acts within its own tenant and environment: it cannot mint a
token for another tenant, nor a live token from staging. Operators with access
to the database use `playerlog tokens ...` for any tenant.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import FromPath

from api.auth import Principal
from api.responses import error, json_response
from api.routes_ingest import ingest_guard, services_of
from api.tenants import TenantSettings
from api.tokens import TokenError, parse_duration

__all__ = ["ADMIN_ROUTES"]

_ADMIN = {"scope": "admin"}


class NewToken(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    scopes: list[str]
    name: str = ""
    expires_in: str | None = None
    """e.g. `30d`, `12h`; none: never expires."""


def _principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.state.principal
    return principal


def _bad_request(message: str) -> Response[bytes]:
    return json_response(
        {"detail": [{"loc": ["body"], "msg": message, "type": "value_error", "input": None,
                     "ctx": {}}]},
        422,
    )


@post("/v1/admin/tokens", opt=_ADMIN, guards=[ingest_guard], tags=["Admin"],
      summary="Create a token for this tenant and environment (the secret is shown once)")
async def create_token(request: Request[Any, Any, Any]) -> Response[bytes]:
    who = _principal(request)
    try:
        spec = msgspec.json.decode(await request.body(), type=NewToken)
        expires = parse_duration(spec.expires_in) if spec.expires_in else None
        token, secret = await asyncio.to_thread(
            services_of(request).tokens.create,
            tenant=who.tenant,
            environment=who.environment,
            scopes=spec.scopes,
            name=spec.name,
            expires_in=expires,
        )
    except (msgspec.DecodeError, TokenError) as problem:
        return _bad_request(str(problem))
    return json_response({**msgspec.to_builtins(token), "token": secret}, 201)


@get("/v1/admin/tokens", opt=_ADMIN, guards=[ingest_guard], tags=["Admin"],
     summary="List this tenant's tokens (never their secrets)")
async def list_tokens(request: Request[Any, Any, Any]) -> Response[bytes]:
    who = _principal(request)
    tokens = await asyncio.to_thread(services_of(request).tokens.list, who.tenant)
    mine = [t for t in tokens if t.environment == who.environment]
    return json_response({"tokens": mine}, 200)


@delete("/v1/admin/tokens/{token_id:str}", opt=_ADMIN, guards=[ingest_guard], tags=["Admin"],
        status_code=200, summary="Revoke a token")
async def revoke_token(
    request: Request[Any, Any, Any], token_id: FromPath[str]
) -> Response[bytes]:
    who = _principal(request)
    tokens = services_of(request).tokens
    found = await asyncio.to_thread(tokens.get, token_id)
    if found is None or (found.tenant, found.environment) != (who.tenant, who.environment):
        return error(404, "not_found", f"no token {token_id} in this tenant and environment")
    revoked = await asyncio.to_thread(tokens.revoke, token_id)
    return json_response(revoked, 200)


@get("/v1/admin/settings", opt=_ADMIN, guards=[ingest_guard], tags=["Admin"],
     summary="This tenant's settings in this environment (event catalogue mode)")
async def get_settings(request: Request[Any, Any, Any]) -> Response[bytes]:
    who = _principal(request)
    return json_response(services_of(request).tenants.get(who.tenant, who.environment), 200)


@put("/v1/admin/settings", opt=_ADMIN, guards=[ingest_guard], tags=["Admin"],
     summary="Change this tenant's settings in this environment: catalogue_mode off, "
     "warn or strict")
async def put_settings(request: Request[Any, Any, Any]) -> Response[bytes]:
    who = _principal(request)
    try:
        settings = msgspec.json.decode(await request.body(), type=TenantSettings)
    except msgspec.DecodeError as problem:
        return _bad_request(str(problem))
    await asyncio.to_thread(
        services_of(request).tenants.put, who.tenant, who.environment, settings
    )
    return json_response(settings, 200)


@get("/v1/admin/conflicts", opt=_ADMIN, guards=[ingest_guard], tags=["Admin"],
     summary="Unified items dropped because their unique_id was stored with other content")
async def list_conflicts(request: Request[Any, Any, Any]) -> Response[bytes]:
    who = _principal(request)
    conflicts = await asyncio.to_thread(services_of(request).ingest.conflicts, who)
    return json_response({"conflicts": conflicts}, 200)


@get("/v1/admin/catalogue/findings", opt=_ADMIN, guards=[ingest_guard], tags=["Admin"],
     summary="Latest event-catalogue findings (warn mode) seen by this process")
async def list_findings(request: Request[Any, Any, Any]) -> Response[bytes]:
    who = _principal(request)
    findings = [
        f for f in services_of(request).findings
        if (f.tenant, f.environment) == (who.tenant, who.environment)
    ]
    return json_response({"findings": findings}, 200)


ADMIN_ROUTES = [
    create_token, list_tokens, revoke_token, get_settings, put_settings, list_conflicts,
    list_findings,
]
