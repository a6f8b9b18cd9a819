"""X-Idempotency-Key: the same key and body within the TTL replay the stored
response byte for byte; the same key with another body is a 409.

Keys are scoped to the token's tenant and environment. Only answers that a
retry would get again are stored (2xx and 422): a 429, 503 or 510 is worth
retrying, so it is never replayed.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec

from api.auth import Principal
from eventstore import EventLog, IdempotencyRecord

__all__ = ["REPLAY_HEADER", "Answer", "IdempotencyKeys", "KeyReused"]

REPLAY_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255


class Answer(msgspec.Struct, frozen=True):
    status: int
    body: bytes
    content_type: str = "application/json"
    replayed: bool = False
    position: int | None = None
    """The log position to send as X-Log-Position (not kept for replays)."""


class KeyReused(Exception):  # noqa: N818
    """409: the key was used for a different request."""

    def __init__(self, key: str, ttl_seconds: float) -> None:
        self.key = key
        # The window is the configured TTL (it used to say "24 hours" whatever it was).
        super().__init__(
            f"X-Idempotency-Key {key!r} was already used with a different request body "
            f"in the last {_describe(ttl_seconds)}; use a new key for a new request"
        )


def _describe(seconds: float) -> str:
    for unit, size in (("hour", 3600), ("minute", 60), ("second", 1)):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}" + ("s" if count != 1 else "")
    return f"{seconds:g} seconds"


class InvalidKey(ValueError):  # noqa: N818  (reads as the condition)
    pass


def fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
        digest.update(part)
    return digest.hexdigest()


class IdempotencyKeys:
    def __init__(self, log: EventLog) -> None:
        self.log = log
        self._held: dict[tuple[str, str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, who: Principal, key: str) -> AsyncIterator[None]:
        """Serialize requests that share a key (in this process) from lookup to
        remember. Without it, two such requests arriving together were both
        processed: the same body was stored twice (events without event_id), and a
        different body was stored and then answered 409, as if it had not been."""
        name = (who.tenant, who.environment, key)
        lock, users = self._held.get(name) or (asyncio.Lock(), 0)
        self._held[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._held[name]
            if users == 1:
                del self._held[name]
            else:
                self._held[name] = (lock, users - 1)

    def check(self, key: str) -> None:
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            raise InvalidKey(
                f"X-Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters"
            )

    def lookup(self, who: Principal, key: str, print_: str) -> Answer | None:
        """The stored answer to replay, None to process; KeyReused for another body."""
        record = self.log.get_idempotency(who.tenant, who.environment, key)
        if record is None:
            return None
        if record.fingerprint != print_:
            raise KeyReused(key, self.log.idempotency_ttl)
        return Answer(record.status_code, record.body, record.content_type, replayed=True)

    async def remember(self, who: Principal, key: str, print_: str, answer: Answer) -> Answer:
        """Store the answer; if another request stored one first, that one wins."""
        if not (200 <= answer.status < 300 or answer.status == 422):
            return answer
        record: IdempotencyRecord = self.log.new_idempotency_record(
            tenant=who.tenant,
            environment=who.environment,
            key=key,
            fingerprint=print_,
            status_code=answer.status,
            content_type=answer.content_type,
            body=answer.body,
        )
        stored = await self.log.save_idempotency(record)
        if stored.fingerprint != print_:
            raise KeyReused(key, self.log.idempotency_ttl)
        return answer
