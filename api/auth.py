"""Who is calling: the bearer token (or the unified endpoint's x-api-key)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from api.tokens import Scope, Token, TokenService

__all__ = ["AuthFailure", "Principal", "authenticate"]

MISSING_HEADER = "Missing or malformed Authorization header"
INVALID_TOKEN = "Invalid or expired token"  # noqa: S105  (a message, not a secret)
SCOPE_INSUFFICIENT = "Token scope insufficient"


class Principal(msgspec.Struct, frozen=True):
    token_id: str
    tenant: str
    environment: str
    scopes: frozenset[str]


class AuthFailure(Exception):  # noqa: N818  (reads as the outcome)
    """401 invalid_token or 403 forbidden, with the spec's exact messages."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


def _principal(token: Token) -> Principal:
    return Principal(token.id, token.tenant, token.environment, frozenset(token.scopes))


def authenticate(
    headers: Mapping[str, str],
    tokens: TokenService,
    scope: Scope,
    *,
    api_key_endpoint: bool = False,
) -> Principal:
    """Check the request's credentials for `scope`.

    The Player Platform endpoints take `Authorization: Bearer <token>` (401 when
    missing, malformed, unknown, revoked or expired; 403 for a missing scope).
    The unified endpoint also takes `x-api-key`, and answers a missing or wrong
    key with 403, as its reliability guide says.
    """
    presented: str | None = None
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            presented = value.strip()
    if presented is None and api_key_endpoint:
        presented = (headers.get("x-api-key") or "").strip() or None
    if presented is None:
        if api_key_endpoint:
            raise AuthFailure(403, "forbidden", "x-api-key missing or wrong")
        raise AuthFailure(401, "invalid_token", MISSING_HEADER)
    token = tokens.verify(presented)
    if token is None:
        if api_key_endpoint:
            raise AuthFailure(403, "forbidden", "x-api-key missing or wrong")
        raise AuthFailure(401, "invalid_token", INVALID_TOKEN)
    principal = _principal(token)
    if scope not in principal.scopes:
        raise AuthFailure(403, "forbidden", SCOPE_INSUFFICIENT)
    return principal
