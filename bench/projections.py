"""bench/projections: how fast the read models rebuild from zero, and how fast one reads.

    python -m bench.projections [--sizes 1000000,10000000] [--runs 3] [--quick]

Over logs of 1M and 10M mixed events generated from the taxonomy (mostly play; see
bench/projections_events.py), the rebuild rate from zero of each projection alone and of
all of them together (`ProjectionRunner.catch_up()` into a fresh view file), beside the
raw log read rate (`log.read` paging through every event: the ceiling) and, on the
first `--peer-events` events, the eventsourcing library's `ProjectionRunner` folding the
same events into the same tables (the peer; bench/projections_peer.py). Then
`GET /v1/players/{user_id}` p50/p99 with 1M players, over HTTP and as a function call.
Every rate is the median of `--runs` runs. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

from bench._common import (
    Machine,
    describe_machine,
    fmt_count,
    fmt_percent,
    fmt_rate,
    fmt_ratio,
    markdown_table,
    median,
    ratio,
    spread,
    text_table,
)
from bench._stores import event_loop_name
from bench.ingest_servers import BenchError, ensure_wrk, require_taskset, wrk_version
from bench.projections_events import Mix, cached_log, cached_players_log
from bench.projections_peer import copy_events, run_peer
from bench.projections_reads import (
    HttpSettings,
    Latency,
    build_views,
    function_latency,
    http_latency,
    median_latency,
)
from eventstore import open_log
from projections import (
    DEFAULT_CATCH_UP_PAGE_SIZE,
    PlayersProjection,
    Projection,
    ProjectionRunner,
)
from projections.helpers import default_processes

SIZES: Final = (1_000_000, 10_000_000)
QUICK_SIZES: Final = (20_000, 60_000)
PEER_EVENTS: Final = 100_000
QUICK_PEER_EVENTS: Final = 3_000
PLAYERS: Final = 1_000_000
QUICK_PLAYERS: Final = 20_000
FUNCTION_SAMPLES: Final = 20_000
QUICK_FUNCTION_SAMPLES: Final = 2_000
HTTP: Final = HttpSettings(rate=500, connections=8, warmup=3, seconds=10)
QUICK_HTTP: Final = HttpSettings(rate=200, connections=4, warmup=1, seconds=3)
SEED: Final = 20_261_122
PEER_TIMEOUT: Final = 3_600.0
DEFAULT_CACHE: Final = Path(__file__).resolve().parent / "results" / "projections-cache"

TARGET_RATE: Final = 100_000
TARGET_SIZE_RATIO: Final = 0.8
TARGET_P99_MS: Final = 5.0

READ: Final = "read"
ALL: Final = "all"
ALL_PREFIX: Final = "all-prefix"
PEER: Final = "peer"


# -- what is measured ---------------------------------------------------------------------


ProjectionSet = Callable[[], list[Projection]]


def projection_set() -> tuple[ProjectionSet, str]:
    """The projections to rebuild (fresh instances on every call), and where they came
    from: `projections.standard.standard_projections()` when that module exists."""
    try:
        module = importlib.import_module("projections.standard")
    except ModuleNotFoundError:
        return (lambda: [PlayersProjection()]), "[PlayersProjection()] (no projections.standard)"
    factory: Callable[[], Sequence[Projection]] = module.standard_projections
    return (lambda: list(factory())), "projections.standard.standard_projections()"


@dataclass
class Cell:
    """One figure (a size and a measurement) over its runs."""

    size: int
    what: str
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
        return spread(self.rates)


@dataclass
class LatencyRow:
    what: str
    players: int
    result: Latency | None
    """The median of each figure over the runs; None when not measured."""
    note: str = ""
    runs: list[Latency] = field(default_factory=list)


@dataclass
class Target:
    name: str
    measured: str
    passed: bool | None


@dataclass
class Report:
    machine: Machine
    settings: dict[str, Any]
    cells: dict[tuple[int, str], Cell] = field(default_factory=dict)
    mixes: dict[int, Mix] = field(default_factory=dict)
    latencies: list[LatencyRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cell(self, size: int, what: str, events: int) -> Cell:
        return self.cells.setdefault((size, what), Cell(size, what, events))

    def rate(self, size: int, what: str) -> float | None:
        found = self.cells.get((size, what))
        return found.rate if found else None


# -- measuring --------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def remove_sqlite(path: Path) -> None:
    for leftover in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
        leftover.unlink(missing_ok=True)


def read_all(log_path: Path, page_size: int | None) -> tuple[int, float]:
    """The ceiling: page through every event with `log.read`, doing nothing with them
    (in the pages a rebuild reads: `page_size`, or the runner's catch-up page)."""
    page_size = page_size or DEFAULT_CATCH_UP_PAGE_SIZE
    log = open_log(f"sqlite:///{log_path}")
    try:
        gc.collect()
        start = time.perf_counter()
        position = count = 0
        while page := log.read(after=position, limit=page_size):
            position = page[-1].position
            count += len(page)
        return count, time.perf_counter() - start
    finally:
        log.close()


def rebuild(
    log_path: Path, projections: list[Projection], views: Path, page_size: int | None
) -> float:
    """Seconds to fold the whole log into a fresh view file; every build must end at
    the head, none stopped."""
    remove_sqlite(views)
    log = open_log(f"sqlite:///{log_path}")
    try:
        head = log.head()
        gc.collect()
        start = time.perf_counter()
        with ProjectionRunner(log, projections, views=views, page_size=page_size) as runner:
            runner.catch_up()
            seconds = time.perf_counter() - start
            for state in runner.status():
                if state.stopped or state.position != head:
                    error = state.error.message if state.error is not None else "no error"
                    raise BenchError(
                        f"projection {state.name} ended at {state.position} of {head}"
                        f"{' (stopped)' if state.stopped else ''}: {error}"
                    )
        return seconds
    finally:
        log.close()
        remove_sqlite(views)


def prefix_log(log_path: Path, events: int) -> Path:
    """A normal playerlog log holding the first `events` events of `log_path` (cached
    beside it): the events the peer and its comparison row fold."""
    path = log_path.with_name(f"{log_path.stem}-first{events}.db")
    done = path.with_name(path.name + ".done")
    if path.exists() and done.exists():
        return path
    remove_sqlite(path)
    source = open_log(f"sqlite:///{log_path}")
    target = open_log(f"sqlite:///{path}?synchronous=OFF")
    try:
        position = 0
        while position < events:
            page = source.read(after=position, limit=min(10_000, events - position))
            if not page:
                break
            target.append_sync(page)  # recorded events carry every envelope field
            position = page[-1].position
    finally:
        source.close()
        target.close()
    done.touch()
    return path


def peer_source(prefix: Path, events: int) -> Path:
    """The prefix's events as the library's stored events (cached beside the log)."""
    path = prefix.with_name(f"{prefix.stem}.eventsourcing.db")
    done = path.with_name(path.name + ".done")
    if path.exists() and done.exists():
        return path
    remove_sqlite(path)
    log = open_log(f"sqlite:///{prefix}")
    try:
        copied = copy_events(log, path, events)
    finally:
        log.close()
    if copied != events:
        raise BenchError(f"copied {copied} events for the peer, expected {events}")
    done.touch()
    return path


def run_size(
    report: Report,
    size: int,
    *,
    cache: Path,
    workdir: Path,
    make: ProjectionSet,
    runs: int,
    peer_events: int,
    page_size: int | None,
    seed: int,
) -> None:
    """Every rebuild figure of one log size, runs interleaved (run 1 of every figure,
    then run 2, ...) so drift on a shared machine hits every figure alike."""
    log_path, mix = cached_log(cache, size, seed, report=progress)
    report.mixes[size] = mix
    peer_n = min(peer_events, size)
    prefix = prefix_log(log_path, peer_n)
    source = peer_source(prefix, peer_n)
    names = [p.name for p in make()]
    read_all(log_path, page_size)  # warm the OS page cache: every figure reads a warm log
    views = workdir / "views.db"
    for run in range(runs):
        label = f"{fmt_count(size)} run {run + 1}/{runs}"
        events, seconds = read_all(log_path, page_size)
        if events != size:
            raise BenchError(f"the log holds {events} events, expected {size}")
        report.cell(size, READ, size).seconds.append(seconds)
        progress(f"{label} log read        {size / seconds:>12,.0f} ev/s")
        if len(names) > 1:
            for name in names:
                alone = [p for p in make() if p.name == name]
                seconds = rebuild(log_path, alone, views, page_size)
                report.cell(size, f"alone:{name}", size).seconds.append(seconds)
                progress(f"{label} {name:<15} {size / seconds:>12,.0f} ev/s")
        seconds = rebuild(log_path, make(), views, page_size)
        report.cell(size, ALL, size).seconds.append(seconds)
        progress(f"{label} all together    {size / seconds:>12,.0f} ev/s")
        seconds = rebuild(prefix, make(), views, page_size)
        report.cell(size, ALL_PREFIX, peer_n).seconds.append(seconds)
        progress(f"{label} all, first {fmt_count(peer_n):<4} {peer_n / seconds:>12,.0f} ev/s")
        peer = run_peer(source, workdir / "peer-views.db", make(), peer_n, timeout=PEER_TIMEOUT)
        remove_sqlite(workdir / "peer-views.db")
        report.cell(size, PEER, peer_n).seconds.append(peer.seconds)
        progress(f"{label} peer, first {fmt_count(peer_n):<4} {peer_n / peer.seconds:>11,.0f} ev/s")


def run_reads(
    report: Report,
    *,
    cache: Path,
    workdir: Path,
    make: ProjectionSet,
    players: int,
    samples: int,
    http: HttpSettings | None,
    runs: int,
    seed: int,
) -> None:
    """The latency rows: get_player as a function, and GET /v1/players/{id} over HTTP;
    each `runs` times, the median of each percentile shown."""
    log_path = cached_players_log(cache, players, seed, report=progress)
    views = build_views(log_path, make(), report=progress)
    calls = [function_latency(views, players, samples, seed + run) for run in range(runs)]
    result = median_latency(calls)
    report.latencies.append(LatencyRow("get_player(conn, ...)", players, result, runs=calls))
    progress(f"get_player: p50 {result.p50_ms:.3f} ms, p99 {result.p99_ms:.3f} ms")
    if http is None:
        report.latencies.append(
            LatencyRow("GET /v1/players/{id}", players, None, "not measured (--no-http)")
        )
        return
    try:
        require_taskset()
        wrk = ensure_wrk()
    except SystemExit as missing:
        report.latencies.append(
            LatencyRow("GET /v1/players/{id}", players, None, f"not available: {missing}")
        )
        return
    report.settings["load_generator"] = wrk_version(wrk)
    measured: list[Latency] | str
    try:
        measured = http_latency(wrk, log_path, players, http, runs=runs, workdir=workdir, seed=seed)
    except BenchError as error:
        # The server or its command line failing is a finding about playerlog, not a
        # reason to drop the rows already measured.
        measured = f"not measured: {error}"
    if isinstance(measured, str):
        report.latencies.append(LatencyRow("GET /v1/players/{id}", players, None, measured))
        progress(f"GET /v1/players/{{id}}: {measured}")
        return
    result = median_latency(measured)
    note = f"{result.errors} errors" if result.errors else ""
    report.latencies.append(
        LatencyRow("GET /v1/players/{id}", players, result, note, runs=measured)
    )
    progress(f"GET /v1/players/{{id}}: p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms")


# -- targets ---------------------------------------------------------------------------------


def targets(report: Report) -> list[Target]:
    found: list[Target] = []
    sizes = sorted({size for size, _ in report.cells})
    for size in sizes:
        rate = report.rate(size, ALL)
        found.append(
            Target(
                f"all projections together, {fmt_count(size)} events: >= 100k ev/s",
                f"{fmt_rate(rate)} ev/s",
                None if rate is None else rate >= TARGET_RATE,
            )
        )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        share = ratio(report.rate(large, ALL), report.rate(small, ALL))
        found.append(
            Target(
                f"{fmt_count(large)} rate within 20% of the {fmt_count(small)} rate",
                f"{fmt_ratio(share)}",
                None if share is None else share >= TARGET_SIZE_RATIO,
            )
        )
    found.extend(
        Target(
            f"GET /v1/players/{{id}} with {fmt_count(row.players)} players: p99 < 5 ms",
            "-" if row.result is None else f"p99 {row.result.p99_ms:.2f} ms",
            None if row.result is None else row.result.p99_ms < TARGET_P99_MS,
        )
        for row in report.latencies
        if row.what.startswith("GET")
    )
    return found


def _verdict(target: Target) -> str:
    return "not run" if target.passed is None else "PASS" if target.passed else "MISS"


# -- output ------------------------------------------------------------------------------------

MAIN_HEADERS: Final = (
    "log",
    "measurement",
    "events",
    "ev/s",
    "vs ceiling",
    "vs peer",
    "spread",
)
SCALE_HEADERS: Final = ("measurement", "smaller log ev/s", "larger log ev/s", "larger / smaller")
LATENCY_HEADERS: Final = (
    "what",
    "players",
    "samples",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "note",
)
TARGET_HEADERS: Final = ("target", "measured", "result")


def _ratio(value: float | None) -> str:
    # The peer and the ceiling are far apart: two decimals would show 0.00x.
    if value is not None and value < 0.1:
        return f"{value:.3f}x"
    return fmt_ratio(value)


def _label(what: str) -> str:
    if what == READ:
        return "log read, no work (ceiling)"
    if what == ALL:
        return "all projections together"
    if what == ALL_PREFIX:
        return "all together, first events only"
    if what == PEER:
        return "eventsourcing ProjectionRunner (peer)"
    return what.removeprefix("alone:") + " alone"


def _order(report: Report, size: int) -> list[str]:
    alone = sorted(what for s, what in report.cells if s == size and what.startswith("alone:"))
    return [READ, *alone, ALL, ALL_PREFIX, PEER]


def main_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for size in sorted({size for size, _ in report.cells}):
        ceiling = report.rate(size, READ)
        peer = report.rate(size, PEER)
        for what in _order(report, size):
            cell = report.cells.get((size, what))
            if cell is None or cell.rate is None:
                continue
            rows.append(
                [
                    fmt_count(size),
                    _label(what),
                    fmt_count(cell.events),
                    fmt_rate(cell.rate),
                    "-" if what == READ else _ratio(ratio(cell.rate, ceiling)),
                    _ratio(ratio(cell.rate, peer)) if what == ALL_PREFIX else "-",
                    fmt_percent(cell.spread),
                ]
            )
    return rows


def scale_rows(report: Report) -> list[list[str]]:
    sizes = sorted({size for size, _ in report.cells})
    if len(sizes) < 2:
        return []
    small, large = sizes[0], sizes[-1]
    rows = []
    for what in _order(report, large):
        if what in (ALL_PREFIX, PEER):
            continue  # the same prefix at every size
        a, b = report.rate(small, what), report.rate(large, what)
        if a is None or b is None:
            continue
        rows.append([_label(what), fmt_rate(a), fmt_rate(b), fmt_ratio(ratio(b, a))])
    return rows


def latency_rows(report: Report) -> list[list[str]]:
    rows = []
    for row in report.latencies:
        got = row.result
        if got is None:
            rows.append([row.what, fmt_count(row.players), *["-"] * 6, row.note])
            continue
        rows.append(
            [
                row.what,
                fmt_count(row.players),
                f"{got.samples:,}",
                "-" if got.rate is None else fmt_rate(got.rate),
                f"{got.p50_ms:.3f}",
                f"{got.p90_ms:.3f}",
                f"{got.p99_ms:.3f}",
                f"{got.max_ms:.3f}",
                row.note or "-",
            ]
        )
    return rows


def target_rows(report: Report) -> list[list[str]]:
    return [[t.name, t.measured, _verdict(t)] for t in targets(report)]


def describe_settings(report: Report) -> list[str]:
    s = report.settings
    load = s.get("load_average", {})
    mixes = []
    for size, mix in sorted(report.mixes.items()):
        play = mix.share(
            lambda key: (
                key
                in (
                    "unified:gameround",
                    "track:bet_placed",
                    "track:bet_won",
                    "track:bet_lost",
                    "track:slot_spin_completed",
                )
            )
        )
        mixes.append(f"{fmt_count(size)}: {play:.0%} play, {len(mix.counts)} event types")
    http = s.get("http")
    return [
        f"projections   {s['projections']}; page size "
        f"{s['page_size'] or 'the runner default (10,000 behind)'}; helper processes up to "
        f"{s['processes']} (the runner default: projections 200k+ behind fold in parallel)",
        f"data          seed {s['seed']}; mixed events decoded by ingest "
        f"({'; '.join(mixes) or 'none'})",
        f"peer          eventsourcing ProjectionRunner, first {s['peer_events']:,} events of each "
        "log, one transaction per event (view file synchronous=NORMAL, as ours)",
        f"reads         {s['players']:,} players (one identify call each); per run, get_player "
        f"{s['function_samples']:,} calls"
        + (
            f"; HTTP paced at {http['rate']:.0f} req/s, {http['connections']} connections, "
            f"{http['warmup']} s warm-up + {http['seconds']} s, wrk on CPU 0, server on CPU 1"
            if http
            else ""
        ),
        f"runs          {s['runs']} per figure; the median is shown (latency: the median of "
        "each percentile); spread = (max - min) / median",
        f"load          {load.get('start', '?')} at start, {load.get('end', '?')} at the end "
        "(1-min load average: other work on the machine)",
    ]


def render_text(report: Report, elapsed: float) -> str:
    parts = [
        "bench/projections: rebuild from zero, events/s (median of runs), and read latency",
        "",
        *report.machine.lines(),
        *describe_settings(report),
        "",
        text_table(MAIN_HEADERS, main_rows(report)) if main_rows(report) else "(no rebuilds)",
    ]
    if scale_rows(report):
        parts += ["", text_table(SCALE_HEADERS, scale_rows(report))]
    if report.latencies:
        parts += ["", text_table(LATENCY_HEADERS, latency_rows(report))]
    parts += ["", "Targets", "", text_table(TARGET_HEADERS, target_rows(report))]
    parts += [*(f"note: {n}" for n in report.notes), "", f"took {elapsed / 60:.1f} min"]
    return "\n".join(parts)


def render_markdown(report: Report, command: str) -> str:
    parts = [
        f"Rebuild from zero (events/s, median of {report.settings['runs']} runs; "
        f"`vs` = this / other) and read latency. Command: `{command}`.",
        "",
        "```",
        *report.machine.lines(),
        *describe_settings(report),
        "```",
        "",
        markdown_table(MAIN_HEADERS, main_rows(report)),
    ]
    if scale_rows(report):
        parts += ["", markdown_table(SCALE_HEADERS, scale_rows(report))]
    if report.latencies:
        parts += ["", markdown_table(LATENCY_HEADERS, latency_rows(report))]
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
        "mixes": {str(size): mix.counts for size, mix in report.mixes.items()},
        "latencies": [asdict(row) for row in report.latencies],
        "targets": [asdict(t) for t in targets(report)],
        "notes": report.notes,
    }


# -- command line --------------------------------------------------------------------------------


def _sizes(text: str) -> tuple[int, ...]:
    return tuple(sorted(int(part.replace("_", "")) for part in text.split(",") if part.strip()))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.projections",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument(
        "--sizes", type=_sizes, default=None, help="log sizes, comma-separated "
        "(default 1000000,10000000; --quick 20000,60000); an empty value skips the rebuilds"
    )  # fmt: skip
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument(
        "--peer-events", type=int, default=None,
        help=f"events the peer folds, from the start of each log (default {PEER_EVENTS:,})",
    )  # fmt: skip
    parser.add_argument(
        "--players", type=int, default=None,
        help=f"players in the read model for the latency rows (default {PLAYERS:,}); 0 skips",
    )  # fmt: skip
    parser.add_argument(
        "--page-size",
        type=int,
        default=None,
        help="runner page, at the head and behind (default: the runner's, 1,000 and 10,000)",
    )
    parser.add_argument("--seed", type=int, default=SEED, help="generator seed")
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: small sizes")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP latency row")
    parser.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE,
        help="where generated logs are kept between runs (default bench/results/"
        "projections-cache; the 10M log needs about 5 GB)",
    )  # fmt: skip
    parser.add_argument("--workdir", type=Path, default=None, help="where view files go")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    parser.add_argument("--json", type=Path, help="also write every run as JSON here")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    quick = args.quick
    sizes = args.sizes if args.sizes is not None else (QUICK_SIZES if quick else SIZES)
    runs = args.runs or (1 if quick else 3)
    peer_events = args.peer_events or (QUICK_PEER_EVENTS if quick else PEER_EVENTS)
    players = args.players if args.players is not None else (QUICK_PLAYERS if quick else PLAYERS)
    samples = QUICK_FUNCTION_SAMPLES if quick else FUNCTION_SAMPLES
    http = None if args.no_http else (QUICK_HTTP if quick else HTTP)
    make, where = projection_set()
    report = Report(
        describe_machine("not used", event_loop_name()),
        {
            "sizes": list(sizes),
            "runs": runs,
            "peer_events": peer_events,
            "players": players,
            "function_samples": samples,
            "http": None if http is None else asdict(http),
            "page_size": args.page_size,
            "processes": default_processes(),
            "seed": args.seed,
            "quick": quick,
            "projections": f"{where}: {', '.join(p.name for p in make())}",
            "load_average": {"start": round(os.getloadavg()[0], 2)},
        },
    )
    workdir = Path(tempfile.mkdtemp(prefix="playerlog-bench-projections-", dir=args.workdir))
    try:
        for size in sizes:
            try:
                run_size(
                    report, size, cache=args.cache, workdir=workdir, make=make, runs=runs,
                    peer_events=peer_events, page_size=args.page_size, seed=args.seed,
                )  # fmt: skip
            except (BenchError, OSError, RuntimeError) as error:
                note = f"{fmt_count(size)} stopped early: {type(error).__name__}: {error}"
                report.notes.append(note)
                progress(note)
                traceback.print_exc()
        if players:
            try:
                run_reads(
                    report, cache=args.cache, workdir=workdir, make=make, players=players,
                    samples=samples, http=http, runs=runs, seed=args.seed,
                )  # fmt: skip
            except (BenchError, OSError, RuntimeError) as error:
                note = f"reads stopped early: {type(error).__name__}: {error}"
                report.notes.append(note)
                progress(note)
                traceback.print_exc()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.settings["load_average"]["end"] = round(os.getloadavg()[0], 2)
    elapsed = time.perf_counter() - began
    print(render_text(report, elapsed))
    command = "python -m bench.projections " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(render_markdown(report, command.strip()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(report, elapsed), indent=2) + "\n")
    return 1 if report.notes else 0


if __name__ == "__main__":
    raise SystemExit(main())
