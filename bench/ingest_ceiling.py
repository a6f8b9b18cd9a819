"""The ceiling of bench/ingest: a bare ASGI app that does only the request decode.

    uvicorn bench.ingest_ceiling:app --loop uvloop --http httptools --no-access-log

It reads the whole body and decodes it with a cached `msgspec.json.Decoder` of the same
request Struct playerlog's endpoints decode into (`ingest.TrackRequest`, and
`ingest.UnifiedRequest` with ingest's exact-money hooks), then answers as playerlog does:
202 with a small JSON body on `/v1/events/track`, 204 on `/api/v1/events`. No routing
framework, auth, validation beyond the decode, log or storage: what uvicorn and msgspec
take with nothing of ours in the way. A body that does not decode gets 422, so wrk counts
it as an error (the benchmark's bodies are checked here too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import msgspec

from ingest import TrackRequest, UnifiedRequest
from ingest.money import dec_hook, float_hook

__all__ = ["app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_TRACK: Final = msgspec.json.Decoder(TrackRequest)
_UNIFIED: Final = msgspec.json.Decoder(UnifiedRequest, dec_hook=dec_hook, float_hook=float_hook)
_JSON: Final = [(b"content-type", b"application/json")]


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, request_id: bytes | None) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())] if body else []
    if request_id is not None:  # echoed, as playerlog does (wrk matches latencies by it)
        headers.append((b"x-request-id", request_id))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _decoded(path: str, body: bytes) -> tuple[int, bytes]:
    try:
        if path == "/v1/events/track":
            count = len(_TRACK.decode(body).events)
            return 202, b'{"accepted":%d,"rejected":0,"errors":[]}' % count
        if path == "/api/v1/events":
            _UNIFIED.decode(body)
            return 204, b""
    except (msgspec.DecodeError, msgspec.ValidationError):
        return 422, b'{"detail":"invalid body"}'
    return 404, b'{"detail":"not found"}'


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()  # lifespan.startup
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] != "http":
        return
    body = await _body(receive)
    request_id = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
    if scope["method"] == "GET":  # readiness probe of the benchmark
        await _answer(send, 200, b'{"status":"ready"}', request_id)
        return
    status, answer = await _decoded(scope["path"], body)
    await _answer(send, status, answer, request_id)
