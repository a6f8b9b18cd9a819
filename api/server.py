"""What uvicorn runs in each worker process: `uvicorn api.server:app --factory`."""

from __future__ import annotations

from typing import Any

from api.app import create_asgi
from api.settings import Settings

__all__ = ["app"]


def app() -> Any:
    """Settings come from the environment (`playerlog serve` sets PLAYERLOG_DB)."""
    return create_asgi(Settings.from_env())
