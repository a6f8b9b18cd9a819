"""The webhook receiver of bench/scale: a bare ASGI app, as fast as a receiver gets.

    BENCH_SCALE_SECRET=... uvicorn bench.scale_receiver:app --loop uvloop --http httptools

`POST` (any path): reads the body, **verifies the HMAC signature** as
docs/destinations.md tells a receiver to (HMAC-SHA256 under the shared secret of
`timestamp.body`, compared in constant time, timestamp within 300 s), decodes the
body with a cached msgspec Decoder that keeps only each event's `position`, counts
the events, and answers 200 `{}` (401 on a bad signature). No storage, no dedup.

`GET /count`: `{"requests": R, "events": E, "bad_signatures": B}` so far;
any other `GET` answers 200 (the benchmark's readiness probe).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import msgspec

__all__ = ["app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

TOLERANCE: Final = 300


class _Event(msgspec.Struct):
    position: int


class _Batch(msgspec.Struct):
    events: list[_Event]


_DECODER: Final = msgspec.json.Decoder(_Batch)
_JSON: Final = [(b"content-type", b"application/json")]
_SECRET: Final = os.environ.get("BENCH_SCALE_SECRET", "").encode()
_counts = {"requests": 0, "events": 0, "bad_signatures": 0}


def _genuine(headers: list[tuple[bytes, bytes]], body: bytes) -> bool:
    found = dict(headers)
    timestamp = found.get(b"x-playerlog-timestamp", b"")
    signature = found.get(b"x-playerlog-signature", b"")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TOLERANCE:
        return False
    expected = hmac.new(_SECRET, timestamp + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(b"sha256=" + expected.encode(), signature)


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    if scope["method"] == "GET":
        if scope["path"] == "/count":
            await _answer(send, 200, msgspec.json.encode(_counts))
        else:
            await _answer(send, 200, b'{"status":"ready"}')
        return
    body = b"".join(chunks)
    _counts["requests"] += 1
    if not _genuine(scope["headers"], body):
        _counts["bad_signatures"] += 1
        await _answer(send, 401, b'{"detail":"bad signature"}')
        return
    _counts["events"] += len(_DECODER.decode(body).events)
    await _answer(send, 200, b"{}")
