"""Listing the rows of a read model changed since a cursor or a time, for pollers.

Players and games list the same way: rows ordered by (position, key), where
`position` is the highest log position of the events that touched the row. A
row that changes while a poller pages gets a higher position and so comes
again after the cursor: nothing is missed, whatever the projection's lag. The
cursor is opaque (base64 of `[position, key]`); `next_cursor` comes back even
from an empty page, pointing at the checkpoint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Generic, TypeVar

import msgspec

from projections.database import ViewsConnection, read_transaction
from projections.registry import active_position
from projections.timefmt import time_text

__all__ = [
    "MAX_LIST_LIMIT",
    "InvalidCursorError",
    "Listing",
    "create_listing_indexes",
    "list_changed",
]

MAX_LIST_LIMIT: Final = 1000

Row = Sequence[Any]
_E = TypeVar("_E")


class InvalidCursorError(ValueError):
    """A cursor that a listing did not make."""


@dataclass(frozen=True)
class Listing(Generic[_E]):
    rows: list[Row]
    """The table's `columns`, in order (position and key not appended)."""
    extra: _E | None
    """What `enrich` read for these rows, in the same snapshot (None when no rows
    were read)."""
    next_cursor: str | None
    has_more: bool
    position: int
    """The projection's checkpoint: the listing reflects the log up to here."""


def _encode_cursor(position: int, key: str | None) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([position, key])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str | None]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position, key = msgspec.json.decode(raw, type=tuple[int, str | None])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidCursorError(f"invalid cursor {cursor!r}") from None
    return position, key



def create_listing_indexes(db: Any, table: str, key: str) -> None:
    """The indexes `list_changed` reads a model's table by: (scope, position, key)
    for the cursor and (scope, updated_at) for `updated_since`; read indexes
    (`protocol.ReadIndexed`), so `IF NOT EXISTS`."""
    rows = db.table(table)
    rows.create_index(
        ["tenant", "environment", "position", key],
        index_name=f"{table}_by_position",
        if_not_exists=True,
    )
    rows.create_index(
        ["tenant", "environment", "updated_at"],
        index_name=f"{table}_by_updated_at",
        if_not_exists=True,
    )


def list_changed(
    conn: ViewsConnection,
    *,
    projection: str,
    table: str,
    key: str,
    columns: str,
    tenant: str,
    environment: str,
    updated_since: datetime | None,
    limit: int,
    cursor: str | None,
    enrich: Callable[[ViewsConnection, list[Row]], _E],
) -> Listing[_E]:
    """Rows of `table` (a view named by the projection's base table) changed after
    `cursor` and, if given, received since `updated_since`, oldest change first.

    `enrich(conn, rows)` runs in the same snapshot (e.g. each row's money or
    stats). Raises ValueError for a limit outside 1 to `MAX_LIST_LIMIT` and
    `InvalidCursorError` for a cursor it did not make.
    """
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIST_LIMIT}")
    after_position, after_key = (0, None) if cursor is None else _decode_cursor(cursor)
    since = None if updated_since is None else time_text(updated_since)
    with read_transaction(conn):
        checkpoint = active_position(conn, projection)
        if checkpoint is None:
            return Listing([], None, cursor, has_more=False, position=0)
        clauses = ["tenant = ?", "environment = ?"]
        params: list[Any] = [tenant, environment]
        if since is not None:
            first = conn.execute(
                f"SELECT min(position) FROM {table} "  # noqa: S608
                "WHERE tenant = ? AND environment = ? AND updated_at >= ?",
                (tenant, environment, since),
            ).fetchone()[0]
            if first is None:
                end = _encode_cursor(max(checkpoint, after_position), None)
                return Listing([], None, end, has_more=False, position=checkpoint)
            clauses.append("updated_at >= ?")
            params.append(since)
            if first - 1 > after_position:
                after_position, after_key = first - 1, None
        if after_key is None:
            clauses.append("position > ?")
            params.append(after_position)
        else:
            clauses.append(f"(position > ? OR (position = ? AND {key} > ?))")
            params.extend((after_position, after_position, after_key))
        found = conn.execute(
            f"SELECT {columns}, position, {key} FROM {table} "  # noqa: S608
            f"WHERE {' AND '.join(clauses)} ORDER BY position, {key} LIMIT ?",
            (*params, limit),
        ).fetchall()
        rows = [row[:-2] for row in found]
        extra = enrich(conn, rows)
    has_more = len(found) == limit
    if has_more:
        next_cursor = _encode_cursor(found[-1][-2], found[-1][-1])
    else:
        next_cursor = _encode_cursor(max(checkpoint, after_position), None)
    return Listing(rows, extra, next_cursor, has_more=has_more, position=checkpoint)
