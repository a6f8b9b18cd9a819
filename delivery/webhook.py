"""HTTP webhook destinations: signed JSON batches, one POST per batch.

Each request carries `X-Playerlog-Timestamp` (Unix seconds) and
`X-Playerlog-Signature: sha256=<hex>`, the HMAC-SHA256 under the destination's
secret of `timestamp + "." + body`. Signing the timestamp lets a receiver refuse
replays of an old request; `verify_signature` is what a receiver runs.

Answers: 2xx delivered; 408 and 429 retried (the receiver is busy, not refusing);
any other 4xx refused for good (the same request would fail again: dead letter);
anything else (5xx, 3xx, timeouts, connection errors) retried.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Sequence

import httpx

from delivery.config import Destination, WebhookSettings
from delivery.sink import Outcome
from delivery.wire import encode_batch
from eventstore import RecordedEvent

__all__ = [
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookSink",
    "classify",
    "sign",
    "verify_signature",
]

TIMESTAMP_HEADER = "X-Playerlog-Timestamp"
SIGNATURE_HEADER = "X-Playerlog-Signature"
DESTINATION_HEADER = "X-Playerlog-Destination"
DEFAULT_TOLERANCE = 300.0
_RETRIED_4XX = (408, 429)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC of `timestamp.body`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(
    secret: str,
    timestamp: str,
    body: bytes,
    signature: str,
    *,
    now: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> bool:
    """Whether a request is genuine and recent (within `tolerance` seconds)."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def classify(status: int) -> tuple[bool, bool]:
    """(delivered, permanent) for an HTTP status."""
    if 200 <= status < 300:
        return True, False
    return False, 400 <= status < 500 and status not in _RETRIED_4XX


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


class WebhookSink:
    def __init__(
        self,
        destination: Destination,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if destination.webhook is None:
            raise ValueError(f"webhook: destination {destination.name!r} has no webhook settings")
        self.destination = destination
        self.settings: WebhookSettings = destination.webhook
        self._clock = clock
        self._client = httpx.AsyncClient(
            timeout=float(self.settings.timeout),
            transport=transport,
            follow_redirects=False,  # a redirect is the receiver's misconfiguration: retried
            headers={"User-Agent": "playerlog-delivery", DESTINATION_HEADER: destination.name},
        )

    async def send(self, events: Sequence[RecordedEvent]) -> Outcome:
        body = encode_batch(events)
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.settings.secret, timestamp, body),
        }
        try:
            response = await self._client.post(self.settings.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return Outcome(delivered=0, error=f"no answer within {float(self.settings.timeout):g}s")
        except httpx.HTTPError as problem:
            return Outcome(delivered=0, error=f"{type(problem).__name__}: {problem}")
        delivered, permanent = classify(response.status_code)
        if delivered:
            return Outcome(delivered=len(events))
        return Outcome(
            delivered=0,
            error=f"HTTP {response.status_code}: {response.text[:200]}",
            permanent=permanent,
            retry_after=_retry_after(response),
        )

    async def close(self) -> None:
        await self._client.aclose()
