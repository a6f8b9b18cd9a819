"""Request and response bodies in the OpenAPI document.

The ingest handlers read the raw body and decode it with cached msgspec
decoders (Litestar's `data:` parameter would convert loosely: DESIGN.md), so
Litestar cannot see their body types. This module adds them: JSON Schema from
msgspec (tagged union and discriminator included), converted to Litestar's
OpenAPI objects, set on the built document before it is first served.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import msgspec
from litestar import Litestar
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.openapi.spec import (
    Discriminator,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Reference,
    RequestBody,
    Schema,
)

from api.ingestion import TrackResponse
from ingest import ErrorDetail, IdentifyRequest, TrackRequest, UnifiedRequest
from ingest.money import PositiveAmount

__all__ = ["document_bodies"]

_REF = "#/components/schemas/{name}"
_ALIASES = {
    f.metadata.get("alias", f.name): f.name for f in dataclasses.fields(Schema)
}


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


def _errors(*statuses: int) -> dict[str, OpenAPIResponse]:
    meaning = {
        401: "Missing or malformed Authorization header; or an invalid, revoked or expired token",
        403: "Token scope insufficient (unified endpoint: x-api-key missing or wrong)",
        409: "X-Idempotency-Key reused with a different body",
        413: "Body larger than the limit (default 5 MB)",
        415: "Content-Type is not application/json",
        429: "Rate limit for this token exceeded; see Retry-After",
        503: "The log writer is behind; retry after Retry-After",
    }
    responses = {str(s): OpenAPIResponse(description=meaning[s], content=_json("ErrorBody"))
                 for s in statuses}
    responses["422"] = OpenAPIResponse(
        description="Validation error", content=_json("ValidationErrorBody")
    )
    return responses


_COMMON = (401, 403, 409, 413, 415, 429, 503)


def document_bodies(app: Litestar) -> None:
    openapi = app.plugins.get(OpenAPIPlugin).provide_openapi()
    _, components = msgspec.json.schema_components(
        [TrackRequest, IdentifyRequest, UnifiedRequest, TrackResponse, IdentifyResponse,
         ValidationErrorBody, ErrorBody, NotStoredBody],
        ref_template=_REF,
        schema_hook=_schema_hook,
    )
    schemas = openapi.components.schemas or {}
    schemas.update({name: _convert(schema) for name, schema in components.items()})
    openapi.components.schemas = schemas
    bodies = {
        "/v1/events/track": (
            "TrackRequest",
            {"202": OpenAPIResponse(description="Accepted; check accepted/rejected",
                                    content=_json("TrackResponse"))},
        ),
        "/v1/events/identify": (
            "IdentifyRequest",
            {"202": OpenAPIResponse(description="Profile update accepted",
                                    content=_json("IdentifyResponse"))},
        ),
        "/api/v1/events": (
            "UnifiedRequest",
            {"204": OpenAPIResponse(description="Batch accepted (empty body)"),
             "510": OpenAPIResponse(description="Some events could not be stored",
                                    content=_json("NotStoredBody"))},
        ),
    }
    for path, (request_name, ok) in bodies.items():
        operation = openapi.paths[path].post  # type: ignore[index]
        if operation is None:
            continue
        operation.request_body = RequestBody(content=_json(request_name), required=True)
        operation.responses = {**ok, **_errors(*_COMMON)}
        if path == "/api/v1/events":
            operation.security = [{"bearer": []}, {"apiKey": []}]
