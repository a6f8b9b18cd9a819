"""Helper processes: projections far behind the head fold in parallel.

Python folds on one core at a time (the GIL), so a rebuild of every projection
in one process runs at the sum of their costs an event. When two or more
projections are far behind the head (a rebuild of all, a worker started after
downtime), the runner hands them, in groups, to helper processes: each runs a
`ProjectionRunner` of its own over the same log and read-model database, for
its group only, until its builds are at the head, then flushes and exits. The
runner meanwhile drives every other projection (live following goes on), and
takes a helped projection back once its helper has exited, for the last events
and the live following.

What stays true:

* a page (or a flush) and its checkpoint are still one transaction, written by
  whoever drives the build: a helper, or the runner once the helper is gone,
  never both at once (and the checkpoint compare-and-set would catch it if they
  were). The read-model database takes one writer at a time (SQLite's write
  lock, PostgreSQL's advisory lock), so helpers fold in parallel and queue to
  write: the folding is what costs.
* a helper ends with the runner that started it: `stop()` asks it to stop
  after its step under way (it flushes what it folded and exits), and a helper
  whose parent died exits at its next step. A helper killed mid-step loses only
  its unflushed buffer, as a crashed runner would: the checkpoint says where
  to fold again from.
* a helper that fails (cannot open the log, crashes) is logged, and the runner
  catches its projections up itself from their checkpoints.

Groups: the projections are sorted by `catch_up_cost` (an optional attribute,
1.0 when absent: the fold's relative cost an event, measured) and each goes to
the least loaded group (longest processing time first), one group a process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from typing import Final

from eventstore import open_log
from projections.database import Synchronous, ViewsLocation
from projections.protocol import Projection

__all__ = [
    "DEFAULT_HELPER_MIN_EVENTS",
    "HELPER_BUSY_TIMEOUT",
    "Helper",
    "HelperSettings",
    "catch_up_cost",
    "default_processes",
    "plan_groups",
    "start_helper",
    "wait_for_any",
]

DEFAULT_HELPER_MIN_EVENTS: Final = 200_000
"""Helpers start only for projections at least this far behind the head: below,
starting a process (about a second) costs more than it gives."""
HELPER_BUSY_TIMEOUT: Final = 600.0
"""Seconds a helper waits for the read-model database's write lock: another
helper's flush into tables of millions of rows holds it for seconds."""
_STOP_GRACE: Final = 120.0
"""Seconds `Helper.stop` waits for a helper to flush and exit before killing it
(killed, it loses its unflushed buffer, nothing else)."""

logger = logging.getLogger("playerlog.projections")


def default_processes() -> int:
    """Helper processes at most: one a core this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def catch_up_cost(projection: Projection) -> float:
    """The projection's fold cost an event, relative to the others (1.0 unless it says)."""
    cost = getattr(projection, "catch_up_cost", 1.0)
    return float(cost) if isinstance(cost, int | float) and cost > 0 else 1.0


def plan_groups(projections: Sequence[Projection], processes: int) -> list[list[Projection]]:
    """At most `processes` groups of about equal cost (longest processing time
    first); none empty, the groups and each group in the order the projections
    were given."""
    if processes < 1:
        raise ValueError("processes must be at least 1")
    order = {p.name: i for i, p in enumerate(projections)}
    groups: list[list[Projection]] = [[] for _ in range(min(processes, len(projections)))]
    loads = [0.0] * len(groups)
    for projection in sorted(projections, key=catch_up_cost, reverse=True):
        lightest = loads.index(min(loads))
        groups[lightest].append(projection)
        loads[lightest] += catch_up_cost(projection)
    ordered = [sorted(group, key=lambda p: order[p.name]) for group in groups]
    return sorted(ordered, key=lambda group: order[group[0].name])


@dataclass(frozen=True)
class HelperSettings:
    """The runner settings a helper copies (its pages and write-behind bounds)."""

    page_size: int
    catch_up_page_size: int
    flush_events: int
    flush_seconds: float
    max_buffered_keys: int
    synchronous: Synchronous


@dataclass(frozen=True)
class _Job:
    """What a helper process gets (pickled): whom to drive, where, how."""

    log_url: str
    views: ViewsLocation
    projections: list[Projection]
    settings: HelperSettings
    parent_pid: int


@dataclass
class Helper:
    """One helper process and what the runner knows of it."""

    names: frozenset[str]
    """The projections it drives: the runner leaves them alone while it lives."""
    process: BaseProcess
    stop_event: Event
    events: Synchronized[int]
    """Events it has applied or folded so far (it adds after every step)."""
    reported: int = 0
    """Of `events`, how many the runner has counted already."""

    def new_events(self) -> int:
        """Events applied since the last call (what the runner's step reports)."""
        done = int(self.events.value)
        new, self.reported = done - self.reported, done
        return new

    def stop(self, grace: float = _STOP_GRACE) -> None:
        """Ask it to stop after its step under way (it flushes, then exits); kill it
        if it has not after `grace` seconds."""
        self.stop_event.set()
        self.process.join(grace)
        if self.process.is_alive():
            logger.warning(
                "projections helper for %s did not stop in %.0f s; killing it",
                ", ".join(sorted(self.names)),
                grace,
            )
            self.process.kill()
            self.process.join()


def start_helper(
    log_url: str,
    views: ViewsLocation,
    projections: Sequence[Projection],
    settings: HelperSettings,
) -> Helper:
    """Start a helper process driving `projections` until they reach the head.

    `spawn`, not `fork`: the parent may hold threads, locks and open database
    connections (an API server) that a forked child would copy half-way.
    """
    context = multiprocessing.get_context("spawn")
    stop_event = context.Event()
    events = context.Value("q", 0)
    process = context.Process(
        target=_helper_main,
        args=(_Job(log_url, views, list(projections), settings, os.getpid()), stop_event, events),
        name=f"playerlog-projections-{'-'.join(p.name for p in projections)}",
        daemon=True,
    )
    process.start()
    return Helper(frozenset(p.name for p in projections), process, stop_event, events)


def wait_for_any(helpers: Sequence[Helper], timeout: float) -> None:
    """Return when one of `helpers` exits, or after `timeout` seconds."""
    wait([h.process.sentinel for h in helpers], timeout)


def _helper_main(job: _Job, stop_event: Event, events: Synchronized[int]) -> None:
    from projections.runner import ProjectionRunner  # noqa: PLC0415  (the runner imports this module)

    # Ctrl-C reaches the whole process group: the parent decides, and stops its
    # helpers itself (`Helper.stop`)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = job.settings
    log = open_log(job.log_url)
    try:
        with ProjectionRunner(
            log,
            job.projections,
            views=job.views,
            page_size=settings.page_size,
            catch_up_page_size=settings.catch_up_page_size,
            flush_events=settings.flush_events,
            flush_seconds=settings.flush_seconds,
            max_buffered_keys=settings.max_buffered_keys,
            synchronous=settings.synchronous,
            processes=1,
            busy_timeout=HELPER_BUSY_TIMEOUT,
        ) as runner:
            while not stop_event.is_set() and os.getppid() == job.parent_pid:
                try:
                    applied = runner.step()
                except Exception:
                    logger.exception("projections helper: round failed; retrying")
                    time.sleep(1.0)
                    continue
                with events.get_lock():
                    events.value += applied
                if not applied or not runner.behind:
                    break
    finally:
        log.close()
