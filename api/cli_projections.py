"""`playerlog worker` and `playerlog projections status|rebuild|retry|skip|cancel`.

Every command opens the log (`--db` / PLAYERLOG_DB) and the read models
(`--views` / PLAYERLOG_VIEWS, else beside a SQLite log or in a PostgreSQL log's
own schema), and works on them
directly: it runs the same way whether or not a `serve` or `worker` process is
up, and whatever it changes, those processes see at their next page.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TextIO

import msgspec
import uvloop

from api.logs import configure_logging
from api.projections_service import ProjectionsReport
from api.settings import Settings
from delivery import DeliveryRunner, DestinationError, load_destinations_file
from eventstore import EventLog, open_log
from projections import (
    Build,
    Projection,
    ProjectionStateError,
    ProjectionStatus,
    cancel_rebuild,
    load_builds,
    open_views,
    retry,
    skip,
    start_rebuild,
    status,
)
from projections.database import ViewsLocation
from projections.standard import projections_for
from projections.worker import (
    ProjectionWorker,
    RunnerHolder,
    follow_rebuilds,
    runner_holder,
    runner_lock_for,
)

__all__ = [
    "VIEWS_HELP",
    "ProgressLine",
    "add_projection_commands",
    "add_worker_command",
    "describe_progress",
    "format_status",
    "run_projection_command",
    "run_worker",
]

DB_HELP = "database URL (default: $PLAYERLOG_DB, else sqlite:///playerlog.db)"
VIEWS_HELP = (
    "read models: a SQLite file or a postgresql:// URL (default: $PLAYERLOG_VIEWS, else "
    "beside a SQLite log: x/playerlog.db -> x/playerlog.views.db; a PostgreSQL log's own "
    "database and schema)"
)


RATES_HELP = (
    "CSV file of dated EUR rates, date,currency,rate (default: $PLAYERLOG_EUR_RATES, "
    "else none: only EUR amounts and amount_eur convert; see docs/money.md)"
)


DESTINATIONS_HELP = (
    "destinations file applied at start (default: $PLAYERLOG_DESTINATIONS; see "
    "docs/destinations.md); the process driving the projections also delivers"
)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", help=DB_HELP)
    parser.add_argument("--views", metavar="PATH|URL", help=VIEWS_HELP)
    parser.add_argument("--eur-rates", metavar="PATH", help=RATES_HELP)


def add_worker_command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
) -> None:
    worker = commands.add_parser(
        "worker",
        help="drive the projections without serving HTTP",
        description=(
            "Drive the projections (catch up, then follow the log) without serving HTTP. "
            "Exactly one process drives them at a time, the one holding the runner lock "
            "(a lock file beside SQLite read models, an advisory lock in PostgreSQL); "
            "the others (serve, more workers) stand by and take "
            "over within seconds ($PLAYERLOG_RUNNER_LOCK_POLL, default 1 s) when it dies. "
            "SIGTERM or SIGINT stops it after the page under way."
        ),
    )
    _add_common(worker)
    worker.add_argument("--destinations", metavar="FILE", help=DESTINATIONS_HELP)


def add_projection_commands(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
) -> None:
    projections = commands.add_parser(
        "projections",
        help="status, rebuild, retry, skip and cancel projections",
        description=(
            "Operate the projections (the read models folded from the log) directly on "
            "the database, whether or not serve or worker processes run."
        ),
    )
    actions = projections.add_subparsers(dest="projections_command", required=True,
                                         metavar="ACTION")
    show = actions.add_parser(
        "status", help="where each projection is, how far behind, and why it stopped",
        description=(
            "Show every projection's current builds: version, build, state (live, or "
            "rebuilding with progress), position, the log's head, lag in events and "
            "seconds, the error that stopped it, and which process drives them."
        ),
    )
    _add_common(show)
    show.add_argument("--json", action="store_true",
                      help="print one JSON object (the body of GET /v1/projections, "
                      "tracebacks included)")

    rebuild = actions.add_parser(
        "rebuild", help="rebuild projections from zero without downtime",
        description=(
            "Start building NAME (or every projection) from zero beside the active build, "
            "which keeps serving reads; the new build replaces it atomically at the head. "
            "Unless --no-wait, drive it here with a progress bar on stderr (events done of "
            "total, rate, time left), or, when serve or worker drives the projections, "
            "show its progress until it swaps in. A rebuild already under way is followed, "
            "not restarted."
        ),
    )
    _add_common(rebuild)
    rebuild.add_argument("name", nargs="?", metavar="NAME", help="the projection to rebuild")
    rebuild.add_argument("--all", action="store_true", help="rebuild every projection")
    rebuild.add_argument("--no-wait", action="store_true",
                         help="start the rebuild and return; serve or worker builds it")

    again = actions.add_parser(
        "retry", help="apply again the event a projection stopped at",
        description=(
            "Clear the error of a stopped projection so its runner applies the same event "
            "again: for a cause since fixed (a bug fixed and deployed, disk space freed)."
        ),
    )
    _add_common(again)
    again.add_argument("name", metavar="NAME", help="the stopped projection")

    leave = actions.add_parser(
        "skip", help="skip exactly the event a projection stopped at",
        description=(
            "Skip the one event that stopped NAME and resume after it. Refused unless "
            "NAME is stopped at exactly --position; recorded with who and when (shown "
            "by status)."
        ),
    )
    _add_common(leave)
    leave.add_argument("name", metavar="NAME", help="the stopped projection")
    leave.add_argument("--position", type=int, required=True, metavar="N",
                       help="the log position it stopped at (from status)")
    leave.add_argument("--by", metavar="WHO",
                       help="who skips it, for the record (default: your login name)")

    drop = actions.add_parser(
        "cancel", help="abandon a rebuild under way",
        description="Abandon the rebuild of NAME under way; the active build stays.",
    )
    _add_common(drop)
    drop.add_argument("name", metavar="NAME", help="the projection whose rebuild to abandon")


def _fail(command: str, message: str, code: int = 2) -> int:
    sys.stderr.write(f"playerlog {command}: {message}\n")
    return code


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        args.db,
        views=args.views,
        eur_rates=args.eur_rates,
        destinations=getattr(args, "destinations", None),
    )


# -- worker -----------------------------------------------------------------------------


def run_worker(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        views = settings.views_location()
        make_projections = projections_for(settings.eur_rates)
        if settings.destinations:
            load_destinations_file(settings.destinations)
    except (ValueError, OSError, DestinationError) as problem:
        return _fail("worker", str(problem))
    configure_logging(settings.log_level)
    log = open_log(settings.db_url)
    try:
        projections = make_projections()
        delivery = DeliveryRunner(log, destinations_file=settings.destinations)
        worker = ProjectionWorker(
            log,
            projections,
            views=views,
            lock=runner_lock_for(views),
            lock_poll=settings.runner_lock_poll,
            companions=[delivery.run],
            runner_options=settings.driving_options(),
        )
        # uvloop, as serve's API processes use: a bare JetStream publish loop ran
        # about 1.4x faster on it than on asyncio's default loop (bench/scale).
        uvloop.run(_work_until_signalled(worker))
    finally:
        log.close()
    return 0


async def _work_until_signalled(worker: ProjectionWorker) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await worker.run(stop)


# -- projections ------------------------------------------------------------------------


def run_projection_command(args: argparse.Namespace) -> int:
    command = f"projections {args.projections_command}"
    try:
        settings = _settings(args)
        views = settings.views_location()
    except ValueError as problem:
        return _fail(command, str(problem))
    projections = {p.name: p for p in projections_for(settings.eur_rates)()}
    names = [args.name] if getattr(args, "name", None) else []
    unknown = [n for n in names if n not in projections]
    if unknown:
        return _fail(command, f"no projection {unknown[0]!r}; the projections are "
                     f"{', '.join(sorted(projections))}")
    log = open_log(settings.db_url)
    try:
        if args.projections_command == "status":
            return _status(log, views, projections, as_json=args.json)
        if args.projections_command == "rebuild":
            return _rebuild(args, log, views, projections, settings)
        return _change(args, command, views)
    finally:
        log.close()


def _status(
    log: EventLog, views: ViewsLocation, projections: dict[str, Projection], *, as_json: bool
) -> int:
    conn = open_views(views)
    try:
        states = status(conn, log, projections)
    finally:
        conn.close()
    holder = runner_holder(views)
    if as_json:
        report = ProjectionsReport(projections=states, runner=holder)
        sys.stdout.write(msgspec.json.encode(report).decode() + "\n")
    else:
        sys.stdout.write(format_status(states, holder))
    return 0


def _change(args: argparse.Namespace, command: str, views: ViewsLocation) -> int:
    conn = open_views(views)
    try:
        if args.projections_command == "retry":
            for build in retry(conn, args.name):
                sys.stdout.write(
                    f"{args.name} build {build.build}: error cleared; the runner applies "
                    f"position {build.error_position} again\n"
                )
        elif args.projections_command == "skip":
            by = args.by or getpass.getuser()
            skipped = skip(conn, args.name, args.position, by=by)
            sys.stdout.write(
                f"{args.name} build {skipped.build}: skipped position {skipped.position} "
                f"(event {skipped.event_id}, {skipped.type}) by {by}\n"
            )
        else:
            cancelled = cancel_rebuild(conn, args.name)
            if cancelled is None:
                return _fail(command, f"no rebuild of {args.name!r} is under way", 1)
            sys.stdout.write(f"{args.name} build {cancelled.build}: rebuild cancelled\n")
    except ProjectionStateError as problem:
        return _fail(command, str(problem), 1)
    finally:
        conn.close()
    return 0


def _rebuild(
    args: argparse.Namespace,
    log: EventLog,
    views: ViewsLocation,
    projections: dict[str, Projection],
    settings: Settings,
) -> int:
    if bool(args.all) == bool(args.name):
        return _fail("projections rebuild", "give a projection NAME or --all (not both)")
    names = sorted(projections) if args.all else [args.name]
    conn = open_views(views)
    try:
        builds = []
        for name in names:
            under_way = {b.build for b in load_builds(conn, [name]) if not b.active}
            build = start_rebuild(conn, projections[name])
            builds.append(build)
            verb = "following the rebuild under way" if build.build in under_way else "started"
            sys.stdout.write(f"{name}: {verb}, build {build.build} (version {build.version})\n")
    finally:
        conn.close()
    if args.no_wait:
        holder = runner_holder(views)
        sys.stdout.write(
            "no process drives the projections now; `playerlog worker` or `playerlog serve` "
            "will build it\n" if holder is None
            else f"process {holder.pid} builds it; see `playerlog projections status`\n"
        )
        return 0
    line = ProgressLine(sys.stderr)
    try:
        ended = follow_rebuilds(
            log, list(projections.values()), views, builds, progress=line.show,
            runner_options=settings.driving_options(),
        )
    except KeyboardInterrupt:
        line.close()
        return _fail("projections rebuild", "stopped following; the rebuild stays under way "
                     "(serve, worker or this command again carries it on)", 130)
    line.close()
    return _report_rebuilds(ended)


def _report_rebuilds(ended: Sequence[Build]) -> int:
    code = 0
    for build in ended:
        if build.stopped:
            code = 1
            sys.stdout.write(
                f"{build.name}: build {build.build} stopped at position {build.error_position} "
                f"(event {build.error_event_id}, {build.error_type}): {build.error}\n"
                f"  {_remedy(build.name, build.error_position)}\n"
            )
        elif build.active:
            sys.stdout.write(
                f"{build.name}: build {build.build} is active at position {build.position}\n"
            )
        else:
            code = 1
            sys.stdout.write(f"{build.name}: build {build.build} was {build.state}\n")
    return code


def _remedy(name: str, position: int | None) -> str:
    return (
        f"fix the cause, then `playerlog projections retry {name}`; or skip that one event: "
        f"`playerlog projections skip {name} --position {position}`"
    )


# -- text output --------------------------------------------------------------------------


def _count(value: float) -> str:
    return f"{value:,.0f}"


def describe_progress(states: Sequence[ProjectionStatus]) -> str:
    """`players: 120,000 / 1,000,000 events (12.0%), 95,321 events/s, 0:00:09 left`."""
    done = total = 0
    rates: list[float] = []
    for state in states:
        if state.progress is None:  # swapped in already: at the head
            done += state.position
            total += state.position
            continue
        done += state.progress.done
        total += state.progress.total
        if state.progress.rate is not None:
            rates.append(state.progress.rate)
    names = ", ".join(sorted({s.name for s in states})) or "nothing"
    share = 100.0 if total == 0 else 100.0 * done / total
    text = f"{names}: {_count(done)} / {_count(total)} events ({share:.1f}%)"
    rate = sum(rates) if rates else None
    if rate:
        left = timedelta(seconds=round((total - done) / rate))
        text += f", {_count(rate)} events/s, {left} left"
    elif done < total:
        text += ", rate not measured yet"
    return text


class ProgressLine:
    """The progress of a rebuild on `stream`: redrawn in place on a terminal; on
    anything else (a log file, CI) a plain line every `every` seconds and the last one."""

    def __init__(
        self,
        stream: TextIO,
        *,
        every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.every = every
        self._clock = clock
        self._last_written: float | None = None
        self._pending: str | None = None

    def show(self, states: list[ProjectionStatus]) -> None:
        text = describe_progress(states)
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
            self._last_written = self._clock()
            return
        now = self._clock()
        if self._last_written is None or now - self._last_written >= self.every:
            self.stream.write(text + "\n")
            self.stream.flush()
            self._last_written = now
            self._pending = None
        else:
            self._pending = text

    def close(self) -> None:
        if self.tty and self._last_written is not None:
            self.stream.write("\n")
        elif self._pending is not None:
            self.stream.write(self._pending + "\n")
            self._pending = None
        self.stream.flush()


def format_status(states: Sequence[ProjectionStatus], holder: RunnerHolder | None) -> str:
    """The text of `playerlog projections status`: a table, then errors and the driver."""
    header = ("NAME", "BUILD", "VERSION", "ACTIVE", "STATE", "POSITION", "HEAD", "LAG",
              "LAG S", "PROGRESS")
    rows = [header]
    for s in states:
        state = "stopped" if s.stopped else s.state
        rows.append((
            s.name, str(s.build), str(s.version), "yes" if s.active else "no", state,
            str(s.position), str(s.head), str(s.lag_events), f"{s.lag_seconds:.1f}",
            describe_progress([s]).split(": ", 1)[1] if s.progress is not None else "-",
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  " + row[-1]
        for row in rows
    ]
    for s in states:
        if s.error is not None:
            lines.append(
                f"{s.name} build {s.build} stopped at position {s.error.position} "
                f"(event {s.error.event_id}, {s.error.type}): {s.error.message}"
            )
            lines.append(f"  {_remedy(s.name, s.error.position)}")
        lines.extend(
            f"{s.name} build {s.build} skipped position {k.position} (event {k.event_id}) "
            f"by {k.skipped_by} at {k.skipped_at}"
            for k in s.skipped
        )
    if holder is None:
        lines.append("driven by: no process (start `playerlog serve` or `playerlog worker`)")
    else:
        lines.append(f"driven by: process {holder.pid} on {holder.host} since {holder.since}")
    return "\n".join(line.rstrip() for line in lines) + "\n"
