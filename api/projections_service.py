"""The projections as the API sees them: read connections, status, rebuilds, and
waiting for a position (`?min_position=N`).

Built once by the composition root. It never drives the runners (that is
`projections.worker.ProjectionWorker`, started by the app when
`run_projections` is on); it reads the read models (a SQLite file or a
PostgreSQL schema) and makes the operator's changes to the registry.

Reads use one connection per thread, each read inside one snapshot (SQLite WAL,
PostgreSQL REPEATABLE READ: a reader never waits for the runner's page
transaction, nor the runner for a reader). Waiting for a position polls the
registry, so it works whichever process (or machine, on PostgreSQL) drives.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import msgspec

from eventstore import EventLog
from projections import (
    Projection,
    ProjectionStatus,
    active_position,
    load_builds,
    open_views,
    read_transaction,
    start_rebuild,
    status,
    write_transaction,
)
from projections.database import ViewsConnection, ViewsLocation
from projections.registry import create_build
from projections.runner_lock import RunnerHolder, RunnerLock, runner_lock_for
from projections.standard import standard_projections

__all__ = [
    "ProjectionsReport",
    "ProjectionsService",
    "RebuildAlreadyRunning",
    "UnknownProjection",
]

HIDDEN_ERROR = "an event of another tenant or environment cannot be applied"
DEFAULT_WAIT_POLL = 0.02


class UnknownProjection(LookupError):  # noqa: N818  (reads as the outcome)
    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        super().__init__(f"no projection {name!r}; the projections are {', '.join(sorted(known))}")


class RebuildAlreadyRunning(Exception):  # noqa: N818  (reads as the refusal)
    def __init__(self, name: str, build: int) -> None:
        self.name = name
        self.build = build
        super().__init__(
            f"a rebuild of {name!r} is already under way (build {build}); see GET /v1/projections"
        )


class ProjectionsReport(msgspec.Struct, frozen=True, kw_only=True):
    """Every projection's builds, and the process that drives them (null: none does)."""

    projections: list[ProjectionStatus]
    runner: RunnerHolder | None


Viewer = tuple[str, str]
"""(tenant, environment) of the caller: errors about other tenants' events are hidden."""


class ProjectionsService:
    def __init__(
        self,
        log: EventLog,
        views: ViewsLocation,
        *,
        runner_lock: RunnerLock | None = None,
        make_projections: Callable[[], Sequence[Projection]] = standard_projections,
        wait_timeout: float = 5.0,
        wait_poll: float = DEFAULT_WAIT_POLL,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.log = log
        self.views = views
        self.runner_lock: RunnerLock = runner_lock if runner_lock is not None else (
            runner_lock_for(views)
        )
        """The lock that decides which process drives (this service only asks who
        holds it; the app's worker takes it)."""
        self.make_projections = make_projections
        """A fresh set of the projections (the worker's runner gets its own)."""
        self.projections = {p.name: p for p in make_projections()}
        self.wait_timeout = wait_timeout
        self.wait_poll = wait_poll
        self._clock = clock
        self._local = threading.local()
        self._connections: list[ViewsConnection] = []
        self._guard = threading.Lock()
        self._writer = self._open()
        self._writing = threading.Lock()
        self._ensure_builds()

    # -- reading ------------------------------------------------------------------------

    @contextmanager
    def reader(self) -> Iterator[ViewsConnection]:
        """This thread's read connection, inside one snapshot for the whole block
        (nested blocks share it). Use it from a worker thread, not the event loop."""
        conn: ViewsConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._open()
        with read_transaction(conn):
            yield conn

    def position(self, name: str) -> int:
        """The checkpoint of the active build of `name` (0 before it applied anything)."""
        self._projection(name)
        with self.reader() as conn:
            return active_position(conn, name) or 0

    async def wait_for_position(
        self, names: str | Iterable[str], position: int, timeout: float | None = None
    ) -> bool:
        """Wait until the active build of each of `names` has applied the log up to
        `position`; False if `timeout` (default `wait_timeout`) runs out first.

        Polls every `wait_poll` seconds (a checkpoint query is microseconds), each
        in a thread, so the event loop never waits on SQLite.
        """
        wanted = [names] if isinstance(names, str) else list(names)
        for name in wanted:
            self._projection(name)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.wait_timeout if timeout is None else timeout)
        while True:
            if await asyncio.to_thread(self._reached, wanted, position):
                return True
            left = deadline - loop.time()
            if left <= 0:
                return False
            await asyncio.sleep(min(self.wait_poll, left))

    def status(self, *, viewer: Viewer | None = None) -> ProjectionsReport:
        """Every projection's current builds. With `viewer`, what a tenant's token may
        see: errors and skips about other tenants' events keep their position and
        type but lose their message and event id, and tracebacks are left out."""
        with self.reader() as conn:
            states = status(conn, self.log, self.projections, clock=self._clock)
        if viewer is not None:
            states = self._for_viewer(states, viewer)
        return ProjectionsReport(projections=states, runner=self.runner_lock.holder())

    # -- operating ----------------------------------------------------------------------

    def start_rebuild(self, name: str, *, viewer: Viewer | None = None) -> ProjectionStatus:
        """Start a side-by-side rebuild of `name`; the process driving the projections
        builds it and swaps it in at the head. Returns the new build's status.

        Raises UnknownProjection, or RebuildAlreadyRunning when a build of `name`
        other than the active one is under way (an explicit rebuild, or a new
        version's).
        """
        projection = self._projection(name)
        with self._writing:
            pending = [b for b in load_builds(self._writer, [name]) if not b.active]
            if pending:
                raise RebuildAlreadyRunning(name, pending[0].build)
            build = start_rebuild(self._writer, projection, clock=self._clock)
            states = status(self._writer, self.log, [name], clock=self._clock)
        if viewer is not None:
            states = self._for_viewer(states, viewer)
        return next(s for s in states if s.build == build.build)

    def close(self) -> None:
        with self._guard:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    # -- inside -------------------------------------------------------------------------

    def _open(self) -> ViewsConnection:
        conn = open_views(self.views)
        with self._guard:
            self._connections.append(conn)
        return conn

    def _projection(self, name: str) -> Projection:
        try:
            return self.projections[name]
        except KeyError:
            raise UnknownProjection(name, self.projections) from None

    def _ensure_builds(self) -> None:
        """Give each projection its first (empty) build, so its SQL views exist and
        reads answer empty rather than fail before any runner has started; a runner
        fills it in. Checked and made in one transaction, as the runner does."""
        for projection in self.projections.values():
            with write_transaction(self._writer):
                if not any(b.active for b in load_builds(self._writer, [projection.name])):
                    create_build(self._writer, projection, active=True, clock=self._clock)

    def _reached(self, names: Sequence[str], position: int) -> bool:
        with self.reader() as conn:
            return all((active_position(conn, name) or 0) >= position for name in names)

    def _owner(self, position: int) -> Viewer | None:
        page = self.log.read(after=position - 1, limit=1)
        if not page or page[0].position != position:
            return None
        return page[0].tenant, page[0].environment

    def _for_viewer(
        self, states: list[ProjectionStatus], viewer: Viewer
    ) -> list[ProjectionStatus]:
        positions = {s.error.position for s in states if s.error and s.error.position}
        positions |= {k.position for s in states for k in s.skipped}
        theirs = {p for p in positions if self._owner(p) != viewer}
        shown = []
        for state in states:
            error = state.error
            if error is not None:
                if error.position in theirs:
                    error = msgspec.structs.replace(
                        error, message=HIDDEN_ERROR, event_id=None, detail=None
                    )
                else:
                    error = msgspec.structs.replace(error, detail=None)
            skipped = [
                msgspec.structs.replace(k, event_id=None, error=HIDDEN_ERROR)
                if k.position in theirs
                else k
                for k in state.skipped
            ]
            shown.append(msgspec.structs.replace(state, error=error, skipped=skipped))
        return shown
