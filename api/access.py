"""One JSON line per request, and the request's ids bound to every line logged
while serving it. An ASGI wrapper outside the app, so it also sees requests
that never reach a route (404, 405, 413)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.logs import bind_request, write_access_line
from api.metrics import Metrics

__all__ = ["AccessLog", "note_counts"]

_COUNTS = "playerlog.counts"


def note_counts(scope: Scope, accepted: int, rejected: int) -> None:
    """Let the access line say how many events the request accepted and rejected."""
    cast("dict[str, Any]", scope)[_COUNTS] = (accepted, rejected)


log = logging.getLogger("playerlog.access")


class AccessLog:
    def __init__(self, app: ASGIApp, metrics: Metrics, *, enabled: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        # Only two headers are wanted: pick them out instead of decoding every header
        # into a dict (the last of a repeated header wins, as it did with the dict).
        raw_request_id = raw_client_id = None
        for name, value in scope["headers"]:
            lowered = name.lower()
            if lowered == b"x-request-id":
                raw_request_id = value
            elif lowered == b"x-client-id":
                raw_client_id = value
        request_id = raw_request_id.decode("latin-1") if raw_request_id else uuid.uuid4().hex[:16]
        client_id = None if raw_client_id is None else raw_client_id.decode("latin-1")
        bind_request(request_id, client_id)
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode("latin-1")),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope, status, started, request_id, client_id)

    def _record(
        self, scope: Scope, status: int, started: float, request_id: str, client_id: str | None
    ) -> None:
        duration = time.perf_counter() - started
        raw = cast("dict[str, Any]", scope)
        handler: Any = raw.get("route_handler")
        route = next(iter(handler.paths), "unmatched") if handler is not None else "unmatched"
        self.metrics.count_request(raw["method"], route, status)
        if not self.enabled:
            return
        accepted, rejected = raw.get(_COUNTS, (None, None))
        write_access_line(
            log,
            raw["method"],
            raw["path"],
            status,
            accepted,
            rejected,
            round(duration * 1000, 3),
            request_id,
            client_id,
        )
