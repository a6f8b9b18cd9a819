"""Timestamps on the wire: ISO 8601 with a zone, stored in UTC.

msgspec parses the RFC 3339 profile of ISO 8601 (``2026-05-18T14:38:00.000Z``,
``2026-05-18T16:38:00+02:00``; a space instead of ``T`` and a lower-case ``z`` are also
accepted, fractions beyond microseconds are rounded). ``Meta(tz=True)`` makes it reject a
timestamp without a zone: a naive time is ambiguous, and guessing the sender's zone would
silently shift events by hours.
"""

from datetime import UTC, datetime
from typing import Annotated

import msgspec

__all__ = ["AwareDatetime", "TimestampOutOfRangeError", "require_utc", "to_utc"]

#: A datetime that must carry ``Z`` or an offset on the wire.
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]


class TimestampOutOfRangeError(ValueError):
    """A valid timestamp that has no UTC equivalent (``0001-01-01T00:00:00+01:00``)."""


def to_utc(value: datetime) -> datetime:
    """Convert an aware datetime to UTC.

    Raises ``TimestampOutOfRangeError`` when the conversion leaves the years 1..9999, which a
    sender can provoke with an offset at either end of the range.
    """
    if value.tzinfo is UTC:  # msgspec returns the UTC singleton for "Z" and "+00:00"
        return value
    try:
        return value.astimezone(UTC)
    except OverflowError as exc:
        raise TimestampOutOfRangeError(f"{value.isoformat()} is out of range in UTC") from exc


def require_utc(value: datetime, name: str = "received_at") -> datetime:
    """Check a server-side timestamp: it must be aware; it is returned in UTC.

    A naive value here is a programming error in the caller, not a bad request.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    return to_utc(value)
