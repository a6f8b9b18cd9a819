"""Liveness, readiness and metrics: unauthenticated, for load balancers and Prometheus."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Request, Response, get

from api.responses import json_response
from api.routes_ingest import services_of

__all__ = ["OPS_ROUTES"]


@get("/healthz", tags=["Operations"], summary="The process is up")
async def healthz() -> Response[bytes]:
    return json_response({"status": "ok"}, 200)


@get("/readyz", tags=["Operations"], summary="The database is reachable and migrated")
async def readyz(request: Request[Any, Any, Any]) -> Response[bytes]:
    log = services_of(request).log
    try:
        head = await asyncio.to_thread(log.head)
    except Exception as problem:  # noqa: BLE001  (any failure means not ready)
        return json_response({"status": "unavailable", "reason": str(problem)}, 503)
    return json_response({"status": "ready", "head": head, "db": log.backend.url}, 200)


@get("/metrics", tags=["Operations"], summary="Prometheus metrics", media_type="text/plain")
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    body = services_of(request).metrics.render()
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


OPS_ROUTES = [healthz, readyz, metrics]
