"""The runner: fold the log into read models, a page and its checkpoint at a time.

For each projection the runner drives every build whose version is the code's:

* it reads the log after the build's checkpoint, a page at a time (`page_size`
  events, 1,000 by default; `catch_up_page_size`, 10,000 by default, while the
  build is behind: fewer commits in a rebuild), and applies the page **and**
  moves the checkpoint in one `BEGIN IMMEDIATE` transaction on the read-model
  database, so a crash at any moment leaves either the whole page and its
  checkpoint or neither: no event is ever applied twice or skipped. The
  transaction first checks that the checkpoint is still where the page was read
  from, so two runners on one database never apply a page twice either (the
  loser re-reads).
* builds at the same checkpoint (a rebuild of all starts them all at 0, and live
  builds move together) share the page: it is read once, each event's money is
  decoded once for all of them (`movements.decoding_once`), and one transaction
  applies it to every one of them with every one's checkpoint, each build in a
  savepoint of its own so that one failing leaves the others' work in.
* when applying a page raises, the page is rolled back (for that build) and its
  events are applied again one at a time (a savepoint each) in a new transaction: the
  events before the culprit are committed with the checkpoint right below it,
  and the build stops with the error, the event's position, id and type in
  the registry. It stays stopped until an operator calls `registry.retry` or
  `registry.skip` (exactly that position, recorded with who and when). If the
  events all apply one by one (the failure was not the page's fault), the run
  just goes on.
* a build that is not active (a rebuild) swaps in once it has read up to the
  head and is not behind the active build: one transaction repoints the SQL
  views and retires the old build, whose tables are then dropped.

`catch_up()` runs until nothing is left to apply; `run()` catches up and then
follows the log (woken by the log's change signal, polling every
`poll_interval` seconds for writers in other processes) until stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from eventstore import EventLog, RecordedEvent
from projections.database import Synchronous, open_views, views_path_for, write_transaction
from projections.movements import decoding_once
from projections.protocol import Projection
from projections.registry import (
    BUILDS_TABLE,
    CURRENT_STATES,
    LIVE,
    Build,
    create_build,
    drop_retired,
    load_build,
    load_builds,
    now_text,
    record_error,
    set_rate_marker,
    start_rebuild,
    swap,
)
from projections.status import ProjectionStatus, status

__all__ = ["DEFAULT_CATCH_UP_PAGE_SIZE", "DEFAULT_PAGE_SIZE", "ProjectionRunner"]

DEFAULT_PAGE_SIZE = 1000
#: Pages while a build is behind: a rebuild commits (and checkpoints the WAL) ten
#: times less often; live following keeps small pages, so readers see events sooner.
DEFAULT_CATCH_UP_PAGE_SIZE = 10_000
DEFAULT_POLL_INTERVAL = 0.5

logger = logging.getLogger("playerlog.projections")

_T = TypeVar("_T")


class _Aborted(Exception):  # noqa: N818  (what happened: SQLite aborted the transaction)
    """SQLite rolled the whole page transaction back while a build applied it."""


class ProjectionRunner:
    """Runs projections over one log into one read-model database.

    `views` is the read-model file; by default it sits beside a SQLite log
    (`x/playerlog.db` → `x/playerlog.views.db`). Use one runner per process;
    several processes on one database are safe (each page checks its
    checkpoint), only wasteful.

    `page_size` is the page of a build at the head; `catch_up_page_size` the page
    of a build whose last page came back full (it is behind: a rebuild, a restart
    after downtime). A caller who picks `page_size` alone gets exactly that size
    everywhere; with neither, 1,000 live and 10,000 behind.
    """

    def __init__(
        self,
        log: EventLog,
        projections: Sequence[Projection],
        *,
        views: str | Path | None = None,
        page_size: int | None = None,
        catch_up_page_size: int | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        synchronous: Synchronous = "NORMAL",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if catch_up_page_size is None:
            catch_up_page_size = DEFAULT_CATCH_UP_PAGE_SIZE if page_size is None else page_size
        if page_size is None:
            page_size = DEFAULT_PAGE_SIZE
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if catch_up_page_size < 1:
            raise ValueError("catch_up_page_size must be at least 1")
        names = [p.name for p in projections]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"projections need distinct names, got {names}")
        bases = [base for p in projections for base in p.tables]
        if len(set(bases)) != len(bases):
            raise ValueError(f"projections' table names overlap: {bases}")
        self.log = log
        self.projections = {p.name: p for p in projections}
        self.page_size = page_size
        self.catch_up_page_size = catch_up_page_size
        self.poll_interval = poll_interval
        self._clock = clock
        self.views_path = Path(views) if views is not None else views_path_for(log.backend.url)
        self.conn = open_views(self.views_path, synchronous=synchronous)
        drop_retired(self.conn)  # a crash between a swap and the drop left them
        self._lock = threading.Lock()
        self._marked: set[tuple[str, int]] = set()
        self._warned: set[tuple[str, int]] = set()
        self._behind: set[tuple[str, int]] = set()  # builds whose last page came back full

    # -- one round -------------------------------------------------------------------

    def step(self) -> int:
        """Apply at most one page to every build this runner drives; returns how
        many events were applied (0: everything is at the head or stopped)."""
        with self._lock:
            builds = load_builds(self.conn, self.projections)
            at: dict[int, list[tuple[Projection, Build]]] = {}
            for name, projection in self.projections.items():
                mine = [b for b in builds if b.name == name]
                for build in self._drivable(projection, mine):
                    at.setdefault(build.position, []).append((projection, build))
            return sum(self._advance(group) for _, group in sorted(at.items()))

    def catch_up(self, *, progress: Callable[[list[ProjectionStatus]], None] | None = None) -> int:
        """Apply pages until every build is at the head (rebuilds swapped in) or
        stopped; returns the number of events applied. `progress` is called with
        the status after every round (a progress bar)."""
        total = 0
        while True:
            applied = self.step()
            total += applied
            if progress is not None:
                progress(self.status())
            if not applied:
                return total

    async def run(self, *, stop: asyncio.Event | None = None) -> None:
        """Catch up, then follow the log until `stop` is set (or the task is cancelled).

        Work runs in a thread, so the event loop (the API's) stays free. An
        unexpected failure of a round (not of an event: those stop only their
        projection) is logged and the round retried after `poll_interval`.
        """
        stop = stop if stop is not None else asyncio.Event()
        while not stop.is_set():
            generation = self.log.changes.generation()
            try:
                applied = await self._in_thread(self.step)
            except Exception:
                logger.exception("projection round failed; retrying")
                applied = 0
            if not applied:
                await self._wait(generation, stop)

    def start_rebuild(self, name: str) -> Build:
        """Start a rebuild of `name` (see `registry.start_rebuild`); the runner drives it."""
        with self._lock:
            return start_rebuild(self.conn, self.projections[name], clock=self._clock)

    def status(self) -> list[ProjectionStatus]:
        with self._lock:
            return status(self.conn, self.log, self.projections, clock=self._clock)

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> ProjectionRunner:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- which builds ------------------------------------------------------------------

    def _drivable(self, projection: Projection, builds: list[Build]) -> list[Build]:
        active = next((b for b in builds if b.active), None)
        if active is None:
            with write_transaction(self.conn):
                builds = load_builds(self.conn, [projection.name])
                if not any(b.active for b in builds):
                    create_build(self.conn, projection, active=True, clock=self._clock)
            builds = load_builds(self.conn, [projection.name])
        elif active.version > projection.version:
            key = (projection.name, active.version)
            if key not in self._warned:
                self._warned.add(key)
                logger.warning(
                    "projection %s: the active build has version %d, this code %d; "
                    "leaving it to newer code",
                    projection.name,
                    active.version,
                    projection.version,
                )
            return []
        elif active.version < projection.version and not any(
            b.version == projection.version and not b.active for b in builds
        ):
            logger.info(
                "projection %s: rebuilding version %d beside version %d",
                projection.name,
                projection.version,
                active.version,
            )
            start_rebuild(self.conn, projection, clock=self._clock)
            builds = load_builds(self.conn, [projection.name])
        mine = sorted(
            (b for b in builds if b.version == projection.version and not b.stopped),
            key=lambda b: (not b.active, b.build),  # the active build first
        )
        unmarked = [b for b in mine if (b.name, b.build) not in self._marked]
        if unmarked:
            set_rate_marker(self.conn, unmarked, self._clock())
            self._marked.update((b.name, b.build) for b in unmarked)
        return mine

    # -- one page ----------------------------------------------------------------------

    def _advance(self, group: list[tuple[Projection, Build]]) -> int:
        """One page for builds at the same checkpoint: read once, applied to each."""
        after = group[0][1].position
        behind = any((b.name, b.build) in self._behind for _, b in group)
        limit = self.catch_up_page_size if behind else self.page_size
        page = self.log.read(after=after, limit=limit)
        at_head = len(page) < limit
        for _, build in group:
            if at_head:
                self._behind.discard((build.name, build.build))
            else:
                self._behind.add((build.name, build.build))
        if not page:
            for _, build in group:
                if build.active and build.caught_up_at is None:
                    self._mark_caught_up(build)
                elif not build.active:
                    self._swap_in(build, build.position)
            return 0
        with decoding_once():
            try:
                done, failed = self._apply_page(group, page, at_head=at_head)
            except _Aborted as aborted:
                # SQLite rolled the whole transaction back (a full disk, say): every
                # build on its own, as if alone, so each failing one is isolated.
                done, failed = [], [(p, b, aborted.__cause__) for p, b in group]
            applied = len(page) * len(done)
            for projection, build, error in failed:
                logger.warning(
                    "projection %s build %d: page %d..%d failed; isolating the event",
                    build.name,
                    build.build,
                    page[0].position,
                    page[-1].position,
                    exc_info=error,
                )
                applied += self._isolate(projection, build, page)
        if at_head:
            for build in done:
                if not build.active:
                    self._swap_in(build, page[-1].position)
        return applied

    def _still_at(self, build: Build) -> bool:
        row = self.conn.execute(
            f"SELECT position, state, error FROM {BUILDS_TABLE} "  # noqa: S608
            "WHERE name = ? AND build = ?",
            (build.name, build.build),
        ).fetchone()
        return (
            row is not None
            and row[0] == build.position
            and row[1] in CURRENT_STATES
            and row[2] is None
        )

    def _apply_page(
        self,
        group: list[tuple[Projection, Build]],
        page: list[RecordedEvent],
        *,
        at_head: bool,
    ) -> tuple[list[Build], list[tuple[Projection, Build, BaseException | None]]]:
        """Apply `page` to each build of `group` still at its checkpoint, with the
        checkpoints, in one transaction; returns the builds done and those whose
        apply raised (rolled back to their savepoint, to be isolated)."""
        done: list[Build] = []
        failed: list[tuple[Projection, Build, BaseException | None]] = []
        with write_transaction(self.conn):
            for projection, build in group:
                if not self._still_at(build):
                    continue  # another runner moved it, or an operator stopped it
                self.conn.execute("SAVEPOINT projection_page")
                try:
                    projection.apply(page, self.conn, build.tables)
                    self._checkpoint(build, page[-1].position, caught_up=at_head)
                except Exception as error:
                    if not self.conn.in_transaction:
                        raise _Aborted from error
                    self.conn.execute("ROLLBACK TO projection_page")
                    self.conn.execute("RELEASE projection_page")
                    failed.append((projection, build, error))
                    continue
                self.conn.execute("RELEASE projection_page")
                done.append(build)
        return done, failed

    def _checkpoint(self, build: Build, position: int, *, caught_up: bool) -> None:
        if caught_up and build.active and build.caught_up_at is None:
            self.conn.execute(
                f"UPDATE {BUILDS_TABLE} SET position = ?, state = ?, "  # noqa: S608
                "caught_up_at = coalesce(caught_up_at, ?) WHERE name = ? AND build = ?",
                (position, LIVE, now_text(self._clock), build.name, build.build),
            )
        else:
            self.conn.execute(
                f"UPDATE {BUILDS_TABLE} SET position = ? WHERE name = ? AND build = ?",  # noqa: S608
                (position, build.name, build.build),
            )

    def _mark_caught_up(self, build: Build) -> None:
        with write_transaction(self.conn):
            if self._still_at(build):
                self._checkpoint(build, build.position, caught_up=True)

    def _isolate(self, projection: Projection, build: Build, page: list[RecordedEvent]) -> int:
        """Apply the page's events one at a time; stop the build at the first that fails."""
        applied = 0
        failed: tuple[RecordedEvent, str] | None = None
        with write_transaction(self.conn):
            if not self._still_at(build):
                return 0
            last = build.position
            for event in page:
                self.conn.execute("SAVEPOINT projection_event")
                try:
                    projection.apply([event], self.conn, build.tables)
                except Exception as error:  # noqa: BLE001  (whatever it is, it stops the build)
                    self.conn.execute("ROLLBACK TO projection_event")
                    self.conn.execute("RELEASE projection_event")
                    failed = (event, f"{type(error).__name__}: {error}")
                    record_error(
                        self.conn,
                        build,
                        position=event.position,
                        event_id=event.event_id,
                        event_type=event.type,
                        error=error,
                        detail="".join(traceback.format_exception(error)),
                        clock=self._clock,
                    )
                    break
                self.conn.execute("RELEASE projection_event")
                last = event.position
                applied += 1
            if last != build.position:
                self._checkpoint(build, last, caught_up=False)
        if failed is not None:
            event, message = failed
            logger.error(
                "projection %s build %d stopped at position %d (event %s, %s): %s",
                build.name,
                build.build,
                event.position,
                event.event_id,
                event.type,
                message,
            )
        return applied

    def _swap_in(self, build: Build, position: int) -> None:
        with write_transaction(self.conn):
            current = load_build(self.conn, build.name, build.build)
            if current is None or current.stopped or current.active or current.position != position:
                return
            active = next((b for b in load_builds(self.conn, [build.name]) if b.active), None)
            if active is not None and active.position > position:
                return  # the new build would serve older data: one more round
            retired = swap(self.conn, build.name, build.build, clock=self._clock)
        logger.info(
            "projection %s: build %d (version %d) is active at position %d%s",
            build.name,
            build.build,
            build.version,
            position,
            f"; build {retired.build} retired" if retired is not None else "",
        )
        drop_retired(self.conn)

    # -- async plumbing -------------------------------------------------------------------

    async def _in_thread(self, work: Callable[[], _T]) -> _T:
        """Run `work` in a thread; if cancelled meanwhile, let it finish (a page
        commits or rolls back whole) before the cancellation propagates."""
        task = asyncio.ensure_future(asyncio.to_thread(work))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await task
            raise

    async def _wait(self, generation: int, stop: asyncio.Event) -> None:
        changed = asyncio.ensure_future(self.log.changes.wait(generation, self.poll_interval))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({changed, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (changed, stopped):
                task.cancel()
            await asyncio.gather(changed, stopped, return_exceptions=True)
