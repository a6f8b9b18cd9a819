"""bench/append: how fast playerlog appends, beside its peer and its ceiling.

    python -m bench.append [--backend sqlite|postgres|all] [--runs 3] [--quick]

Events/s for calls of 1, 50 and 1,000 envelopes with 1 and 8 concurrent
writers, on SQLite and PostgreSQL, each beside the eventsourcing library's
stock `insert_events` on the same data (the peer) and a raw `executemany` /
COPY into an equivalent table without dedup (the ceiling), as ratios; then the
rate with 1M and 10M events already in the log beside the rate on an empty
one. Every figure is the median of `--runs` runs. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.sql import SQL, Identifier

from bench._common import (
    Machine,
    chunks,
    describe_machine,
    event_stream,
    fmt_count,
    fmt_percent,
    fmt_rate,
    fmt_ratio,
    markdown_table,
    mean_payload_bytes,
    median,
    ratio,
    spread,
    text_table,
    track_events,
)
from bench._stores import (
    SYSTEMS,
    Backend,
    Lab,
    PgServer,
    PlayerlogStore,
    Store,
    System,
    event_loop_name,
    remove_sqlite_files,
)
from eventstore import Envelope, open_log

CALL_SIZES = (1, 50, 1000)
WRITERS = (1, 8)
EVENTS = {1: 3_000, 50: 200_000, 1000: 400_000}
"""Events per measurement by call size: a few seconds for the slowest system."""
QUICK_EVENTS = {1: 200, 50: 5_000, 1000: 20_000}

LARGE_CALL_SIZE = 50
LARGE_WRITERS = 8
PREFILL = {"sqlite": (1_000_000, 10_000_000), "postgres": (1_000_000,)}
QUICK_PREFILL = {"sqlite": (100_000, 300_000), "postgres": (50_000,)}
PREFILL_CALL = 10_000

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"

TARGET_SQLITE_RATE = 100_000
TARGET_VS_STOCK = 0.9
TARGET_PG_RATE = 40_000
TARGET_LARGE_RATIO = 0.8


# -- results ---------------------------------------------------------------------------


@dataclass
class Cell:
    """One (backend, call size, writers, system) figure over its runs."""

    backend: Backend
    call_size: int
    writers: int
    system: System
    events: int
    seconds: list[float] = field(default_factory=list)

    @property
    def rates(self) -> list[float]:
        return [self.events / s for s in self.seconds]

    @property
    def rate(self) -> float | None:
        return median(self.rates) if self.seconds else None

    @property
    def spread(self) -> float | None:
        """(slowest - fastest) / median of the runs: how noisy the figure is."""
        return spread(self.rates)


@dataclass
class LargeRow:
    backend: Backend
    events_in_log: int
    events: int
    empty_seconds: list[float] = field(default_factory=list)
    large_seconds: list[float] = field(default_factory=list)
    prefill_seconds: float = 0.0

    @property
    def empty_rate(self) -> float | None:
        return median([self.events / s for s in self.empty_seconds]) if self.empty_seconds else None

    @property
    def large_rate(self) -> float | None:
        return median([self.events / s for s in self.large_seconds]) if self.large_seconds else None


@dataclass
class Target:
    name: str
    measured: str
    passed: bool | None  # None: not measured


@dataclass
class Report:
    machine: Machine
    settings: dict[str, Any]
    cells: dict[tuple[str, int, int, str], Cell] = field(default_factory=dict)
    large: list[LargeRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cell(self, backend: str, call_size: int, writers: int, system: str) -> Cell | None:
        return self.cells.get((backend, call_size, writers, system))

    def rate(self, backend: str, call_size: int, writers: int, system: str) -> float | None:
        found = self.cell(backend, call_size, writers, system)
        return found.rate if found else None


# -- measuring ---------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(
    store: Store, events: Sequence[Envelope], warm: Sequence[Envelope], call_size: int, writers: int
) -> float:
    """Seconds `store` takes to write `events` in calls of `call_size` from
    `writers` concurrent writers, after one warm-up call per writer."""
    start_count = store.count()
    rows = store.convert(events, start_count + len(warm) + 1)
    store.write([[row] for row in store.convert(warm, start_count + 1)], writers)
    batches = chunks(rows, call_size)
    gc.collect()
    gc.freeze()  # the prepared data is not the system's garbage to collect
    try:
        seconds = store.write(batches, writers)
    finally:
        gc.unfreeze()
    stored = store.count() - start_count - len(warm)
    if stored != len(events):
        raise RuntimeError(f"{type(store).__name__} stored {stored} of {len(events)} events")
    return seconds


def run_grid(
    lab: Lab, report: Report, backend: Backend, data: dict[int, list[Envelope]], runs: int
) -> None:
    """The main table for one backend; runs interleaved, so drift on a shared
    machine hits every system alike."""
    events_by_size: dict[int, int] = report.settings["events"]
    cells: set[tuple[int, int]] = set(map(tuple, report.settings["cells"]))
    systems: list[System] = report.settings["systems"]
    for run in range(runs):
        for size in CALL_SIZES:
            events = data[size][: events_by_size[size]]
            warm = data[size][events_by_size[size] :]
            for writers in WRITERS:
                if (size, writers) not in cells:
                    continue
                for system in systems:
                    key = (backend, size, writers, system)
                    cell = report.cells.setdefault(
                        key, Cell(backend, size, writers, system, len(events))
                    )
                    with lab.fresh(backend, system, writers) as store:
                        seconds = measure(store, events, warm[:writers], size, writers)
                    cell.seconds.append(seconds)
                    progress(
                        f"run {run + 1}/{runs} {backend:8} calls of {size:>4} "
                        f"x{writers} {system:9} {len(events) / seconds:>10,.0f} ev/s"
                    )


def grid_data(events_by_size: dict[int, int]) -> dict[int, list[Envelope]]:
    """The events of each call size's measurements, plus one warm-up event per
    writer; the same for every system and run."""
    return {
        size: track_events(events_by_size[size] + max(WRITERS), seed=size) for size in CALL_SIZES
    }


# -- the large log ------------------------------------------------------------------------


@dataclass(frozen=True)
class LargeLog:
    """Where the large log lives: filled fast, measured as configured."""

    backend: Backend
    fill_url: str
    measure_url: str
    path: Path | None = None  # SQLite
    schema: str | None = None  # PostgreSQL

    @classmethod
    def make(cls, lab: Lab, backend: Backend) -> LargeLog:
        name = lab.name("large")
        if backend == "sqlite":
            path = lab.directory / f"{name}.db"
            # Filled without fsyncs, measured with synchronous=FULL like the rest.
            url = f"sqlite:///{path}"
            return cls(backend, f"{url}?synchronous=OFF", url, path=path)
        url = lab.pg().schema_url(name)
        return cls(backend, url, url, schema=name)

    def settle(self, lab: Lab) -> None:
        """Let the prefill's writes reach the disk before measuring, so their
        write-back does not slow the fsyncs being measured. On PostgreSQL, also
        do what autovacuum would have done to a table that grew this big (it is
        off on some servers, and an unanalyzed table can get a bad plan)."""
        if self.schema is not None:
            with lab.pg().connect() as conn:
                conn.execute(SQL("VACUUM ANALYZE {}").format(Identifier(self.schema, "events")))
                conn.execute("CHECKPOINT")
        os.sync()
        time.sleep(2)

    def remove(self, lab: Lab) -> None:
        if self.path is not None:
            remove_sqlite_files(self.path)
        if self.schema is not None:
            lab.pg().drop_schema(self.schema)


def run_large(
    lab: Lab, report: Report, backend: Backend, sizes: Sequence[int], runs: int, events: int
) -> None:
    """Grow one log through playerlog to each size, and at each size measure
    calls of 50 from 8 writers on it beside the same on an empty log."""
    large = LargeLog.make(lab, backend)
    stream = event_stream(seed=7_000_000, chunk=PREFILL_CALL)
    try:
        for size in sizes:
            row = LargeRow(backend, size, events)
            row.prefill_seconds = prefill(large.fill_url, size, stream)
            large.settle(lab)
            for run in range(runs):
                measure_large(lab, large, row, seed=size + 1000 * run + 1)
                progress(
                    f"large {backend} {fmt_count(size)} run {run + 1}/{runs}: "
                    f"empty {events / row.empty_seconds[-1]:,.0f} ev/s, "
                    f"large {events / row.large_seconds[-1]:,.0f} ev/s"
                )
            report.large.append(row)
    finally:
        large.remove(lab)


def measure_large(lab: Lab, large: LargeLog, row: LargeRow, seed: int) -> None:
    """One run: the same fresh events on an empty log, then on the large one."""
    fresh = track_events(row.events + LARGE_WRITERS, seed=seed)
    events, warm = fresh[: row.events], fresh[row.events :]
    with lab.fresh(large.backend, "playerlog", LARGE_WRITERS) as store:
        row.empty_seconds.append(measure(store, events, warm, LARGE_CALL_SIZE, LARGE_WRITERS))
    store = PlayerlogStore(large.measure_url)
    try:
        row.large_seconds.append(measure(store, events, warm, LARGE_CALL_SIZE, LARGE_WRITERS))
    finally:
        store.close()


def prefill(url: str, size: int, stream: Iterator[list[Envelope]]) -> float:
    """Append through playerlog (calls of 10,000) until the log holds `size`."""
    log = open_log(url)
    start = time.perf_counter()
    try:
        head = log.head()
        last_report = start
        while head < size:
            log.append_sync(next(stream)[: size - head])
            head = log.head()
            now = time.perf_counter()
            if now - last_report > 30:
                progress(f"prefill {fmt_count(head)} of {fmt_count(size)} ...")
                last_report = now
    finally:
        log.close()
    seconds = time.perf_counter() - start
    progress(f"prefill to {fmt_count(size)} took {seconds:.0f} s")
    return seconds


def run_backend(
    lab: Lab,
    report: Report,
    backend: Backend,
    data: dict[int, list[Envelope]],
    runs: int,
    prefills: Sequence[int],
) -> None:
    """One backend's share; a failure is reported and the other backend still runs."""
    try:
        run_grid(lab, report, backend, data, runs)
        if prefills:
            events = report.settings["events"][LARGE_CALL_SIZE]
            run_large(lab, report, backend, prefills, runs, events)
    except Exception as error:
        note = f"{_backend_name(backend)} stopped early: {type(error).__name__}: {error}"
        report.notes.append(note)
        progress(note)
        traceback.print_exc()


# -- targets ---------------------------------------------------------------------------------


def targets(report: Report) -> list[Target]:
    found: list[Target] = []
    ours = report.rate("sqlite", 50, 8, "playerlog")
    stock = report.rate("sqlite", 50, 8, "stock")
    found.append(
        _at_least("SQLite, calls of 50, 8 writers: >= 100k ev/s", ours, TARGET_SQLITE_RATE)
    )
    vs_stock = ratio(ours, stock)
    found.append(
        Target(
            "SQLite, calls of 50, 8 writers: >= 0.9x stock insert_events",
            fmt_ratio(vs_stock),
            None if vs_stock is None else vs_stock >= TARGET_VS_STOCK,
        )
    )
    found.extend(
        _at_least(
            f"PostgreSQL, calls of 1,000, {writers} writer{'s' if writers > 1 else ''}:"
            " >= 40k ev/s",
            report.rate("postgres", 1000, writers, "playerlog"),
            TARGET_PG_RATE,
        )
        for writers in WRITERS
    )
    for row in report.large:
        share = ratio(row.large_rate, row.empty_rate)
        found.append(
            Target(
                f"{_backend_name(row.backend)}, {fmt_count(row.events_in_log)} in the log:"
                " within 20% of the empty-log rate",
                f"{fmt_ratio(share)} of empty",
                None if share is None else share >= TARGET_LARGE_RATIO,
            )
        )
    return found


def _at_least(name: str, value: float | None, floor: float) -> Target:
    return Target(name, f"{fmt_rate(value)} ev/s", None if value is None else value >= floor)


def _verdict(target: Target) -> str:
    return "not run" if target.passed is None else "PASS" if target.passed else "MISS"


def _backend_name(backend: str) -> str:
    return "SQLite" if backend == "sqlite" else "PostgreSQL"


# -- output ------------------------------------------------------------------------------------

MAIN_HEADERS = (
    "backend",
    "call size",
    "writers",
    "playerlog ev/s",
    "stock ev/s",
    "vs stock",
    "raw ev/s",
    "vs raw",
    "spread",
)
LARGE_HEADERS = ("backend", "events in log", "playerlog ev/s", "empty log ev/s", "ratio")
TARGET_HEADERS = ("target", "measured", "result")


def main_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for backend in ("sqlite", "postgres"):
        for size in CALL_SIZES:
            for writers in WRITERS:
                ours = report.rate(backend, size, writers, "playerlog")
                if ours is None:
                    continue
                stock = report.rate(backend, size, writers, "stock")
                raw = report.rate(backend, size, writers, "raw")
                spreads = [
                    cell.spread
                    for system in SYSTEMS
                    if (cell := report.cell(backend, size, writers, system))
                    and cell.spread is not None
                ]
                rows.append(
                    [
                        _backend_name(backend),
                        f"{size:,}",
                        str(writers),
                        fmt_rate(ours),
                        fmt_rate(stock),
                        fmt_ratio(ratio(ours, stock)),
                        fmt_rate(raw),
                        fmt_ratio(ratio(ours, raw)),
                        fmt_percent(max(spreads, default=None)),
                    ]
                )
    return rows


def large_rows(report: Report) -> list[list[str]]:
    return [
        [
            _backend_name(row.backend),
            fmt_count(row.events_in_log),
            fmt_rate(row.large_rate),
            fmt_rate(row.empty_rate),
            fmt_ratio(ratio(row.large_rate, row.empty_rate)),
        ]
        for row in report.large
    ]


def target_rows(report: Report) -> list[list[str]]:
    return [[t.name, t.measured, _verdict(t)] for t in targets(report)]


def describe_settings(report: Report) -> list[str]:
    settings = report.settings
    events = ", ".join(f"calls of {k:,}: {v:,}" for k, v in settings["events"].items())
    load = settings.get("load_average", {})
    return [
        f"load          {load.get('start', '?')} at start, {load.get('end', '?')} at the end "
        "(1-min load average: other work on the machine)",
        f"runs          {settings['runs']} per figure; the median is shown",
        f"data          track events, random UUID v4 ids, payload mean "
        f"{settings.get('payload_bytes_mean', '?')} bytes; events per measurement: {events}",
        "durability    SQLite WAL + synchronous=FULL (all three); PostgreSQL default commit",
        "writers       playerlog: asyncio tasks awaiting log.append; stock and raw: threads",
    ]


def render_text(report: Report, elapsed: float) -> str:
    parts = [
        f"bench/append: events/s, median of {report.settings['runs']} runs "
        "(vs = playerlog / other)",
        "",
        *report.machine.lines(),
        *describe_settings(report),
    ]
    if report.cells:
        parts += ["", text_table(MAIN_HEADERS, main_rows(report))]
    if report.large:
        parts += [
            "",
            f"Appending with events already in the log (calls of {LARGE_CALL_SIZE}, "
            f"{LARGE_WRITERS} writers)",
            "",
            text_table(LARGE_HEADERS, large_rows(report)),
        ]
    parts += ["", "Targets", "", text_table(TARGET_HEADERS, target_rows(report))]
    parts += [*(f"note: {n}" for n in report.notes), "", f"took {elapsed / 60:.1f} min"]
    return "\n".join(parts)


def render_markdown(report: Report, command: str) -> str:
    parts = [
        f"Events/s, median of {report.settings['runs']} runs; `vs` = playerlog / other. "
        f"Command: `{command}`.",
        "",
        "```",
        *report.machine.lines(),
        *describe_settings(report),
        "```",
    ]
    if report.cells:
        parts += ["", markdown_table(MAIN_HEADERS, main_rows(report))]
    if report.large:
        parts += [
            "",
            f"With events already in the log (calls of {LARGE_CALL_SIZE}, "
            f"{LARGE_WRITERS} writers):",
            "",
            markdown_table(LARGE_HEADERS, large_rows(report)),
        ]
    parts += ["", markdown_table(TARGET_HEADERS, target_rows(report))]
    parts += [f"\nNote: {n}" for n in report.notes]
    return "\n".join(parts) + "\n"


def to_json(report: Report, elapsed: float) -> dict[str, Any]:
    return {
        "machine": asdict(report.machine),
        "settings": report.settings,
        "elapsed_seconds": round(elapsed, 1),
        "cells": [
            {**asdict(cell), "rates": cell.rates, "median_rate": cell.rate}
            for cell in report.cells.values()
        ],
        "large": [
            {**asdict(row), "empty_rate": row.empty_rate, "large_rate": row.large_rate}
            for row in report.large
        ],
        "targets": [asdict(t) for t in targets(report)],
        "notes": report.notes,
    }


# -- command line ----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.append",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "all"), default="all")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help="events per measurement, for every call size (default: "
        + ", ".join(f"{v:,} for calls of {k:,}" for k, v in EVENTS.items())
        + ")",
    )
    parser.add_argument(
        "--prefill",
        default=None,
        help="log sizes for the large-log measurement, comma-separated, or 'none' "
        "(default 1000000,10000000 on SQLite and 1000000 on PostgreSQL)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="a fast smoke run: small numbers, one run"
    )
    parser.add_argument(
        "--cells",
        default="all",
        help="which (call size x writers) cells of the main table to measure, "
        "comma-separated like 50x8, or 'all' or 'none' (default all)",
    )
    parser.add_argument(
        "--systems",
        default=",".join(SYSTEMS),
        help=f"which systems to measure in the main table (default {','.join(SYSTEMS)})",
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    parser.add_argument("--json", type=Path, help="also write the raw numbers as JSON here")
    parser.add_argument(
        "--pg-url", default=DEFAULT_PG_URL, help=f"PostgreSQL server (default {DEFAULT_PG_URL})"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where the temporary SQLite files go (default: the system temp dir)",
    )
    return parser.parse_args(argv)


def prefill_sizes(option: str | None, backend: Backend, quick: bool) -> tuple[int, ...]:
    if option is None:
        return (QUICK_PREFILL if quick else PREFILL)[backend]
    if option.strip().lower() in ("", "none", "0"):
        return ()
    return tuple(sorted(int(part.replace("_", "")) for part in option.split(",")))


def parse_cells(option: str) -> list[tuple[int, int]]:
    """`all`, `none` or `50x8,1000x1`: the main table's cells to measure."""
    every = [(size, writers) for size in CALL_SIZES for writers in WRITERS]
    if option.strip().lower() == "all":
        return every
    if option.strip().lower() in ("", "none"):
        return []
    wanted = []
    for part in option.split(","):
        size, _, writers = part.strip().partition("x")
        cell = (int(size), int(writers))
        if cell not in every:
            raise SystemExit(f"--cells: {part!r} is not one of {every}")
        wanted.append(cell)
    return wanted


def parse_systems(option: str) -> list[System]:
    wanted: list[System] = []
    for part in option.split(","):
        found = [system for system in SYSTEMS if system == part.strip()]
        if not found:
            raise SystemExit(f"--systems: {part!r} is not one of {SYSTEMS}")
        wanted.extend(found)
    return wanted


def postgres_server(url: str) -> tuple[PgServer | None, str]:
    server = PgServer(url)
    try:
        return server, server.version()
    except psycopg.Error as error:
        return None, f"unavailable ({str(error).strip().splitlines()[0]})"


def postgres_log_importable() -> str | None:
    """Why playerlog's PostgreSQL backend cannot be used yet, or None."""
    try:
        import eventstore.postgres_log  # noqa: F401, PLC0415
    except ImportError as error:
        return str(error)
    return None


def check_space(directory: Path, sizes: Sequence[int]) -> None:
    needed = max(sizes, default=0) * 700  # bytes per event with indexes, generously
    free = shutil.disk_usage(directory).free
    if needed > free:
        raise SystemExit(
            f"{directory} has {free / 1e9:.1f} GB free; the large log needs about "
            f"{needed / 1e9:.1f} GB (use --workdir or a smaller --prefill)"
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    runs = args.runs or (1 if args.quick else 3)
    defaults = QUICK_EVENTS if args.quick else EVENTS
    events = {size: args.events or defaults[size] for size in CALL_SIZES}
    wanted: list[Backend] = ["sqlite", "postgres"] if args.backend == "all" else [args.backend]
    notes: list[str] = []

    server, pg_version = (None, "not used")
    if "postgres" in wanted:
        server, pg_version = postgres_server(args.pg_url)
        problem = postgres_log_importable()
        if server is None or problem:
            notes.append(f"PostgreSQL skipped: {problem or pg_version}")
            wanted.remove("postgres")
            server = None

    machine = describe_machine(pg_version, event_loop_name())
    report = Report(
        machine,
        {
            "runs": runs,
            "events": events,
            "backends": wanted,
            "quick": args.quick,
            "cells": parse_cells(args.cells),
            "systems": parse_systems(args.systems),
        },
        notes=notes,
    )
    prefills = {backend: prefill_sizes(args.prefill, backend, args.quick) for backend in wanted}
    report.settings["prefill"] = prefills
    report.settings["load_average"] = {"start": round(os.getloadavg()[0], 2)}

    workdir = Path(tempfile.mkdtemp(prefix="playerlog-bench-append-", dir=args.workdir))
    try:
        check_space(workdir, prefills.get("sqlite", ()))
        lab = Lab(workdir, server)
        data = grid_data(events)
        report.settings["payload_bytes_mean"] = round(mean_payload_bytes(data[50]), 1)
        for backend in wanted:
            run_backend(lab, report, backend, data, runs, prefills[backend])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    report.settings["load_average"]["end"] = round(os.getloadavg()[0], 2)
    elapsed = time.perf_counter() - began
    print(render_text(report, elapsed))
    command = "python -m bench.append " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.markdown:
        args.markdown.write_text(render_markdown(report, command.strip()))
    if args.json:
        args.json.write_text(json.dumps(to_json(report, elapsed), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
