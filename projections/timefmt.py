"""Event times as text that sorts correctly (and reads well in Datasette)."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["parse_time", "time_text"]


def time_text(moment: datetime) -> str:
    """Fixed-width UTC ISO 8601 with microseconds: `2026-05-18T15:10:00.000000Z`.

    Fixed width, so comparing the text compares the instants (SQL `min`/`max`
    and row-value comparisons work on it); `isoformat()` drops `.000000` and
    would not sort.
    """
    if moment.tzinfo is not UTC:
        if moment.utcoffset() is None:
            raise ValueError(f"{moment!r} has no time zone")
        moment = moment.astimezone(UTC)
    return (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T"
        f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}.{moment.microsecond:06d}Z"
    )


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
