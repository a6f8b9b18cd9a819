"""JSON responses and the mapping from errors to status codes and bodies."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, PermissionDeniedException
from litestar.types import ExceptionHandlersMap

from api.auth import AuthFailure
from api.ingestion import StoreFailed
from api.replay import InvalidKey, KeyReused
from eventstore import LogOverloaded
from ingest import RequestInvalid

__all__ = ["EXCEPTION_HANDLERS", "RateLimited", "UnsupportedMediaType", "error", "json_response"]

log = logging.getLogger("playerlog.api")
_encoder = msgspec.json.Encoder(decimal_format="string")


class RateLimited(Exception):  # noqa: N818
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__("rate limit exceeded")


class UnsupportedMediaType(Exception):  # noqa: N818
    def __init__(self, content_type: str | None) -> None:
        self.content_type = content_type
        super().__init__("Content-Type must be application/json")


def json_response(
    content: Any, status: int, headers: dict[str, str] | None = None
) -> Response[bytes]:
    return Response(
        content=_encoder.encode(content),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def error(status: int, code: str, message: str, **headers: str) -> Response[bytes]:
    """The API's error body: {"code": ..., "message": ...}."""
    return json_response({"code": code, "message": message}, status, headers or None)


def encode(content: Any) -> bytes:
    return _encoder.encode(content)


def _auth(_: Request[Any, Any, Any], exc: AuthFailure) -> Response[bytes]:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
    return json_response({"code": exc.code, "message": exc.message}, exc.status, headers)


def _invalid(_: Request[Any, Any, Any], exc: RequestInvalid) -> Response[bytes]:
    return json_response(exc.to_dict(), 422)


def _overloaded(_: Request[Any, Any, Any], exc: LogOverloaded) -> Response[bytes]:
    return error(503, "overloaded", str(exc), **{"Retry-After": "1"})


def _store_failed(_: Request[Any, Any, Any], exc: StoreFailed) -> Response[bytes]:
    log.error(
        "unified batch not stored", extra={"reason": exc.reason, "items": len(exc.unique_ids)}
    )
    return json_response(
        {
            "code": "not_stored",
            "message": "some events could not be stored; retry the whole batch",
            "unique_ids": exc.unique_ids,
        },
        510,
    )


def _key_reused(_: Request[Any, Any, Any], exc: KeyReused) -> Response[bytes]:
    return error(409, "idempotency_key_reused", str(exc))


def _bad_key(_: Request[Any, Any, Any], exc: InvalidKey) -> Response[bytes]:
    return error(400, "invalid_idempotency_key", str(exc))


def _rate_limited(_: Request[Any, Any, Any], exc: RateLimited) -> Response[bytes]:
    retry = max(1, round(exc.retry_after + 0.499))
    return error(
        429,
        "rate_limited",
        f"too many requests for this token; retry after {retry} s",
        **{"Retry-After": str(retry)},
    )


def _media_type(_: Request[Any, Any, Any], exc: UnsupportedMediaType) -> Response[bytes]:
    return error(
        415,
        "unsupported_media_type",
        f"Content-Type must be application/json, got {exc.content_type or 'none'}",
    )


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    status = exc.status_code
    codes = {
        400: "bad_request",
        401: "invalid_token",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
    }
    message = exc.detail
    if status == 413:
        message = "request body too large"
    return error(status, codes.get(status, "error"), message, **(exc.headers or {}))


def _crash(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.error("unhandled error", extra={"path": request.url.path}, exc_info=exc)
    return error(500, "internal_error", "internal error; the request may be retried")


# Keyed by class only: Litestar looks status codes up before classes, so a
# handler keyed 400 would shadow the ones below (DESIGN.md).
EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    AuthFailure: _auth,
    RequestInvalid: _invalid,
    LogOverloaded: _overloaded,
    StoreFailed: _store_failed,
    KeyReused: _key_reused,
    InvalidKey: _bad_key,
    RateLimited: _rate_limited,
    UnsupportedMediaType: _media_type,
    NotAuthorizedException: _http,
    PermissionDeniedException: _http,
    HTTPException: _http,
    Exception: _crash,
}
