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

__all__ = [
    "bind_request",
    "client_id_var",
    "configure_logging",
    "request_id_var",
    "write_access_line",
]

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
client_id_var: ContextVar[str | None] = ContextVar("client_id", default=None)

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_encoder = msgspec.json.Encoder(decimal_format="string")


def bind_request(request_id: str, client_id: str | None) -> None:
    request_id_var.set(request_id)
    client_id_var.set(client_id)


def _timestamp(created: float) -> str:
    """The `ts` of a line made at `created` (what the formatter writes for a record)."""
    msecs = int((created - int(created)) * 1000)  # as LogRecord.msecs computes it
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{msecs:03d}Z"


class JsonLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
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


# -- the access line's fast path ----------------------------------------------------------
#
# One line per request went through the logging module: a LogRecord, the `extra` dict
# copied onto it, the formatter's scan of the record's __dict__, a dict encoded; about 8%
# of the server's CPU under load. When the access logger ends at our own handler (what
# `configure_logging` sets up), the same line, byte for byte, is encoded from a Struct and
# written under the handler's lock. Anything else (another handler, a filter, a level
# that drops INFO) takes the logging module's path, so configuration keeps working.


class _AccessLine(msgspec.Struct, gc=False):
    # Field order is the formatter's key order: its own keys, the bound request ids,
    # then the `extra` fields (request_id and client_id there repeat the bound ones).
    ts: str
    level: str
    logger: str
    msg: str
    request_id: str
    client_id: str | None
    method: str
    path: str
    status: int
    accepted: int | None
    rejected: int | None
    duration_ms: float


_ACCESS_ENCODER = msgspec.json.Encoder()
_second_text: tuple[int, str] = (-1, "")


def _fast_timestamp(created: float) -> str:
    # strftime costs about a microsecond; lines come many per second, so the text of
    # the current second is kept.
    global _second_text  # noqa: PLW0603  (one cache per process)
    second = int(created)
    cached_second, text = _second_text
    if cached_second != second:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
        _second_text = (second, text)
    return f"{text}.{int((created - second) * 1000):03d}Z"


def _own_handler(logger: logging.Logger) -> logging.Handler | None:
    """Our stdout handler, if it is the one place `logger`'s INFO lines go, unfiltered."""
    parent = logger.parent
    if (
        logger.handlers
        or logger.filters
        or not logger.propagate
        or parent is None
        or parent.filters
        or parent.propagate
        or len(parent.handlers) != 1
    ):
        return None
    handler = parent.handlers[0]
    if (
        not getattr(handler, "_playerlog", False)
        or handler.filters
        or handler.level > logging.INFO
        or type(handler.formatter) is not JsonLineFormatter
    ):
        return None
    return handler


def write_access_line(  # noqa: PLR0917  (the line's fields)
    logger: logging.Logger,
    method: str,
    path: str,
    status: int,
    accepted: int | None,
    rejected: int | None,
    duration_ms: float,
    request_id: str,
    client_id: str | None,
) -> None:
    """Log the access line `logger.info("request", extra={...})` would, only cheaper."""
    if not logger.isEnabledFor(logging.INFO):
        return
    handler = _own_handler(logger)
    if handler is None:
        logger.info(
            "request",
            extra={
                "method": method,
                "path": path,
                "status": status,
                "accepted": accepted,
                "rejected": rejected,
                "duration_ms": duration_ms,
                "request_id": request_id,
                "client_id": client_id,
            },
        )
        return
    line = _ACCESS_ENCODER.encode(
        _AccessLine(
            _fast_timestamp(time.time()),
            "info",
            logger.name,
            "request",
            request_id,
            client_id,
            method,
            path,
            status,
            accepted,
            rejected,
            duration_ms,
        )
    )
    handler.acquire()
    try:
        stream = sys.stdout
        stream.write(line.decode() + "\n")
        stream.flush()
    except Exception:  # noqa: BLE001  (as StreamHandler.emit: report, never raise)
        handler.handleError(
            logging.makeLogRecord({"name": logger.name, "msg": "request", "levelno": 20})
        )
    finally:
        handler.release()
