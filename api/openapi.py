"""Request and response bodies in the OpenAPI document.

The ingest handlers read the raw body and decode it with cached msgspec
decoders (Litestar's `data:` parameter would convert loosely: DESIGN.md), so
Litestar cannot see their body types. This module adds them: JSON Schema from
msgspec (tagged union and discriminator included), converted to Litestar's
OpenAPI objects, set on the built document before it is first served. The same
goes for the admin and operations endpoints (they encode their own bytes), the
spec's request headers (X-Idempotency-Key, X-Client-Id) and the response headers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import (
    Discriminator,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
)

from api.ingestion import ConflictRecord, TrackResponse
from api.replay import MAX_KEY_LENGTH, REPLAY_HEADER
from api.routes_admin import NewToken
from api.routes_ingest import POSITION_HEADER
from api.services import CatalogueFinding
from api.tenants import TenantSettings
from api.tokens import TokenInfo
from ingest import ErrorDetail, IdentifyRequest, TrackRequest, UnifiedRequest
from ingest.money import PositiveAmount

__all__ = ["document_bodies", "json_answer", "register_schemas"]

_REF = "#/components/schemas/{name}"
_ALIASES = {f.metadata.get("alias", f.name): f.name for f in dataclasses.fields(Schema)}


class ValidationErrorBody(msgspec.Struct):
    """422: the request body (or an item in it) failed validation."""

    detail: list[ErrorDetail]


class ErrorBody(msgspec.Struct):
    """Every other error: a machine-readable code and a message naming the problem."""

    code: str
    message: str


class IdentifyResponse(msgspec.Struct):
    user_id: str


class NotStoredBody(msgspec.Struct):
    """510: nothing of the batch was stored; retry the whole batch."""

    code: str
    message: str
    unique_ids: list[str]


class CreatedToken(TokenInfo, frozen=True, kw_only=True):
    """A new token: `token` is its secret, shown only in this answer."""

    token: str


class TokenList(msgspec.Struct):
    tokens: list[TokenInfo]


class ConflictList(msgspec.Struct):
    conflicts: list[ConflictRecord]


class FindingList(msgspec.Struct):
    findings: list[CatalogueFinding]


class Health(msgspec.Struct):
    status: str


class Readiness(msgspec.Struct):
    status: str
    head: int
    """The log's highest committed position."""
    db: str
    """The database URL, without any password."""


class NotReady(msgspec.Struct):
    status: str
    reason: str


def _convert(node: Any) -> Any:
    if isinstance(node, list):
        return [_convert(n) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return Reference(ref=node["$ref"])
    values: dict[str, Any] = {}
    for key, raw in node.items():
        name = _ALIASES.get(key)
        if name is not None:
            values[name] = _convert_field(key, raw)
    return Schema(**values)


def _convert_field(key: str, raw: Any) -> Any:
    if key == "type":
        return [OpenAPIType(v) for v in raw] if isinstance(raw, list) else OpenAPIType(raw)
    if key == "discriminator":
        return Discriminator(property_name=raw["propertyName"], mapping=raw.get("mapping"))
    if key == "properties":
        return {k: _convert(v) for k, v in raw.items()}
    if key in ("enum", "const", "default", "examples", "required", "format"):
        return raw
    return _convert(raw)


def _schema_hook(kind: type) -> dict[str, Any]:
    if issubclass(kind, PositiveAmount):
        return {"type": "number", "exclusiveMinimum": 0, "description": "exact decimal money"}
    raise NotImplementedError(kind)


def _json(name: str) -> dict[str, OpenAPIMediaType]:
    return {"application/json": OpenAPIMediaType(schema=Reference(ref=_REF.format(name=name)))}


def _answer(description: str, name: str | None = None) -> OpenAPIResponse:
    return OpenAPIResponse(description=description, content=_json(name) if name else None)


def _errors(*statuses: int) -> dict[str, OpenAPIResponse]:
    meaning = {
        400: f"X-Idempotency-Key empty, over {MAX_KEY_LENGTH} characters or not printable",
        401: "Missing or malformed Authorization header; or an invalid, revoked or expired token",
        403: "Token scope insufficient (unified endpoint: x-api-key missing or wrong)",
        404: "No such token in this tenant and environment",
        409: "X-Idempotency-Key reused with a different body",
        413: "Body larger than the limit (default 5 MB)",
        415: "Content-Type is not application/json",
        429: "Rate limit for this token exceeded; see Retry-After",
        503: "The log writer is behind; retry after Retry-After",
    }
    responses = {str(s): _answer(meaning[s], "ErrorBody") for s in statuses}
    responses["422"] = _answer("Validation error", "ValidationErrorBody")
    return responses


_COMMON = (400, 401, 403, 409, 413, 415, 429, 503)

# The request headers the Player Platform spec lists for every endpoint.
_INGEST_HEADERS = [
    Parameter(
        name="X-Idempotency-Key",
        param_in="header",
        required=False,
        schema=Schema(type=OpenAPIType.STRING, min_length=1, max_length=MAX_KEY_LENGTH),
        description=(
            "Repeat a request safely: the same key and body within the TTL (24 h by "
            "default) get the stored answer again, with `Idempotent-Replayed: true`; the "
            "same key with another body gets 409. Keys belong to the token's tenant and "
            "environment. A UUID v4 is recommended."
        ),
    ),
    Parameter(
        name="X-Client-Id",
        param_in="header",
        required=False,
        schema=Schema(type=OpenAPIType.STRING),
        description="SDK or client identifier; bound to structured logs and stored events.",
    ),
]
_SUCCESS_HEADERS: dict[str, OpenAPIHeader | Reference] = {
    POSITION_HEADER: OpenAPIHeader(
        description="Log position of the request's last accepted event (read your writes)",
        schema=Schema(type=OpenAPIType.INTEGER),
    ),
    REPLAY_HEADER: OpenAPIHeader(
        description="`true` when this answer is a replay for a repeated X-Idempotency-Key",
        schema=Schema(type=OpenAPIType.STRING, enum=["true"]),
    ),
}

# Admin and operations handlers return bytes they encode themselves, so Litestar
# documented each answer as a bare string; these are the bodies they really send.
# (path, method): (request body or None, success answers, error statuses)
_ADMIN: dict[tuple[str, str], tuple[str | None, dict[str, OpenAPIResponse], tuple[int, ...]]] = {
    ("/v1/admin/tokens", "get"): (
        None,
        {"200": _answer("This tenant's tokens, never their secrets", "TokenList")},
        (401, 403),
    ),
    ("/v1/admin/tokens", "post"): (
        "NewToken",
        {"201": _answer("The new token and its secret", "CreatedToken")},
        (401, 403),
    ),
    ("/v1/admin/tokens/{token_id}", "delete"): (
        None,
        {"200": _answer("The revoked token", "TokenInfo")},
        (401, 403, 404),
    ),
    ("/v1/admin/settings", "get"): (
        None,
        {"200": _answer("This tenant's settings", "TenantSettings")},
        (401, 403),
    ),
    ("/v1/admin/settings", "put"): (
        "TenantSettings",
        {"200": _answer("The settings now in force", "TenantSettings")},
        (401, 403),
    ),
    ("/v1/admin/conflicts", "get"): (
        None,
        {"200": _answer("Dropped unified items, by tenant", "ConflictList")},
        (401, 403),
    ),
    ("/v1/admin/catalogue/findings", "get"): (
        None,
        {"200": _answer("Latest catalogue findings", "FindingList")},
        (401, 403),
    ),
}
_OPS: dict[str, dict[str, OpenAPIResponse]] = {
    "/healthz": {"200": _answer("The process is up", "Health")},
    "/readyz": {
        "200": _answer("The database is reachable and migrated", "Readiness"),
        "503": _answer("The database is not usable", "NotReady"),
    },
    "/metrics": {
        "200": OpenAPIResponse(
            description="Prometheus text format",
            content={"text/plain": OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
        )
    },
}


def register_schemas(app: Litestar, structs: list[Any]) -> dict[str, PathItem]:
    """Add the JSON Schemas of `structs` to the document's components; returns its
    paths, for the caller to set its operations' responses."""
    openapi = app.plugins.get(OpenAPIPlugin).provide_openapi()
    _, components = msgspec.json.schema_components(
        structs, ref_template=_REF, schema_hook=_schema_hook
    )
    schemas = openapi.components.schemas or {}
    for name, schema in components.items():
        converted = _convert(schema)
        if name in schemas and schemas[name] != converted:
            raise ValueError(f"two different schemas are named {name!r} in the OpenAPI document")
        schemas[name] = converted
    openapi.components.schemas = schemas
    return openapi.paths or {}


def json_answer(description: str, name: str | None = None) -> OpenAPIResponse:
    """A documented response whose body is the component schema `name`."""
    return _answer(description, name)


def document_bodies(app: Litestar) -> None:
    openapi = app.plugins.get(OpenAPIPlugin).provide_openapi()
    _, components = msgspec.json.schema_components(
        [
            TrackRequest,
            IdentifyRequest,
            UnifiedRequest,
            TrackResponse,
            IdentifyResponse,
            ValidationErrorBody,
            ErrorBody,
            NotStoredBody,
            NewToken,
            CreatedToken,
            TokenInfo,
            TokenList,
            TenantSettings,
            ConflictList,
            FindingList,
            Health,
            Readiness,
            NotReady,
        ],
        ref_template=_REF,
        schema_hook=_schema_hook,
    )
    schemas = openapi.components.schemas or {}
    schemas.update({name: _convert(schema) for name, schema in components.items()})
    openapi.components.schemas = schemas
    bodies = {
        "/v1/events/track": (
            "TrackRequest",
            {
                "202": OpenAPIResponse(
                    description="Accepted; check accepted/rejected",
                    content=_json("TrackResponse"),
                    headers=_SUCCESS_HEADERS,
                )
            },
        ),
        "/v1/events/identify": (
            "IdentifyRequest",
            {
                "202": OpenAPIResponse(
                    description="Profile update accepted",
                    content=_json("IdentifyResponse"),
                    headers=_SUCCESS_HEADERS,
                )
            },
        ),
        "/api/v1/events": (
            "UnifiedRequest",
            {
                "204": OpenAPIResponse(
                    description="Batch accepted (empty body)", headers=_SUCCESS_HEADERS
                ),
                "510": OpenAPIResponse(
                    description="Some events could not be stored", content=_json("NotStoredBody")
                ),
            },
        ),
    }
    paths = openapi.paths or {}
    for path, (request_name, ok) in bodies.items():
        operation = paths[path].post
        if operation is None:
            continue
        operation.request_body = RequestBody(content=_json(request_name), required=True)
        operation.responses = {**ok, **_errors(*_COMMON)}
        operation.parameters = [*(operation.parameters or []), *_INGEST_HEADERS]
        if path == "/api/v1/events":
            operation.security = [{"bearer": []}, {"apiKey": []}]
    for (path, method), (admin_body, admin_ok, statuses) in _ADMIN.items():
        admin: Operation = getattr(paths[path], method)
        if admin_body is not None:
            admin.request_body = RequestBody(content=_json(admin_body), required=True)
        errors = _errors(*statuses)
        if admin_body is None:
            del errors["422"]
        admin.responses = {**admin_ok, **errors}
    for path, answers in _OPS.items():
        ops = paths[path].get
        if ops is not None:
            ops.responses = {**answers}
            ops.security = []  # no credentials: for load balancers and Prometheus
