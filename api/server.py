"""What uvicorn runs in each worker process: `uvicorn api.server:app --factory`."""

from __future__ import annotations

import gc
from typing import Any

from api.app import create_asgi
from api.settings import Settings

__all__ = ["GC_THRESHOLD", "app"]

GC_THRESHOLD = (10_000, 10, 10)
"""The cyclic collector's generation thresholds while serving. Each ingest
request leaves ~150 short-lived tracked objects (mostly the writer's and the
framework's, freed by reference counting anyway); with the default 700 the
collector ran every few requests and cost ~3 us of CPU an event; at 10,000 about
1 us."""


def app() -> Any:
    """Settings come from the environment (`playerlog serve` sets PLAYERLOG_DB).

    After start-up the objects built so far (modules, the app, caches) are moved
    out of the collector's sight (`gc.freeze`): they live as long as the process,
    and scanning them again at every full collection is pure cost."""
    asgi = create_asgi(Settings.from_env())
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
    return asgi
