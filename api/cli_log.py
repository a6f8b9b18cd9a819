"""`playerlog log export` and `playerlog log import`: the analysts' tools.

`add_log_commands` adds the `log` command to the `playerlog` parser; `run_log_command`
runs it. The work is done by `api.log_export` and `api.log_import`; this module opens
files and the log, shows progress and prints the summary. docs/analysts.md is the guide.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import BinaryIO, Final

import msgspec

from api.log_export import export_log
from api.log_import import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_CLIENT_ID,
    ImportOptions,
    ImportSummary,
    LogImporter,
    Rejection,
    import_lines,
)
from api.log_progress import Progress
from api.settings import Settings
from api.tenants import TenantSettingsStore
from api.tokens import ENVIRONMENTS
from eventstore import EventLog, LogError, open_log

__all__ = ["add_log_commands", "run_log_command"]

DB_HELP: Final = "database URL (default: $PLAYERLOG_DB, else sqlite:///playerlog.db)"
_SHOWN_REJECTIONS: Final = 5
_COUNT_CHUNK: Final = 1 << 20

EXIT_OK: Final = 0
EXIT_REJECTED: Final = 1
EXIT_FAILED: Final = 2


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _not_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def add_log_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `log export` and `log import` to the `playerlog` command tree."""
    log = commands.add_parser(
        "log",
        help="export the log as JSON lines, or import (backfill) a file of events",
        description="Export the log as JSON lines, or backfill it from a file of events "
        "through the API's own validation and dedup. See docs/analysts.md.",
    )
    actions = log.add_subparsers(dest="log_command", required=True, metavar="ACTION")

    export = actions.add_parser(
        "export",
        help="write the log as JSON lines, one event a line",
        description="Write events as JSON lines (position, envelope fields, payload exactly "
        "as received) to stdout or a file, streaming a page at a time. Stops at the log's "
        "head as of the start; the summary on stderr gives the last position, for the next "
        "--after.",
    )
    export.add_argument("--db", help=DB_HELP)
    export.add_argument(
        "--after",
        type=_not_negative,
        default=0,
        metavar="N",
        help="only events after log position N (default 0: from the start)",
    )
    export.add_argument(
        "--limit", type=_not_negative, metavar="N", help="at most N events (default: all)"
    )
    export.add_argument("--tenant", help="only this tenant's events")
    export.add_argument("--env", choices=ENVIRONMENTS, help="only this environment's events")
    export.add_argument(
        "--type",
        action="append",
        dest="types",
        metavar="TYPE",
        help="only events of this type (an event_name, identify, or a unified event); "
        "repeat for several",
    )
    export.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")

    load = actions.add_parser(
        "import",
        help="backfill events from a JSON-lines file, validated and deduplicated as by the API",
        description="Append the items of a JSON-lines file to the log as the API would: "
        "export lines, or bare track events, identify bodies and unified items. Invalid "
        "and conflicting lines are written with their errors to the rejects file. Exit "
        "status: 0 when every line was accepted (new or duplicate), 1 when any was "
        "rejected, 2 when the import could not run.",
    )
    load.add_argument("--db", help=DB_HELP)
    load.add_argument("file", metavar="FILE", help="the JSON-lines file to import; - reads stdin")
    load.add_argument(
        "--tenant", help="the tenant of every line (needed for lines that do not carry one)"
    )
    load.add_argument(
        "--env",
        choices=ENVIRONMENTS,
        help="the environment of every line (needed for lines that do not carry one)",
    )
    load.add_argument(
        "--source",
        choices=("track", "identify", "unified"),
        help="treat every item as this kind instead of telling it by its fields",
    )
    load.add_argument(
        "--client-id",
        help=f"client id recorded on every event (default: the line's, else {DEFAULT_CLIENT_ID})",
    )
    load.add_argument(
        "--rejects",
        metavar="PATH",
        help="where rejected lines go with their errors (default: FILE.rejects.jsonl)",
    )
    load.add_argument(
        "--batch-size",
        type=_positive,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"events per append transaction (default {DEFAULT_BATCH_SIZE})",
    )
    load.add_argument("--no-progress", action="store_true", help="do not report progress on stderr")


def run_log_command(args: argparse.Namespace) -> int:
    """Run `log export` or `log import`; returns the exit status."""
    if args.log_command == "export":
        return _export(args)
    return _import(args)


# -- export ------------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    try:
        out: BinaryIO = (
            Path(args.output).open("wb") if args.output else sys.stdout.buffer  # noqa: SIM115
        )
    except OSError as problem:
        sys.stderr.write(f"playerlog log export: cannot write {args.output}: {problem}\n")
        return EXIT_FAILED
    log = open_log(args.db)
    try:
        summary = export_log(
            log,
            out,
            after=args.after,
            limit=args.limit,
            tenant=args.tenant,
            environment=args.env,
            types=args.types,
        )
        out.flush()
    except BrokenPipeError:
        # The reader stopped early (`| head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's last flush does not complain either.
        if not args.output:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    finally:
        log.close()
        if args.output:
            out.close()
    last = "none" if summary.last_position is None else f"{summary.last_position:,}"
    sys.stderr.write(
        f"exported {summary.events:,} events; last position {last}, "
        f"log head {summary.head:,} at the start\n"
    )
    return EXIT_OK


# -- import ------------------------------------------------------------------------------


class _RejectsFile:
    """Opened on the first rejection, so a clean import leaves no file; one left by an
    earlier run is emptied at once, so the file always describes the last run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.shown: list[Rejection] = []
        self._file: BinaryIO | None = None
        if path.exists():
            self._file = path.open("wb")

    def write(self, rejection: Rejection) -> None:
        if self._file is None:
            self._file = self.path.open("wb")
        self._file.write(msgspec.json.encode(rejection) + b"\n")
        if len(self.shown) < _SHOWN_REJECTIONS:
            self.shown.append(rejection)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _count_lines(path: Path) -> int:
    """Lines in a file, for the progress total: one pass in 1 MB chunks."""
    count, last = 0, b"\n"
    with path.open("rb") as file:
        while chunk := file.read(_COUNT_CHUNK):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _rejects_path(args: argparse.Namespace) -> Path:
    if args.rejects:
        return Path(args.rejects)
    return Path("stdin.rejects.jsonl" if args.file == "-" else f"{args.file}.rejects.jsonl")


def _import(args: argparse.Namespace) -> int:
    name = "stdin" if args.file == "-" else args.file
    rejects_path = _rejects_path(args)
    if args.file != "-" and rejects_path.resolve() == Path(args.file).resolve():
        sys.stderr.write("playerlog log import: --rejects must not be the input file\n")
        return EXIT_FAILED
    try:
        stream: BinaryIO = (
            sys.stdin.buffer if args.file == "-" else Path(args.file).open("rb")  # noqa: SIM115
        )
        total = None if args.file == "-" else _count_lines(Path(args.file))
        rejects = _RejectsFile(rejects_path)
    except OSError as problem:
        sys.stderr.write(f"playerlog log import: {problem}\n")
        return EXIT_FAILED
    log = open_log(args.db)
    started = time.monotonic()
    try:
        importer = _importer(log, args, rejects)
        progress = (
            None
            if args.no_progress
            else Progress(sys.stderr, label=f"importing {name}", total=total)
        )
        summary = import_lines(
            importer, stream, on_progress=None if progress is None else progress.update
        )
        if progress is not None:
            progress.finish(summary.lines)
    except (LogError, OSError) as problem:
        sys.stderr.write(
            f"playerlog log import: stopped, the log failed: {problem}\n"
            "Lines appended before are stored; importing the file again is safe (they "
            "come back as duplicates).\n"
        )
        return EXIT_FAILED
    finally:
        rejects.close()
        log.close()
        if args.file != "-":
            stream.close()
    sys.stderr.write(_summary_text(name, summary, time.monotonic() - started, rejects))
    return EXIT_REJECTED if summary.rejected else EXIT_OK


def _importer(log: EventLog, args: argparse.Namespace, rejects: _RejectsFile) -> LogImporter:
    # The tenant's catalogue mode, looked up exactly as the API does.
    tenants = TenantSettingsStore(log, Settings.from_env(args.db).default_catalogue_mode)
    return LogImporter(
        log,
        options=ImportOptions(
            tenant=args.tenant,
            environment=args.env,
            source=args.source,
            client_id=args.client_id,
            batch_size=args.batch_size,
        ),
        catalogue_mode=lambda tenant, env: tenants.get(tenant, env).catalogue_mode,
        on_reject=rejects.write,
    )


def _summary_text(name: str, summary: ImportSummary, seconds: float, rejects: _RejectsFile) -> str:
    rate = summary.lines / seconds if seconds > 0 else 0.0
    lines = [
        f"imported {name}: {summary.lines:,} lines, {summary.accepted:,} accepted "
        f"({summary.stored:,} new, {summary.duplicates:,} duplicate), "
        f"{summary.rejected:,} rejected ({summary.conflicts:,} conflicting) "
        f"in {seconds:.1f} s ({rate:,.0f} lines/s)"
    ]
    if summary.generated_ids:
        lines.append(
            f"{summary.generated_ids:,} track events had no event_id and were given new "
            "ids: importing them again stores them again"
        )
    if summary.catalogue_warnings:
        lines.append(
            f"{summary.catalogue_warnings:,} accepted track events differ from the event "
            "catalogue (warn mode)"
        )
    for rejection in rejects.shown:
        error = rejection.errors[0]
        lines.append(f"  line {rejection.line}: {error.field}: {error.reason}")
    if summary.rejected:
        more = summary.rejected - len(rejects.shown)
        lines.append(
            (f"  … and {more:,} more; " if more else "  ")
            + f"every rejected line and its errors: {rejects.path}"
        )
    return "\n".join(lines) + "\n"
