"""Errors the log raises; each says what went wrong in terms a caller can act on."""

from __future__ import annotations

__all__ = [
    "InvalidEnvelope",
    "LogClosed",
    "LogError",
    "LogOverloaded",
    "UnsupportedDatabaseURL",
]


class LogError(Exception):
    """Base class of the log's own errors."""


class InvalidEnvelope(LogError, ValueError):  # noqa: N818  (the name reads as the condition)
    """An envelope lacks what the store relies on; nothing of the call was stored."""

    def __init__(self, index: int, field: str, reason: str) -> None:
        self.index = index
        self.field = field
        self.reason = reason
        super().__init__(f"envelope {index}: {field} {reason}; nothing of this call was stored")


class LogOverloaded(LogError):  # noqa: N818
    """The writer's queue is full: retry after a short pause (HTTP 503 + Retry-After)."""

    def __init__(self, pending: int, bound: int) -> None:
        self.pending = pending
        self.bound = bound
        super().__init__(
            f"the log writer is behind: {pending} events queued, bound {bound}; retry shortly"
        )


class LogClosed(LogError):  # noqa: N818
    """The log was closed; no more appends are taken."""


class UnsupportedDatabaseURL(LogError, ValueError):  # noqa: N818
    """The database URL names a scheme the log does not support."""
