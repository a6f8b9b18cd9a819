"""Structured logs: one JSON object per line on stdout.

Every line logged while serving a request carries that request's `request_id`
and `client_id` (the `X-Client-Id` header), bound through context variables so
that code deep below the handler need not pass them along.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import msgspec

__all__ = ["bind_request", "client_id_var", "configure_logging", "request_id_var"]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
client_id_var: ContextVar[str | None] = ContextVar("client_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_encoder = msgspec.json.Encoder(decimal_format="string")


def bind_request(request_id: str, client_id: str | None) -> None:
    request_id_var.set(request_id)
    client_id_var.set(client_id)


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            line["request_id"] = request_id
            line["client_id"] = client_id_var.get()
        line.update(
            (key, value)
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_")
        )
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encoder.encode(line).decode()


class _StdoutHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stdout` is when a line is logged.

    A plain StreamHandler(sys.stdout) keeps the stream of the moment it was made:
    once the handler exists (it is made once per process), lines would still go to
    a stdout that has since been replaced, e.g. by a test's capture or a redirect.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stdout for the `playerlog` loggers (idempotent)."""
    root = logging.getLogger("playerlog")
    root.setLevel(level.upper())
    if not any(getattr(h, "_playerlog", False) for h in root.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(JsonLineFormatter())
        handler._playerlog = True  # type: ignore[attr-defined]  # noqa: SLF001
        root.addHandler(handler)
    root.propagate = False
