"""API tokens: random, shown once, stored only as a hash, compared in constant time.

A token reads `plk_<id>_<secret>`: the id finds the record, the secret proves
possession. Only SHA-256 of the whole token is stored (the secret is 256 random
bits, so a slow password hash would add nothing but latency).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal, cast

import msgspec

from eventstore import EventLog

__all__ = [
    "ENVIRONMENTS",
    "SCOPES",
    "Environment",
    "Scope",
    "Token",
    "TokenError",
    "TokenInfo",
    "TokenService",
    "parse_duration",
]

Scope = Literal["events:write", "projections:read", "admin"]
Environment = Literal["live", "staging"]
SCOPES: tuple[Scope, ...] = ("events:write", "projections:read", "admin")
ENVIRONMENTS: tuple[Environment, ...] = ("live", "staging")

_KIND = "token"
_TOKEN_SHAPE = re.compile(r"^plk_([0-9a-f]{16})_[A-Za-z0-9_-]{20,}$")
_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class TokenInfo(msgspec.Struct, frozen=True):
    """A token as shown to operators (admin API, command line): everything but its
    hash. A separate type, so that listing a token cannot even name the hash field."""

    id: str
    name: str
    tenant: str
    environment: Environment
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def usable_at(self, moment: datetime) -> bool:
        if self.revoked_at is not None and self.revoked_at <= moment:
            return False
        return self.expires_at is None or moment < self.expires_at


class Token(TokenInfo, frozen=True):
    """The stored record: the public fields, then the SHA-256 of the secret."""

    secret_sha256: str = ""

    def public(self) -> TokenInfo:
        """The token as listed to operators: without its hash (not even an empty
        `secret_sha256` key, which used to appear in every listing)."""
        return TokenInfo(**{name: getattr(self, name) for name in TokenInfo.__struct_fields__})


class TokenError(ValueError):
    """A token request that cannot be honoured (bad tenant, scope, duration...)."""


def parse_duration(text: str) -> timedelta:
    """`30d`, `12h`, `90m`, `45s`, `2w` -> timedelta."""
    match = _DURATION.match(text.strip())
    if not match:
        raise TokenError(f"expires_in {text!r}: use a number and a unit, e.g. 30d, 12h, 90m")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        # A zero lifetime used to be read as "no expiry" (timedelta(0) is falsy): refuse it.
        raise TokenError(f"expires_in {text!r}: must be longer than zero, e.g. 30d, 12h, 90m")
    return timedelta(seconds=seconds)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_decode = msgspec.json.Decoder(Token)


class TokenService:
    """Create, list, revoke and verify tokens kept as records beside the log.

    `verify` is on every request's path: verified tokens are cached for
    `cache_seconds`, so a revocation made by another process takes effect within
    that time (immediately in the process that revoked).
    """

    def __init__(
        self,
        log: EventLog,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        cache_seconds: float = 2.0,
    ) -> None:
        self._log = log
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Token | None]] = {}
        self._lock = threading.Lock()

    def create(
        self,
        *,
        tenant: str,
        environment: str,
        scopes: Sequence[str],
        name: str = "",
        expires_in: timedelta | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new token and its secret (shown once: only its hash is kept)."""
        if not tenant.strip():
            raise TokenError("tenant must not be empty")
        if environment not in ENVIRONMENTS:
            raise TokenError(f"environment {environment!r}: must be one of live, staging")
        unknown = [s for s in scopes if s not in SCOPES]
        if unknown or not scopes:
            raise TokenError(
                f"scopes {list(scopes)!r}: give one or more of {', '.join(SCOPES)}"
            )
        token_id = secrets.token_hex(8)
        secret = f"plk_{token_id}_{secrets.token_urlsafe(32)}"
        now = self._clock()
        token = Token(
            id=token_id,
            name=name,
            tenant=tenant,
            environment=environment,  # narrowed to the Literal by the check above
            scopes=cast("list[Scope]", sorted(set(scopes))),
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
            secret_sha256=_digest(secret),
        )
        self._log.put_record(_KIND, token_id, msgspec.json.encode(token))
        return token.public(), secret

    def list(self, tenant: str | None = None) -> list[TokenInfo]:
        tokens = [_decode.decode(value).public() for _, value in self._log.list_records(_KIND)]
        return [t for t in tokens if tenant is None or t.tenant == tenant]

    def get(self, token_id: str) -> Token | None:
        value = self._log.get_record(_KIND, token_id)
        return None if value is None else _decode.decode(value)

    def revoke(self, token_id: str) -> TokenInfo:
        token = self.get(token_id)
        if token is None:
            raise KeyError(token_id)
        if token.revoked_at is None:
            token = msgspec.structs.replace(token, revoked_at=self._clock())
            self._log.put_record(_KIND, token_id, msgspec.json.encode(token))
        with self._lock:
            self._cache.clear()
        return token.public()

    def verify(self, presented: str) -> Token | None:
        """The usable token for this secret, or None (unknown, revoked, expired)."""
        match = _TOKEN_SHAPE.match(presented)
        if not match:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(presented)
        if cached is not None and cached[0] > now:
            token = cached[1]
        else:
            token = self.get(match.group(1))
            if token is not None and not hmac.compare_digest(
                token.secret_sha256, _digest(presented)
            ):
                token = None
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[presented] = (now + self._cache_seconds, token)
        if token is None or not token.usable_at(self._clock()):
            return None
        return token
