"""`playerlog log export`: the log as JSON lines, one event a line, streamed.

Each line is one object: ``position``, the envelope fields (``tenant``, ``environment``,
``source``, ``type``, ``event_id``, ``subject``, ``occurred_at``, ``received_at``,
``client_id``) and ``payload``, the item exactly as it was received, embedded as JSON
without being decoded and re-encoded, so money keeps its exact digits (``12.50`` stays
``12.50``). See docs/analysts.md.

The log is read a page at a time (constant memory) and only up to the head as it was
when the export started, so an export under live ingestion ends, and is a snapshot.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final, Protocol

import msgspec

from eventstore import EventLog, RecordedEvent

__all__ = ["DEFAULT_PAGE_SIZE", "ExportSummary", "export_line", "export_log"]

DEFAULT_PAGE_SIZE: Final = 5_000

# Whitespace that may sit between the tokens of a stored payload (a sender's
# pretty-printed JSON is stored as sent). Inside a valid JSON string a raw CR or LF
# cannot occur, so turning them into spaces changes no value and keeps one event a line.
_LINE_BREAKS: Final = (b"\n", b"\r")


class _Line(msgspec.Struct, gc=False):
    # Field order is the line's key order.
    position: int
    tenant: str
    environment: str
    source: str
    type: str
    event_id: str
    subject: str
    occurred_at: datetime
    received_at: datetime
    client_id: str | None
    payload: msgspec.Raw | None
    payload_base64: bytes | msgspec.UnsetType = msgspec.UNSET


class ExportSummary(msgspec.Struct, frozen=True):
    events: int
    """Lines written."""
    last_position: int | None
    """Position of the last event written: `--after` for the next export."""
    head: int
    """The log's head when the export started: nothing above it was read."""


class BinaryWriter(Protocol):
    def write(self, data: bytes, /) -> int: ...


_ENCODER: Final = msgspec.json.Encoder()
_JSON_CHECK: Final = msgspec.json.Decoder(msgspec.Raw)


def _json_text(payload: bytes) -> bytes | None:
    """The payload as one line of JSON text, or None when it is not JSON.

    Everything the API stores is JSON; only events appended directly from Python can
    hold other bytes, and those must not break the line format.
    """
    try:
        _JSON_CHECK.decode(payload)
        if not payload.isascii():
            payload.decode("utf-8")  # msgspec does not check the strings it skips
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    if _LINE_BREAKS[0] in payload or _LINE_BREAKS[1] in payload:
        return payload.replace(b"\r", b" ").replace(b"\n", b" ")
    return payload


def export_line(event: RecordedEvent) -> bytes:
    """One event as its export line (without the trailing newline)."""
    text = _json_text(event.payload)
    return _ENCODER.encode(
        _Line(
            event.position,
            event.tenant,
            event.environment,
            event.source,
            event.type,
            event.event_id,
            event.subject,
            event.occurred_at,
            event.received_at,
            event.client_id,
            None if text is None else msgspec.Raw(text),
            event.payload if text is None else msgspec.UNSET,
        )
    )


def export_log(
    log: EventLog,
    out: BinaryWriter,
    *,
    after: int = 0,
    limit: int | None = None,
    tenant: str | None = None,
    environment: str | None = None,
    types: Sequence[str] | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> ExportSummary:
    """Write the events after `after` (filtered) to `out` as JSON lines.

    Stops at the head as of the call, or after `limit` events. One `write` per page.
    """
    if after < 0:
        raise ValueError(f"after must be 0 or more, got {after}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")
    if page_size < 1:
        raise ValueError(f"page_size must be at least 1, got {page_size}")
    head = log.head()
    written = 0
    last: int | None = None
    while (limit is None or written < limit) and after < head:
        want = page_size if limit is None else min(page_size, limit - written)
        page = log.read(after, want, tenant=tenant, environment=environment, types=types or None)
        if not page:
            break
        # Events appended after the export began are left for the next export.
        page = [event for event in page if event.position <= head]
        if not page:
            break
        out.write(b"\n".join([export_line(event) for event in page]) + b"\n")
        written += len(page)
        after = last = page[-1].position
    return ExportSummary(events=written, last_position=last, head=head)
