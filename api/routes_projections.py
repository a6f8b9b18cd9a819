"""Projections for operators: their status (scope `projections:read`) and a
side-by-side rebuild (scope `admin`). Each handler parses, calls the
`ProjectionsService`, and maps the outcome."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Litestar, Request, Response, get, post
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, Reference
from litestar.params import FromPath

from api.auth import Principal
from api.openapi import ErrorBody, _convert
from api.projections_service import (
    ProjectionsReport,
    ProjectionsService,
    RebuildAlreadyRunning,
    UnknownProjection,
)
from api.responses import error, json_response
from api.routes_ingest import ingest_guard, services_of
from projections import ProjectionStatus

__all__ = ["PROJECTION_ROUTES", "document_projection_routes"]

_READ = {"scope": "projections:read"}
_ADMIN = {"scope": "admin"}
_REF = "#/components/schemas/{name}"


def _viewer(request: Request[Any, Any, Any]) -> tuple[str, str]:
    principal: Principal = request.state.principal
    return principal.tenant, principal.environment


def _service(request: Request[Any, Any, Any]) -> ProjectionsService:
    return services_of(request).projections


@get("/v1/projections", opt=_READ, guards=[ingest_guard], tags=["Projections"],
     summary="Every projection's version, position, head, lag, state and last error")
async def list_projections(request: Request[Any, Any, Any]) -> Response[bytes]:
    report = await asyncio.to_thread(_service(request).status, viewer=_viewer(request))
    return json_response(report, 200)


@post("/v1/admin/projections/{name:str}/rebuild", opt=_ADMIN, guards=[ingest_guard],
      tags=["Admin"], status_code=202,
      summary="Rebuild a projection from zero beside the active build; it swaps in at the head")
async def rebuild_projection(
    request: Request[Any, Any, Any], name: FromPath[str]
) -> Response[bytes]:
    try:
        started = await asyncio.to_thread(
            _service(request).start_rebuild, name, viewer=_viewer(request)
        )
    except UnknownProjection as problem:
        return error(404, "not_found", str(problem))
    except RebuildAlreadyRunning as problem:
        return error(409, "rebuild_running", str(problem))
    return json_response(started, 202)


PROJECTION_ROUTES = [list_projections, rebuild_projection]


def _answer(description: str, name: str) -> OpenAPIResponse:
    return OpenAPIResponse(
        description=description,
        content={
            "application/json": OpenAPIMediaType(schema=Reference(ref=_REF.format(name=name)))
        },
    )


def document_projection_routes(app: Litestar) -> None:
    """The bodies these handlers really send (they encode their own bytes, so
    Litestar would document a bare string); see `api.openapi`."""
    openapi = app.plugins.get(OpenAPIPlugin).provide_openapi()
    _, components = msgspec.json.schema_components(
        [ProjectionsReport, ProjectionStatus, ErrorBody], ref_template=_REF
    )
    schemas = openapi.components.schemas or {}
    schemas.update({name: _convert(schema) for name, schema in components.items()})
    openapi.components.schemas = schemas
    paths = openapi.paths or {}
    denied = {
        "401": _answer("Missing or malformed Authorization header; or an invalid, revoked "
                       "or expired token", "ErrorBody"),
        "403": _answer("Token scope insufficient", "ErrorBody"),
        "429": _answer("Rate limit for this token exceeded; see Retry-After", "ErrorBody"),
    }
    listing = paths["/v1/projections"].get
    if listing is not None:
        listing.responses = {
            "200": _answer(
                "Every current build of every projection (the active one, and a rebuild "
                "under way), and the process driving them. Errors about other tenants' "
                "events show their position and type only.",
                "ProjectionsReport",
            ),
            **denied,
        }
    rebuild = paths["/v1/admin/projections/{name}/rebuild"].post
    if rebuild is not None:
        rebuild.responses = {
            "202": _answer(
                "Started: the new build's status (state `rebuilding`); the active build "
                "keeps serving reads until the new one reaches the head",
                "ProjectionStatus",
            ),
            **denied,
            "404": _answer("No projection of that name", "ErrorBody"),
            "409": _answer("A rebuild of this projection is already under way", "ErrorBody"),
        }
