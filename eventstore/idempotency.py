"""Records behind the API's X-Idempotency-Key.

A record maps (tenant, environment, key) to the fingerprint of the request that
first used the key and the response it got, until it expires. The log stores and
expires them; what a fingerprint or a response means is the API's business.
"""

from __future__ import annotations

import msgspec

__all__ = ["DEFAULT_IDEMPOTENCY_TTL", "IdempotencyRecord"]

DEFAULT_IDEMPOTENCY_TTL = 24 * 60 * 60.0
"""Seconds a key is remembered (24 h, the usual window for client retries)."""


class IdempotencyRecord(msgspec.Struct, frozen=True):
    tenant: str
    environment: str
    key: str
    fingerprint: str
    status_code: int
    content_type: str
    body: bytes
    created_at: float
    """Seconds since the epoch (UTC)."""
    expires_at: float
