"""The runner: fold the log into read models, a page and its checkpoint at a time.

For each projection the runner drives every build whose version is the code's:

* it reads the log after the build's checkpoint, a page at a time (`page_size`
  events, 1,000 by default; `catch_up_page_size`, 10,000 by default, while the
  build is behind: fewer commits in a rebuild), and applies the page **and**
  moves the checkpoint in one write transaction on the read-model database
  (`database.write_transaction`), so a crash at any moment leaves either the
  whole page and its checkpoint or neither: no event is ever applied twice or skipped. The
  transaction first checks that the checkpoint is still where the page was read
  from, so two runners on one database never apply a page twice either (the
  loser re-reads).
* write-behind: while a build is behind, a projection that offers a buffer
  (`protocol.Buffered`) folds the pages in memory, and the runner writes the
  buffer together with the checkpoint of the last folded event every
  `flush_events` events, `flush_seconds` seconds or `max_buffered_keys` keys,
  and at the head (every page there), so a crash still loses whole pages and
  their checkpoint together (the restart folds them again). When a fold or a
  flush raises, the buffer is thrown away and the events from the checkpoint are
  applied again a page at a time, which isolates the culprit as below.
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
import gc
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import msgspec

from eventstore import EventLog, RecordedEvent
from projections.database import (
    Synchronous,
    ViewsLocation,
    is_lock_timeout,
    open_views,
    table_maker,
    views_location_for,
    write_transaction,
)
from projections.helpers import (
    DEFAULT_HELPER_MIN_EVENTS,
    Helper,
    HelperSettings,
    default_processes,
    plan_groups,
    start_helper,
    wait_for_any,
)
from projections.movements import decoding_once
from projections.protocol import Buffer, Buffered, Projection, ReadIndexed
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

__all__ = [
    "DEFAULT_CATCH_UP_PAGE_SIZE",
    "DEFAULT_FLUSH_EVENTS",
    "DEFAULT_FLUSH_SECONDS",
    "DEFAULT_MAX_BUFFERED_KEYS",
    "DEFAULT_PAGE_SIZE",
    "ProjectionRunner",
]

DEFAULT_PAGE_SIZE = 1000
#: Pages while a build is behind: a rebuild commits (and checkpoints the WAL) ten
#: times less often; live following keeps small pages, so readers see events sooner.
DEFAULT_CATCH_UP_PAGE_SIZE = 10_000
DEFAULT_POLL_INTERVAL = 0.5
#: Write-behind while a build is behind: its buffer is flushed (with its checkpoint)
#: after this many events, this many seconds, or this many keys held, whichever
#: comes first. The events bound the work a crash throws away, the seconds how
#: stale an active build catching up looks to readers (a rebuild, unread until it
#: swaps in, has no seconds bound), the keys the memory.
DEFAULT_FLUSH_EVENTS = 1_500_000
DEFAULT_FLUSH_SECONDS = 5.0
# ~450 bytes a key (measured): ~700 MB a build, and a players rebuild of the 10M
# bench log peaks at 1.4 GB RSS with its flush (measured); 700k keys took that
# rebuild 476 s against 314 s (each flush writes most players again, so fewer,
# larger flushes write less). PLAYERLOG_PROJECTION_BUFFER_KEYS lowers it.
DEFAULT_MAX_BUFFERED_KEYS = 1_500_000
#: An active build catching up flushes every `flush_seconds`, or, when its last
#: write took longer, every this many times that write's duration: flushes then
#: take at most a fifth of the time, however large the tables have grown (a
#: flush into tables of millions of rows takes seconds, and flushing every 5 s
#: would spend most of the time writing the same rows again).
FLUSH_TIME_RATIO = 4.0
#: Seconds a step with nothing to do in this process waits for helper processes
#: (so that `catch_up` and `run` do not spin while helpers work).
HELPER_WAIT = 0.25
#: After a helper process fails, this runner starts none for this many seconds
#: (it catches up in-process meanwhile): a helper that cannot open the log would
#: otherwise be started again and again, a page apart.
HELPER_RETRY_AFTER = 600.0

logger = logging.getLogger("playerlog.projections")

_T = TypeVar("_T")


@dataclass(slots=True)
class _Pending:
    """A build's write-behind buffer: the events after `build.position` (its
    flushed checkpoint) up to `position`, folded but not yet written."""

    build: Build
    buffer: Buffer
    position: int
    events: int
    since: float  # time.monotonic() of the first fold


_Work = tuple[Projection, Build, Callable[[], None], int]
"""A build's write for one transaction: what to run, and the checkpoint it reaches."""
_Failed = list[tuple[Projection, Build, BaseException | None]]


class _Aborted(Exception):  # noqa: N818  (what happened: the database aborted the transaction)
    """The database rolled the whole page transaction back while a build applied it."""


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for one step of the runner.

    A step allocates acyclic records (tuples, lists, dicts, decimals, text),
    which reference counting frees; the cyclic collector only walks the
    write-behind buffers (hundreds of thousands of containers) again and again.
    Pausing it made a rebuild of all three models 21% faster (1.5M events of the
    10M bench log: 91.7 s -> 71.1 s). A step is a page or a flush (seconds; a
    flush into tables of millions of rows, up to ~15 s); cycles other threads make
    meanwhile (an API in the same process) are collected once it is re-enabled.
    Left alone if someone else disabled it.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class ProjectionRunner:
    """Runs projections over one log into one read-model database.

    `views` is where the read models live (`database.ViewsLocation`): by default
    beside a SQLite log (`x/playerlog.db` → `x/playerlog.views.db`), or in a
    PostgreSQL log's own schema (by the URL the log reports, which has no
    password: pass `views=` with it, or use PGPASSWORD or ~/.pgpass). Use one runner per process;
    several processes on one database are safe (each page checks its
    checkpoint), only wasteful.

    `page_size` is the page of a build at the head; `catch_up_page_size` the page
    of a build whose last page came back full (it is behind: a rebuild, a restart
    after downtime). A caller who picks `page_size` alone gets exactly that size
    everywhere; with neither, 1,000 live and 10,000 behind.

    A projection that offers a `Buffer` (`protocol.Buffered`) is written behind
    while its build is behind: its pages are folded in memory and flushed with
    the checkpoint every `flush_events` events, `flush_seconds` seconds or
    `max_buffered_keys` keys, and at the head (every page there), before a swap
    and on `flush()`, `close()` and the end of `run()`. `flush_events=1` writes
    every page, as for a projection without a buffer.
    """

    def __init__(
        self,
        log: EventLog,
        projections: Sequence[Projection],
        *,
        views: ViewsLocation | None = None,
        page_size: int | None = None,
        catch_up_page_size: int | None = None,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        flush_events: int = DEFAULT_FLUSH_EVENTS,
        flush_seconds: float = DEFAULT_FLUSH_SECONDS,
        max_buffered_keys: int = DEFAULT_MAX_BUFFERED_KEYS,
        synchronous: Synchronous = "NORMAL",
        clock: Callable[[], float] = time.time,
        processes: int | None = None,
        helper_min_events: int = DEFAULT_HELPER_MIN_EVENTS,
        busy_timeout: float = 30.0,
        log_url: str | None = None,
    ) -> None:
        if catch_up_page_size is None:
            catch_up_page_size = DEFAULT_CATCH_UP_PAGE_SIZE if page_size is None else page_size
        if page_size is None:
            page_size = DEFAULT_PAGE_SIZE
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        if catch_up_page_size < 1:
            raise ValueError("catch_up_page_size must be at least 1")
        if flush_events < 1 or max_buffered_keys < 1:
            raise ValueError("flush_events and max_buffered_keys must be at least 1")
        processes = default_processes() if processes is None else processes
        if processes < 1:
            raise ValueError("processes must be at least 1")
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
        self.flush_events = flush_events
        self.flush_seconds = flush_seconds
        self.max_buffered_keys = max_buffered_keys
        self.processes = processes
        self.helper_min_events = helper_min_events
        self.synchronous = synchronous
        # helpers open the log by URL: the caller's may carry a password the log's
        # own (`backend.url`, redacted) does not
        self._log_url = log_url if log_url is not None else log.backend.url
        self._clock = clock
        self.views = views if views is not None else views_location_for(log.backend.url)
        self.conn = open_views(self.views, synchronous=synchronous, busy_timeout_s=busy_timeout)
        drop_retired(self.conn)  # a crash between a swap and the drop left them
        self._lock = threading.Lock()
        self._marked: set[tuple[str, int]] = set()
        self._warned: set[tuple[str, int]] = set()
        self._behind: set[tuple[str, int]] = set()  # builds whose last page came back full
        self._pending: dict[tuple[str, int], _Pending] = {}  # write-behind buffers
        self._write_seconds: dict[tuple[str, int], float] = {}  # a build's last write
        self._indexed: set[tuple[str, int]] = set()  # builds whose read indexes exist
        self._helpers: list[Helper] = []  # helper processes (`projections.helpers`)
        self._no_helpers_until = 0.0  # time.monotonic(): set when a helper fails

    @property
    def behind(self) -> bool:
        """Whether the last page read for some build came back full (more to read)."""
        return bool(self._behind)

    @property
    def helping(self) -> frozenset[str]:
        """The projections helper processes drive now (this runner leaves them alone)."""
        return frozenset(name for helper in self._helpers for name in helper.names)

    # -- one round -------------------------------------------------------------------

    def step(self) -> int:
        """Apply (or fold into a write-behind buffer) at most one page for every
        build this runner drives; returns how many events that was (0: everything
        is at the head or stopped), helper processes' events included. Events folded
        and then thrown away (another runner moved the checkpoint, a flush failed)
        are not taken back. While helpers run, a step with nothing to do here waits
        up to `HELPER_WAIT` seconds for them."""
        with self._lock, _cyclic_gc_paused():
            helped = self._poll_helpers()
            builds = load_builds(self.conn, self.projections)
            at: dict[int, list[tuple[Projection, Build]]] = {}
            driven: set[tuple[str, int]] = set()
            helping = self.helping
            for name, projection in self.projections.items():
                if name in helping:
                    continue
                mine = [b for b in builds if b.name == name]
                for build in self._drivable(projection, mine):
                    key = (build.name, build.build)
                    driven.add(key)
                    position = build.position
                    pending = self._pending.get(key)
                    if pending is not None:
                        if pending.build.position == build.position:
                            pending.build = build
                            position = pending.position
                        else:
                            # another runner (or an operator) moved the checkpoint:
                            # what this one folded may be there already
                            del self._pending[key]
                    at.setdefault(position, []).append((projection, build))
            for key in [k for k in self._pending if k not in driven]:
                del self._pending[key]  # stopped, retired or replaced meanwhile
            for key in [k for k in self._write_seconds if k not in driven]:
                del self._write_seconds[key]
            if (
                self.processes > 1
                and len(self._helpers) < self.processes
                and time.monotonic() >= self._no_helpers_until
            ):
                self._start_helpers(at)
            applied = sum(self._advance(after, group) for after, group in sorted(at.items()))
            if not applied and self._helpers:
                wait_for_any(self._helpers, HELPER_WAIT)
                helped += self._poll_helpers()
            return applied + helped

    def flush(self) -> None:
        """Write every write-behind buffer with its checkpoint now (the runner does
        so by itself at the head, and in `close()` and at the end of `run()`)."""
        with self._lock:
            self._flush_pending(list(self._pending), caught_up=False)

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
            if not applied and not self._helpers:
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
        # on stop: what a build folded is not thrown away (close() does the same
        # for a cancelled run)
        try:
            await self._in_thread(self.flush)
        except Exception:
            logger.exception("flushing on stop failed; the next run folds those events again")

    def start_rebuild(self, name: str) -> Build:
        """Start a rebuild of `name` (see `registry.start_rebuild`); the runner drives it."""
        with self._lock:
            return start_rebuild(self.conn, self.projections[name], clock=self._clock)

    def status(self) -> list[ProjectionStatus]:
        with self._lock:
            return status(self.conn, self.log, self.projections, clock=self._clock)

    def close(self) -> None:
        """Flush the write-behind buffers, then close. A failing flush is logged,
        not raised (it would hide the error that made a caller close): the
        checkpoint is the last flush's, so the next run folds those events again."""
        try:
            self._stop_helpers()
            self.flush()
        except Exception:
            logger.exception("flushing on close failed; the next run folds those events again")
        finally:
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

    # -- helper processes ----------------------------------------------------------------

    def _start_helpers(self, at: dict[int, list[tuple[Projection, Build]]]) -> None:
        """Hand the projections at least `helper_min_events` behind the head to
        helper processes (`projections.helpers`; `processes` at most, those
        already running included), taking them out of `at`.

        Only projections whose last page came back full are candidates (so a
        runner at the head never asks the log for its head), and a build's
        buffer is flushed first: the helper starts from the checkpoint.
        """
        lowest: dict[str, int] = {}
        for position, group in at.items():
            for _, build in group:
                if (build.name, build.build) in self._behind:
                    lowest[build.name] = min(lowest.get(build.name, position), position)
        if not lowest:
            return
        head = self.log.head()
        far = [
            self.projections[name]
            for name, position in lowest.items()
            if head - position >= self.helper_min_events
        ]
        if not far:
            return
        names = {p.name for p in far}
        self._flush_pending([k for k in self._pending if k[0] in names], caught_up=False)
        settings = HelperSettings(
            page_size=self.page_size,
            catch_up_page_size=self.catch_up_page_size,
            flush_events=self.flush_events,
            flush_seconds=self.flush_seconds,
            max_buffered_keys=self.max_buffered_keys,
            synchronous=self.synchronous,
        )
        for share in plan_groups(far, self.processes - len(self._helpers)):
            helper = start_helper(self._log_url, self.views, share, settings)
            self._helpers.append(helper)
            logger.info(
                "projections: helper process %s catches up %s (%d events behind)",
                helper.process.pid,
                ", ".join(p.name for p in share),
                head - min(lowest[p.name] for p in share),
            )
        for position in list(at):
            at[position] = [(p, b) for p, b in at[position] if p.name not in names]
            if not at[position]:
                del at[position]
        for key in [k for k in self._behind if k[0] in names]:
            self._behind.discard(key)

    def _poll_helpers(self) -> int:
        """Events the helpers applied since the last poll; forget those that exited
        (their projections are this runner's again, from their checkpoints)."""
        events = 0
        for helper in list(self._helpers):
            events += helper.new_events()
            if helper.process.is_alive():
                continue
            helper.process.join()
            events += helper.new_events()
            self._helpers.remove(helper)
            if helper.process.exitcode != 0:
                self._no_helpers_until = time.monotonic() + HELPER_RETRY_AFTER
                logger.warning(
                    "projections: helper process for %s exited with code %s; this "
                    "process carries on from their checkpoints (no helpers for %.0f s)",
                    ", ".join(sorted(helper.names)),
                    helper.process.exitcode,
                    HELPER_RETRY_AFTER,
                )
        return events

    def _stop_helpers(self) -> None:
        """Ask every helper to stop after its step under way (it flushes and exits)."""
        helpers, self._helpers = self._helpers, []
        for helper in helpers:
            helper.stop_event.set()
        for helper in helpers:
            helper.stop()

    # -- one page ----------------------------------------------------------------------

    def _advance(self, after: int, group: list[tuple[Projection, Build]]) -> int:
        """One page for builds at the same position `after` (a checkpoint, or the
        last event folded into a buffer): read once, applied to or folded by each."""
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
            self._reached_head(after, group)
            return 0
        applied = 0
        work: list[_Work] = []
        flushing: dict[tuple[str, int], _Pending] = {}
        with decoding_once():
            for projection, build in group:
                if not isinstance(projection, Buffered):
                    write = partial(projection.apply, page, self.conn, build.tables)
                    work.append((projection, build, write, page[-1].position))
                    continue
                replayed, pending = self._fold(projection, build, page)
                applied += replayed
                if pending is None:
                    continue
                if at_head or self._due(pending):
                    flushing[(build.name, build.build)] = pending
                    flush = partial(pending.buffer.flush, self.conn)
                    work.append((projection, build, flush, pending.position))
                else:
                    self._pending[(build.name, build.build)] = pending
                    applied += len(page)
            if work:
                applied += self._write_page(work, flushing, page, at_head=at_head)
        return applied

    def _fold(
        self, projection: Buffered, build: Build, page: list[RecordedEvent]
    ) -> tuple[int, _Pending | None]:
        """Fold `page` into the build's buffer (a new one if it has none); returns
        the buffer, or, if folding raised, None and how many events the replay
        that isolates the culprit applied beyond those already counted."""
        key = (build.name, build.build)
        pending = self._pending.pop(key, None)
        if pending is None:
            buffer = projection.buffer(build.tables)
            pending = _Pending(build, buffer, build.position, 0, time.monotonic())
        try:
            pending.buffer.fold(page)
        except Exception as error:
            logger.warning(
                "projection %s build %d: folding page %d..%d failed; re-applying "
                "from checkpoint %d to isolate the event",
                build.name,
                build.build,
                page[0].position,
                page[-1].position,
                build.position,
                exc_info=error,
            )
            # the buffer may hold half the page: thrown away, the flushed tables and
            # checkpoint are the truth to re-apply from
            replayed = self._replay(self.projections[build.name], build, page[-1].position)
            return max(0, replayed - pending.events), None
        pending.position = page[-1].position
        pending.events += len(page)
        return 0, pending

    def _write_page(
        self,
        work: list[_Work],
        flushing: dict[tuple[str, int], _Pending],
        page: list[RecordedEvent],
        *,
        at_head: bool,
    ) -> int:
        """Commit a page's writes (`apply`, or a buffer's flush for the builds in
        `flushing`); isolate what fails; swap in rebuilds that reached the head.
        Returns the events applied (a flush counts the page it ends with)."""
        try:
            done, failed = self._commit(work, at_head=at_head)
        except _Aborted as aborted:
            # SQLite rolled the whole transaction back (a full disk, say): every
            # build on its own, as if alone, so each failing one is isolated.
            done, failed = [], [(p, b, aborted.__cause__) for p, b, _, _ in work]
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
            pending = flushing.get((build.name, build.build))
            if pending is None:
                applied += self._isolate(projection, build, page)
            else:
                replayed = self._replay(projection, build, pending.position)
                applied += max(0, replayed - (pending.events - len(page)))
        if at_head:
            for build in done:
                self._create_read_indexes(
                    msgspec.structs.replace(build, position=page[-1].position)
                )
                if not build.active:
                    self._swap_in(build, page[-1].position)
        return applied

    def _reached_head(self, after: int, group: list[tuple[Projection, Build]]) -> None:
        """Nothing after `after`: flush the buffers, mark active builds caught up,
        swap rebuilds in."""
        self._flush_pending([(b.name, b.build) for _, b in group], caught_up=True)
        for _, build in group:
            # a flush just moved the checkpoint up to `after` (or failed: then the
            # registry is elsewhere and both calls below leave it alone)
            flushed = msgspec.structs.replace(build, position=after)
            self._create_read_indexes(flushed)
            if build.active and build.caught_up_at is None:
                self._mark_caught_up(flushed)
            elif not build.active:
                self._swap_in(flushed, after)

    def _due(self, pending: _Pending) -> bool:
        # The seconds bound how stale an active build catching up looks to its
        # readers; a rebuild is not read before it swaps in (and it swaps in only
        # once flushed at the head), so it flushes by events and keys alone.
        if pending.events >= self.flush_events or pending.buffer.size >= self.max_buffered_keys:
            return True
        if not pending.build.active:
            return False
        last = self._write_seconds.get((pending.build.name, pending.build.build), 0.0)
        bound = max(self.flush_seconds, FLUSH_TIME_RATIO * last)
        return time.monotonic() - pending.since >= bound

    def _flush_pending(self, keys: list[tuple[str, int]], *, caught_up: bool) -> None:
        """Write the buffers of these builds (those that have one) with their checkpoints."""
        pendings = [p for key in keys if (p := self._pending.pop(key, None)) is not None]
        if not pendings:
            return
        work: list[_Work] = [
            (
                self.projections[p.build.name],
                p.build,
                partial(p.buffer.flush, self.conn),
                p.position,
            )
            for p in pendings
        ]
        with decoding_once():
            try:
                _, failed = self._commit(work, at_head=caught_up)
            except _Aborted as aborted:
                failed = [(p, b, aborted.__cause__) for p, b, _, _ in work]
            by_key = {(p.build.name, p.build.build): p for p in pendings}
            for projection, build, error in failed:
                pending = by_key[(build.name, build.build)]
                logger.warning(
                    "projection %s build %d: flushing %d..%d failed; isolating the event",
                    build.name,
                    build.build,
                    build.position + 1,
                    pending.position,
                    exc_info=error,
                )
                self._replay(projection, build, pending.position)

    def _replay(self, projection: Projection, build: Build, through: int) -> int:
        """After a buffer failed (to fold or to flush) and was thrown away: apply
        the events from the build's flushed checkpoint up to `through` a page at
        a time with `apply`, as for a projection without a buffer, so that the
        culprit is isolated and the events before it are committed. Returns the
        events applied."""
        applied = 0
        current = build
        while current.position < through:
            read = self.log.read(after=current.position, limit=self.catch_up_page_size)
            page = [event for event in read if event.position <= through]
            if not page:
                break
            try:
                done, failed = self._apply_page([(projection, current)], page, at_head=False)
            except _Aborted as aborted:
                done, failed = [], [(projection, current, aborted.__cause__)]
            if failed:
                isolated = self._isolate(projection, current, page)
                applied += isolated
                if isolated < len(page):
                    break  # stopped at the culprit (or another runner moved it)
            elif not done:
                break  # another runner moved the checkpoint
            else:
                applied += len(page)
            current = msgspec.structs.replace(current, position=page[-1].position)
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
    ) -> tuple[list[Build], _Failed]:
        """Apply `page` to each build of `group` still at its checkpoint, with the
        checkpoints, in one transaction; returns the builds done and those whose
        apply raised (rolled back to their savepoint, to be isolated)."""
        return self._commit(
            [
                (p, b, partial(p.apply, page, self.conn, b.tables), page[-1].position)
                for p, b in group
            ],
            at_head=at_head,
        )

    def _commit(self, work: list[_Work], *, at_head: bool) -> tuple[list[Build], _Failed]:
        """Run each build's write (a page's apply, a buffer's flush) and move its
        checkpoint, each in a savepoint, all in one transaction; builds no longer
        at their checkpoint are left out. Returns the builds done and those whose
        write raised (rolled back to their savepoint)."""
        done: list[Build] = []
        failed: _Failed = []
        with write_transaction(self.conn):
            for projection, build, write, position in work:
                if not self._still_at(build):
                    continue  # another runner moved it, or an operator stopped it
                self.conn.execute("SAVEPOINT projection_page")
                try:
                    began = time.monotonic()
                    write()
                    self._write_seconds[(build.name, build.build)] = time.monotonic() - began
                    self._checkpoint(build, position, caught_up=at_head)
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

    def _create_read_indexes(self, build: Build) -> None:
        """A build at the head gets the indexes only its readers need
        (`protocol.ReadIndexed`), once: before a rebuild swaps in, or when an
        active build first catches up. `IF NOT EXISTS`, so a restart or a
        second process costs one no-op transaction."""
        key = (build.name, build.build)
        projection = self.projections[build.name]
        if key in self._indexed or not isinstance(projection, ReadIndexed):
            return
        began = time.monotonic()
        with write_transaction(self.conn):
            if not self._still_at(build):
                return  # moved on, stopped or retired meanwhile: a later round sees
            projection.create_read_indexes(table_maker(self.conn), build.tables)
        self._indexed.add(key)
        seconds = time.monotonic() - began
        if seconds >= 1:
            logger.info(
                "projection %s build %d: read indexes created in %.1f s",
                build.name,
                build.build,
                seconds,
            )

    def _swap_in(self, build: Build, position: int) -> None:
        try:
            with write_transaction(self.conn):
                current = load_build(self.conn, build.name, build.build)
                if (
                    current is None
                    or current.stopped
                    or current.active
                    or current.position != position
                ):
                    return
                active = next((b for b in load_builds(self.conn, [build.name]) if b.active), None)
                if active is not None and active.position > position:
                    return  # the new build would serve older data: one more round
                retired = swap(self.conn, build.name, build.build, clock=self._clock)
        except Exception as error:
            if not is_lock_timeout(error):
                raise
            logger.info("projection %s: readers held the views; swapping next round", build.name)
            return
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
