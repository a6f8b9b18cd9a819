"""What an operator sees: where each projection is, how far behind, and why it stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Literal

import msgspec

from eventstore import EventLog
from projections.database import ViewsConnection, read_transaction
from projections.registry import LIVE, Build, Skip, load_builds, skips

__all__ = ["Progress", "ProjectionError", "ProjectionStatus", "status"]


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """A build on its way to the head: events done of total, rate, time left."""

    done: int
    total: int
    rate: float | None
    """Events per second since the runner started driving the build (None: not measured yet)."""
    eta_seconds: float | None


class ProjectionError(msgspec.Struct, frozen=True, kw_only=True):
    """Why a build stopped, and at which event."""

    message: str
    position: int | None
    event_id: str | None
    type: str | None
    at: datetime | None
    detail: str | None


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: int
    build: int
    active: bool
    """Whether reads go to this build (the other one, if any, is a rebuild)."""
    state: Literal["live", "rebuilding"]
    stopped: bool
    """Stopped by an event it cannot apply: see `error`; `registry.retry`/`skip`."""
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    """Age of the oldest event not applied yet (by its `received_at`); 0 when at the head."""
    progress: Progress | None
    """Set while `rebuilding`."""
    error: ProjectionError | None
    skipped: list[Skip]


def status(
    conn: ViewsConnection,
    log: EventLog,
    names: Iterable[str] | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> list[ProjectionStatus]:
    """One entry per current build (active, and a rebuild under way), by name."""
    with read_transaction(conn):
        builds = load_builds(conn, names)
        skipped = skips(conn)
    head = log.head()
    now = clock()
    return [_status_of(build, head, now, log, skipped) for build in builds]


def _status_of(
    build: Build, head: int, now: float, log: EventLog, skipped: list[Skip]
) -> ProjectionStatus:
    lag_events = max(0, head - build.position)
    lag_seconds = 0.0
    if lag_events:
        oldest = log.read(after=build.position, limit=1)
        if oldest:
            lag_seconds = max(0.0, now - oldest[0].received_at.timestamp())
    rebuilding = build.state != LIVE
    progress = None
    if rebuilding:
        rate = None
        if build.rate_since is not None and build.rate_position is not None:
            elapsed = now - build.rate_since
            done_here = build.position - build.rate_position
            if elapsed > 0 and done_here > 0:
                rate = done_here / elapsed
        progress = Progress(
            done=build.position,
            total=max(head, build.position),
            rate=rate,
            eta_seconds=(lag_events / rate) if rate else (0.0 if not lag_events else None),
        )
    error = None
    if build.error is not None:
        error = ProjectionError(
            message=build.error,
            position=build.error_position,
            event_id=build.error_event_id,
            type=build.error_type,
            at=datetime.fromisoformat(build.error_at) if build.error_at else None,
            detail=build.error_detail,
        )
    return ProjectionStatus(
        name=build.name,
        version=build.version,
        build=build.build,
        active=build.active,
        state="rebuilding" if rebuilding else "live",
        stopped=build.stopped,
        position=build.position,
        head=head,
        lag_events=lag_events,
        lag_seconds=lag_seconds,
        progress=progress,
        error=error,
        skipped=[s for s in skipped if s.name == build.name and s.build == build.build],
    )
