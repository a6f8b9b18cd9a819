"""playerlog's log: one append-only, idempotent, durable event log.

Public surface: open a log with `open_log(url)`, append envelopes, read and
follow by position, and keep idempotency-key records. Backends: SQLite (the
embedded default) and PostgreSQL (to scale out).
"""

from __future__ import annotations

from typing import Any

from eventstore.backend import LogBackend
from eventstore.envelope import Envelope, NewEvent, RecordedEvent, differing_fields, same_content
from eventstore.errors import (
    InvalidEnvelope,
    LogClosed,
    LogError,
    LogOverloaded,
    UnsupportedDatabaseURL,
)
from eventstore.idempotency import DEFAULT_IDEMPOTENCY_TTL, IdempotencyRecord
from eventstore.log import EventLog
from eventstore.results import AppendResult, Status
from eventstore.url import DEFAULT_DB_URL, open_backend, resolve_db_url

__all__ = [
    "DEFAULT_DB_URL",
    "DEFAULT_IDEMPOTENCY_TTL",
    "AppendResult",
    "Envelope",
    "EventLog",
    "IdempotencyRecord",
    "InvalidEnvelope",
    "LogBackend",
    "LogClosed",
    "LogError",
    "LogOverloaded",
    "NewEvent",
    "RecordedEvent",
    "Status",
    "UnsupportedDatabaseURL",
    "differing_fields",
    "open_backend",
    "open_log",
    "resolve_db_url",
    "same_content",
]


def open_log(url: str | None = None, **options: Any) -> EventLog:
    """Open (and migrate) the log at `url`, or `PLAYERLOG_DB`, or ./playerlog.db.

    Options go to EventLog (`max_pending_events`, `idempotency_ttl`, `clock`);
    backend options go in `backend_options`.
    """
    backend_options = options.pop("backend_options", {})
    return EventLog(open_backend(resolve_db_url(url), **backend_options), **options)
