"""Which process drives the projections, and the loops it runs.

Several processes may open one read-model database: `playerlog serve --workers
N`, a `playerlog worker`, an operator's `playerlog projections rebuild`. Two
runners on one database are never wrong (each page checks its checkpoint), but
they waste work and queue on the one write lock, so exactly one drives: the
process holding the runner lock (`runner_lock`: a `flock` beside a SQLite views
file, a session advisory lock on PostgreSQL). The others stand by and try the
lock every `lock_poll` seconds. A dead process's lock is dropped (by the kernel,
or by the server with its connection), so a standby takes over within that
interval; the checkpoint, written in the same transaction as each page, makes
the new driver start exactly where the old one stopped. A driver that finds its
lock lost (its PostgreSQL connection broke) stops driving and stands by.

* `ProjectionWorker`: the loop of `playerlog serve` (in-process, `start`/`stop`
  around the API's lifetime) and of `playerlog worker` (`run(stop)`).
* `follow_rebuilds`: what `playerlog projections rebuild` does after starting a
  rebuild: drive it here when no other process drives, else watch it, until it
  swaps in, stops on an error, or is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import psycopg

from eventstore import EventLog
from projections.database import ViewsLocation, open_views
from projections.protocol import Projection
from projections.registry import BUILDING, LIVE, Build, load_build
from projections.runner import DEFAULT_POLL_INTERVAL, ProjectionRunner
from projections.runner_lock import (
    FileRunnerLock,
    PostgresRunnerLock,
    RunnerHolder,
    RunnerLock,
    lock_path_for,
    runner_holder,
    runner_lock_for,
)
from projections.status import ProjectionStatus, status

__all__ = [
    "DEFAULT_LOCK_POLL",
    "Companion",
    "FileRunnerLock",
    "LockLost",
    "PostgresRunnerLock",
    "ProjectionWorker",
    "RunnerHolder",
    "RunnerLock",
    "follow_rebuilds",
    "lock_path_for",
    "runner_holder",
    "runner_lock_for",
]

DEFAULT_LOCK_POLL = 1.0
"""Seconds between a standby's tries for the runner lock: the longest takeover."""

logger = logging.getLogger("playerlog.projections")

_T = TypeVar("_T")


class LockLost(Exception):  # noqa: N818  (what happened)
    """The runner lock this process held is gone (its database session ended)."""


Companion = Callable[[asyncio.Event], Coroutine[Any, Any, None]]
"""An `async run(stop)` to run beside the projections while the lock is held."""


class ProjectionWorker:
    """Drives the projections in this process while it holds the runner lock.

    Stands by (trying the lock every `lock_poll` seconds) while another process
    drives. All database work runs in threads: the event loop (the API's, under
    `playerlog serve`) stays free.
    """

    def __init__(
        self,
        log: EventLog,
        projections: Sequence[Projection],
        *,
        views: ViewsLocation,
        lock: RunnerLock | None = None,
        lock_poll: float = DEFAULT_LOCK_POLL,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        page_size: int | None = None,
        companions: Sequence[Companion] = (),
        runner_options: Mapping[str, Any] | None = None,
    ) -> None:
        if lock_poll <= 0:
            raise ValueError("lock_poll must be positive (seconds between tries for the lock)")
        self.log = log
        self.projections = list(projections)
        self.views = views
        self.lock_poll = lock_poll
        self.poll_interval = poll_interval
        self.page_size = page_size
        self.companions = list(companions)
        """Work that must run in exactly one process, beside the projections
        (delivery to destinations): run while this process holds the lock."""
        self.runner_options = dict(runner_options or {})
        """More `ProjectionRunner` keywords (`max_buffered_keys`, `processes`, and
        `log_url`: the URL the log was opened with, for its helper processes)."""
        self._lock = lock if lock is not None else runner_lock_for(views)
        self._runner: ProjectionRunner | None = None
        self._standing_by = False
        self._lock_failing = False
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        """Whether this process drives the projections now."""
        return self._runner is not None

    async def run(self, stop: asyncio.Event, *, tried: asyncio.Event | None = None) -> None:
        """Stand by or drive until `stop` is set; `tried` is set after the first try
        for the lock."""
        while not stop.is_set():
            runner = await _finish_in_thread(self._take_over)
            if tried is not None:
                tried.set()
            if runner is None:
                await _sleep_unless(stop, self.lock_poll)
                continue
            try:
                # A TaskGroup: if one fails, the others stop too and the lock is
                # handed back, so a standby takes over all of them together.
                async with asyncio.TaskGroup() as group:
                    group.create_task(runner.run(stop=stop))
                    for companion in self.companions:
                        group.create_task(companion(stop))
                    group.create_task(self._keep_checking_the_lock(stop))
            except* LockLost:
                logger.warning("projections: this process lost the runner lock; standing by")
            finally:
                await _finish_in_thread(self._hand_back)

    async def start(self) -> None:
        """Run in the background (the API's startup); returns once the first try for
        the lock is done, so whether this process drives is known when it returns."""
        if self._task is not None:
            return
        self._stop = asyncio.Event()
        tried = asyncio.Event()
        self._task = asyncio.create_task(self.run(self._stop, tried=tried))
        first_try = asyncio.create_task(tried.wait())
        await asyncio.wait({self._task, first_try}, return_when=asyncio.FIRST_COMPLETED)
        first_try.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await first_try
        if self._task.done():
            self._task.result()  # it failed before even trying: say why

    async def stop(self) -> None:
        """Stop after the page under way (it commits or rolls back whole)."""
        if self._task is None or self._stop is None:
            return
        self._stop.set()
        task, self._task = self._task, None
        await task

    async def _keep_checking_the_lock(self, stop: asyncio.Event) -> None:
        """Raise `LockLost` once the lock is no longer this process's (it drives
        only while it holds it: the companions must never run twice)."""
        while not stop.is_set():
            await _sleep_unless(stop, self.lock_poll)
            if not stop.is_set() and not await asyncio.to_thread(self._lock.still_held):
                raise LockLost

    def _take_over(self) -> ProjectionRunner | None:
        try:
            if not self._lock.acquire():
                if not self._standing_by:
                    self._standing_by = True
                    holder = self._lock.holder()
                    logger.info(
                        "projections: another process drives them (pid %s); standing by",
                        holder.pid if holder is not None else "unknown",
                    )
                return None
        except (OSError, psycopg.Error) as error:
            # The lock's database is unreachable (PostgreSQL): stand by and try again,
            # saying so once, not every try.
            if not self._lock_failing:
                self._lock_failing = True
                logger.warning("projections: cannot try the runner lock (%s); retrying", error)
            return None
        self._lock_failing = False
        try:
            self._runner = ProjectionRunner(
                self.log,
                self.projections,
                views=self.views,
                page_size=self.page_size,
                poll_interval=self.poll_interval,
                **self.runner_options,
            )
        except Exception:
            self._lock.release()
            logger.exception("projections: could not start the runner; trying again")
            return None
        self._standing_by = False
        logger.info(
            "projections: this process (pid %d) drives %s",
            os.getpid(),
            ", ".join(p.name for p in self.projections),
        )
        return self._runner

    def _hand_back(self) -> None:
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                runner.close()
        finally:
            self._lock.release()
        logger.info("projections: this process (pid %d) stopped driving them", os.getpid())


async def _finish_in_thread(work: Callable[[], _T]) -> _T:
    """Run `work` in a thread; a cancellation meanwhile waits for it to finish, so a
    lock taken or a runner opened there is never left behind half-way."""
    task = asyncio.ensure_future(asyncio.to_thread(work))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


def _finished(build: Build | None) -> bool:
    """Active and live, or stopped by an error, or cancelled/retired by someone."""
    if build is None or build.stopped:
        return True
    if build.state not in (BUILDING, LIVE):
        return True
    return build.active and build.state == LIVE


def follow_rebuilds(
    log: EventLog,
    projections: Sequence[Projection],
    views: ViewsLocation,
    builds: Sequence[Build],
    *,
    lock: RunnerLock | None = None,
    progress: Callable[[list[ProjectionStatus]], None] | None = None,
    progress_every: float = 0.25,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    page_size: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
    runner_options: Mapping[str, Any] | None = None,
) -> list[Build]:
    """Bring `builds` (just started rebuilds) to their end and return them as they ended.

    When no other process drives the projections, this one takes the runner lock
    and drives them all (the rebuilds, and the active builds' live following) until
    every one of `builds` has swapped in; otherwise it watches the registry while
    the driver does the work, and takes over if the driver goes away. It returns
    early for a build that stops on an event it cannot apply (see its `error`) or
    that someone cancels. `progress` gets the builds' status at most every
    `progress_every` seconds, and once at the end.
    """
    wanted = {(b.name, b.build) for b in builds}
    lock = lock if lock is not None else runner_lock_for(views)
    runner: ProjectionRunner | None = None
    conn = open_views(views)
    last_shown = -progress_every

    def show() -> None:
        if progress is not None:
            current = status(conn, log, {name for name, _ in wanted})
            progress([s for s in current if (s.name, s.build) in wanted])

    try:
        while True:
            if runner is None and lock.acquire():
                runner = ProjectionRunner(
                    log,
                    projections,
                    views=views,
                    page_size=page_size,
                    **(runner_options or {}),
                )
            applied = runner.step() if runner is not None else 0
            ended = [load_build(conn, name, number) for name, number in sorted(wanted)]
            if all(_finished(b) for b in ended):
                show()
                return [b for b in ended if b is not None]
            if time.monotonic() - last_shown >= progress_every:
                last_shown = time.monotonic()
                show()
            if not applied:
                sleep(poll_interval)
    finally:
        try:
            if runner is not None:
                runner.close()
        finally:
            lock.release()
            conn.close()
