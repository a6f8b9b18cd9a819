"""bench/scale: the scaled-out deployment's figures, each beside a ceiling of the same run.

    python -m bench.scale [--runs 3] [--quick] [--markdown PATH] [--json PATH]

1. Ingest over HTTP: wrk posts 50-event track batches (bench/ingest's bodies, fresh ids)
   to `playerlog serve --workers 1|2|4 --no-projections` on a fresh PostgreSQL schema,
   and to one process on a fresh SQLite file; beside each PostgreSQL row, the append
   ceiling of the table lock measured with the same number of processes.
2. The PostgreSQL append ceiling (bench/scale_append.py): `EventLog.append` from 1, 2
   and 4 processes, beside raw COPY + table lock and raw COPY without a lock.
3. Delivery (bench/scale_delivery.py): from a prefilled PostgreSQL log to the local NATS
   JetStream server and to a local webhook receiver, beside bare nats-py / httpx loops.

Every figure is the median of `--runs` runs; runs are interleaved. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import psycopg
from nats.errors import Error as NatsError
from psycopg.sql import Identifier

from bench._common import (
    describe_machine,
    fmt_percent,
    fmt_rate,
    fmt_ratio,
    markdown_table,
    median,
    ratio,
    spread,
    text_table,
)
from bench._stores import PgServer, event_loop_name
from bench.ingest_bodies import make_templates, mean_body_bytes, write_lua_templates
from bench.ingest_servers import (
    BenchError,
    Server,
    WrkResult,
    cpu_seconds,
    create_token,
    ensure_wrk,
    progress,
    require_taskset,
    run_wrk,
    running,
    settled_head,
    start_asgi,
    start_playerlog,
    stop,
    wrk_version,
)
from bench.scale_append import (
    CALL_SIZE,
    CONFIGS,
    WRITER_NAMES,
    AppendSample,
    Writer,
    measure_append,
    wal_bytes_since,
    wal_lsn,
)
from bench.scale_delivery import (
    BATCH_SIZE,
    CASES,
    SECRET,
    DeliveryCase,
    DeliverySample,
    delivery_events,
    measure_delivery,
    prefill,
)
from eventstore import open_log

T = TypeVar("T")

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
PROCESSES = (1, 2, 4)
CONNECTIONS = 64
TRACK_PATH = "/v1/events/track"
TRACK_SIZE = 50
TEMPLATES = 32
DURATION, WARMUP = 10, 3
QUICK_DURATION, QUICK_WARMUP = 3, 1
APPEND_EVENTS, QUICK_APPEND_EVENTS = 120_000, 12_000
DELIVERY_EVENTS, QUICK_DELIVERY_EVENTS = 40_000, 4_000


# -- ingest over HTTP --------------------------------------------------------------------------


@dataclass
class IngestSample:
    backend: str
    processes: int
    run: int
    wrk: WrkResult
    server_cpu_seconds: float
    stored: int
    table_bytes: int = 0
    index_bytes: int = 0
    wal_bytes: int = 0
    """WAL written during the measured window (PostgreSQL; the whole server's)."""
    window_events: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.backend}-{self.processes}"

    @property
    def events_per_second(self) -> float:
        return self.wrk.window_ok * TRACK_SIZE / self.wrk.window_seconds

    @property
    def server_cpu(self) -> float:
        return self.server_cpu_seconds / self.wrk.window_seconds

    @property
    def wrk_cpu(self) -> float:
        return self.wrk.cpu_seconds / self.wrk.run_seconds


@dataclass
class Lab:
    wrk: str
    workdir: Path
    pg: PgServer
    nats_url: str
    templates: Path
    duration: int
    warmup: int
    append_events: int
    delivery_events: int
    processes: tuple[int, ...]
    prefix: str = field(default_factory=lambda: f"bench_scale_{os.getpid()}")
    made: int = 0

    def schema(self, label: str) -> str:
        self.made += 1
        return f"{self.prefix}_{self.made}_{label}"


@contextmanager
def fresh_schema(lab: Lab, label: str) -> Iterator[str]:
    schema = lab.schema(label)
    try:
        yield schema
    finally:
        lab.pg.drop_schema(schema)


def relation_sizes(pg: PgServer, schema: str) -> tuple[int, int]:
    """(heap + TOAST, indexes) bytes of `schema.events`."""
    table = Identifier(schema, "events").as_string(None)
    with pg.connect() as conn:
        row = conn.execute(
            "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)", (table, table)
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def measure_ingest(lab: Lab, backend: str, processes: int, run: int) -> IngestSample:
    if backend == "sqlite":
        db = lab.workdir / f"ingest-{run}-{uuid.uuid4().hex[:8]}.db"
        try:
            return _ingest(lab, f"sqlite:///{db}", backend, processes, run, None)
        finally:
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    with fresh_schema(lab, f"ingest{processes}") as schema:
        return _ingest(lab, lab.pg.schema_url(schema), backend, processes, run, schema)


def _ingest(
    lab: Lab, url: str, backend: str, processes: int, run: int, schema: str | None
) -> IngestSample:
    token = create_token(url)
    # Not pinned: the API processes (and PostgreSQL) use both cores; wrk stays on CPU 0.
    server = start_playerlog(url, processes, access_log=True, workdir=lab.workdir, cpus=None)
    with running(server):
        before = settled_head(server)
        marks: list[tuple[float, str, int]] = []

        def mark() -> None:
            lsn = wal_lsn(lab.pg) if schema else "0/0"
            marks.append((cpu_seconds(server.pid), lsn, 0))

        result = run_wrk(
            lab.wrk, server.url, templates=lab.templates, path=TRACK_PATH, token=token,
            connections=CONNECTIONS, warmup=lab.warmup, seconds=lab.duration,
            at_window=(mark, lambda: marks.append((cpu_seconds(server.pid), "", 0))),
        )  # fmt: skip
        wal = wal_bytes_since(lab.pg, marks[0][1]) if schema else 0
        stored = settled_head(server) - before
    sample = IngestSample(
        backend, processes, run, result, marks[1][0] - marks[0][0], stored,
        wal_bytes=wal, window_events=result.window_ok * TRACK_SIZE,
    )  # fmt: skip
    if schema:
        sample.table_bytes, sample.index_bytes = relation_sizes(lab.pg, schema)
    carried = result.ok_requests * TRACK_SIZE
    if result.non_2xx or result.socket_errors:
        sample.problems.append(
            f"{result.non_2xx:,} non-2xx answers, {result.socket_errors:,} socket errors"
        )
    if stored < carried:
        sample.problems.append(f"{carried - stored:,} events answered 2xx are not in the log")
    if result.window_ok == 0:
        sample.problems.append("no answer in the measured window")
    return sample


# -- the report --------------------------------------------------------------------------------


@dataclass
class Report:
    settings: dict[str, Any]
    ingest: list[IngestSample] = field(default_factory=list)
    append: list[AppendSample] = field(default_factory=list)
    delivery: list[DeliverySample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ingest_of(self, backend: str, processes: int) -> list[IngestSample]:
        return [s for s in self.ingest if s.backend == backend and s.processes == processes]

    def append_of(
        self, writer: str, processes: int, call_size: int = CALL_SIZE
    ) -> list[AppendSample]:
        return [
            s
            for s in self.append
            if s.writer == writer and s.processes == processes and s.call_size == call_size
        ]

    def delivery_of(self, case: str) -> list[DeliverySample]:
        return [s for s in self.delivery if s.case == case]

    def ingest_rate(self, backend: str, processes: int) -> float | None:
        found = self.ingest_of(backend, processes)
        return median([s.events_per_second for s in found]) if found else None

    def append_rate(self, writer: str, processes: int, call_size: int = CALL_SIZE) -> float | None:
        found = self.append_of(writer, processes, call_size)
        return median([s.events_per_second for s in found]) if found else None

    def delivery_rate(self, case: str) -> float | None:
        found = self.delivery_of(case)
        return median([s.events_per_second for s in found]) if found else None


def attempt(report: Report, what: str, action: Callable[[], T]) -> T | None:
    """One measurement; a failure becomes a note and the benchmark goes on."""
    try:
        return action()
    except (BenchError, OSError, RuntimeError, ValueError, psycopg.Error, NatsError) as error:
        note = f"{what} failed: {type(error).__name__}: {error}"
        report.notes.append(note)
        progress(note)
        traceback.print_exc()
        return None


def run_once(
    lab: Lab, report: Report, parts: Sequence[str], run: int, logs: dict[int, str]
) -> None:
    if "ingest" in parts:
        for backend, processes in [("sqlite", 1), *(("postgres", p) for p in lab.processes)]:
            found = attempt(
                report,
                f"ingest {backend} x{processes} run {run}",
                partial(measure_ingest, lab, backend, processes, run),
            )
            if found:
                report.ingest.append(found)
                flag = "  !! " + "; ".join(found.problems) if found.problems else ""
                progress(
                    f"  ingest {backend} {processes} process(es) run {run}: "
                    f"{fmt_rate(found.events_per_second)} ev/s, p99 {found.wrk.p99_ms:.1f} ms, "
                    f"server CPU {fmt_percent(found.server_cpu)}{flag}"
                )
                if found.problems:
                    report.notes.append(
                        f"ingest {found.key} run {run}: " + "; ".join(found.problems)
                    )
    if "append" in parts:
        for writer, call_size in CONFIGS:
            for processes in lab.processes:
                appended = attempt(
                    report,
                    f"append {writer} calls of {call_size} x{processes} run {run}",
                    partial(_append, lab, writer, processes, run, call_size),
                )
                if appended:
                    report.append.append(appended)
                    progress(
                        f"  append {writer} calls of {call_size}, {processes} process(es) "
                        f"run {run}: {fmt_rate(appended.events_per_second)} ev/s"
                    )
    if "delivery" in parts:
        for case in CASES:
            url = logs.get(case.players)
            if url is None:
                continue
            sample = attempt(
                report, f"delivery {case.key} run {run}", partial(_deliver, lab, case, run, url)
            )
            if sample:
                report.delivery.append(sample)
                progress(
                    f"  delivery {case.key} run {run}: {fmt_rate(sample.events_per_second)} ev/s"
                )


_receiver: dict[str, str] = {}


def _append(lab: Lab, writer: Writer, processes: int, run: int, call_size: int) -> AppendSample:
    with fresh_schema(lab, f"append_{writer}{processes}") as schema:
        return measure_append(lab.pg, schema, writer, processes, lab.append_events, run, call_size)


def _deliver(lab: Lab, case: DeliveryCase, run: int, url: str) -> DeliverySample:
    log = open_log(url)
    try:
        # asyncio's own loop, as `playerlog worker` (the process that delivers) runs.
        with asyncio.Runner() as runner:
            return runner.run(
                measure_delivery(case, run, log, receiver_url=_receiver["url"],
                                 nats_url=lab.nats_url)
            )  # fmt: skip
    finally:
        log.close()


# -- tables ------------------------------------------------------------------------------------

INGEST_HEADERS = ["server", "processes", "ev/s", "p50 ms", "p99 ms", "vs SQLite x1",
                  "lock ceiling ev/s", "vs lock ceiling", "server CPU", "wrk CPU", "spread",
                  "check"]  # fmt: skip
APPEND_HEADERS = ["writer", "call", "processes", "ev/s", "commits/s", "vs no lock", "vs 1 process",
                  "WAL B/event", "spread"]  # fmt: skip
DELIVERY_HEADERS = ["destination", "what", "players", "in flight", "ev/s", "ceiling ev/s",
                    "vs ceiling", "spread"]  # fmt: skip
SIZE_HEADERS = ["measured on", "events", "table B/event", "indexes B/event", "total B/event",
                "WAL B/event (min)"]  # fmt: skip

_CEILING_OF = {"webhook": "webhook-bare", "nats": "nats-bare", "nats-hot": "nats-bare",
               "nats-1": "nats-bare-1"}  # fmt: skip


def _ms(value: float) -> str:
    return f"{value:.1f}"


def ingest_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    sqlite = report.ingest_rate("sqlite", 1)
    configs = [("sqlite", 1), *(("postgres", p) for p in report.settings["processes"])]
    for backend, processes in configs:
        found = report.ingest_of(backend, processes)
        if not found:
            continue
        rate = median([s.events_per_second for s in found])
        ceiling = report.append_rate("locked", processes) if backend == "postgres" else None
        rows.append([
            f"playerlog serve, {'SQLite file' if backend == 'sqlite' else 'PostgreSQL'}",
            str(processes),
            fmt_rate(rate),
            _ms(median([s.wrk.p50_ms for s in found])),
            _ms(median([s.wrk.p99_ms for s in found])),
            fmt_ratio(ratio(rate, sqlite)),
            fmt_rate(ceiling),
            fmt_ratio(ratio(rate, ceiling)),
            fmt_percent(median([s.server_cpu for s in found])),
            fmt_percent(median([s.wrk_cpu for s in found])),
            fmt_percent(spread([s.events_per_second for s in found])),
            "ok" if not any(s.problems for s in found) else "PROBLEM",
        ])  # fmt: skip
    return rows


def append_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for writer, call in CONFIGS:
        one = report.append_rate(writer, 1, call)
        for processes in report.settings["processes"]:
            found = report.append_of(writer, processes, call)
            if not found:
                continue
            rate = median([s.events_per_second for s in found])
            commits = [t for s in found if (t := s.transactions_per_second) is not None]
            rows.append([
                WRITER_NAMES[writer],
                f"{call:,}",
                str(processes),
                fmt_rate(rate),
                fmt_rate(median(commits)) if commits else "-",
                "-" if writer == "unlocked"
                else fmt_ratio(ratio(rate, report.append_rate("unlocked", processes, call))),
                fmt_ratio(ratio(rate, one)),
                fmt_rate(min(s.wal_bytes / s.events for s in found)),
                fmt_percent(spread([s.events_per_second for s in found])),
            ])  # fmt: skip
    return rows


def delivery_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for case in CASES:
        found = report.delivery_of(case.key)
        if not found:
            continue
        rate = median([s.events_per_second for s in found])
        ceiling_key = _CEILING_OF.get(case.key)
        ceiling = report.delivery_rate(ceiling_key) if ceiling_key else None
        rows.append([
            "NATS JetStream" if case.destination == "nats" else "webhook",
            case.what,
            f"{case.players:,}",
            str(case.in_flight),
            fmt_rate(rate),
            "-" if case.ceiling else fmt_rate(ceiling),
            "-" if case.ceiling else fmt_ratio(ratio(rate, ceiling)),
            fmt_percent(spread([s.events_per_second for s in found])),
        ])  # fmt: skip
    return rows


def size_rows(report: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for processes in report.settings["processes"]:
        found = [s for s in report.ingest_of("postgres", processes) if s.stored]
        if not found:
            continue
        biggest = max(found, key=lambda s: s.stored)
        wal = [s.wal_bytes / s.window_events for s in found if s.window_events]
        rows.append([
            f"PostgreSQL ingest, {processes} process(es)",
            f"{biggest.stored:,}",
            fmt_rate(biggest.table_bytes / biggest.stored),
            fmt_rate(biggest.index_bytes / biggest.stored),
            fmt_rate((biggest.table_bytes + biggest.index_bytes) / biggest.stored),
            fmt_rate(min(wal)) if wal else "-",
        ])  # fmt: skip
    return rows


def header_lines(report: Report) -> list[str]:
    s = report.settings
    return [
        *s["machine"],
        f"load          {s['wrk']}, 1 thread, {CONNECTIONS} connections, pinned to CPU 0; "
        "servers and PostgreSQL not pinned (both cores)",
        f"ingest        POST {TRACK_PATH}, {TRACK_SIZE}-event batches (mean "
        f"{s['body_bytes'] / 1024:.1f} KiB, fresh ids), {s['warmup']} s warm-up + "
        f"{s['duration']} s measured; `playerlog serve --workers N --no-projections`, "
        "access log on; fresh schema / file per measurement",
        f"append        {s['append_events']:,} events per measurement in calls of 50 (raw "
        "writers also 1,000), spawned processes (playerlog: 8 asyncio tasks each); our "
        "schema, every index kept",
        f"delivery      {s['delivery_events']:,} events prefilled in PostgreSQL, batches of "
        f"{BATCH_SIZE}; from checkpoint 0 to the head; receiver: bare ASGI under uvicorn "
        "verifying each request's HMAC (bench/scale_receiver.py)",
        f"load average  {s['load_average'].get('start', '?')} at start, "
        f"{s['load_average'].get('end', '?')} at the end (1-min)",
        f"runs          {s['runs']} per figure, interleaved; the median is shown; spread = "
        "(max - min) / median",
    ]


def sections(report: Report) -> list[tuple[str, list[str], list[list[str]]]]:
    return [
        ("Ingest over HTTP (vs lock ceiling: COPY + table lock from as many processes)",
         INGEST_HEADERS, ingest_rows(report)),
        ("PostgreSQL append ceiling", APPEND_HEADERS, append_rows(report)),
        ("Delivery from a prefilled PostgreSQL log", DELIVERY_HEADERS, delivery_rows(report)),
        ("PostgreSQL storage per event (after the ingest runs)", SIZE_HEADERS,
         size_rows(report)),
    ]  # fmt: skip


def render_text(report: Report, elapsed: float) -> str:
    parts = [f"bench/scale, median of {report.settings['runs']} runs", "", *header_lines(report)]
    for title, headers, rows in sections(report):
        if rows:
            parts += ["", title, "", text_table(headers, rows)]
    parts += [*(f"note: {n}" for n in report.notes), "", f"took {elapsed / 60:.1f} min"]
    return "\n".join(parts)


def render_markdown(report: Report, command: str) -> str:
    parts = [f"Median of {report.settings['runs']} runs. Command: `{command}`.", "", "```",
             *header_lines(report), "```"]  # fmt: skip
    for title, headers, rows in sections(report):
        if rows:
            parts += ["", f"{title}:", "", markdown_table(headers, rows)]
    parts += [f"\nNote: {n}" for n in report.notes]
    return "\n".join(parts) + "\n"


def to_json(report: Report, elapsed: float) -> dict[str, Any]:
    return {
        "settings": report.settings,
        "elapsed_seconds": round(elapsed, 1),
        "ingest": [{**asdict(s), "events_per_second": s.events_per_second,
                    "server_cpu": s.server_cpu} for s in report.ingest],
        "append": [{**asdict(s), "events_per_second": s.events_per_second,
                    "transactions_per_second": s.transactions_per_second}
                   for s in report.append],
        "delivery": [{**asdict(s), "events_per_second": s.events_per_second}
                     for s in report.delivery],
        "tables": {title: {"headers": headers, "rows": rows}
                   for title, headers, rows in sections(report)},
        "notes": report.notes,
    }  # fmt: skip


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: one run, 3 s windows, small event counts")  # fmt: skip
    parser.add_argument("--parts", default="ingest,append,delivery",
                        help="which parts, comma-separated (default all three)")  # fmt: skip
    parser.add_argument("--processes", default="1,2,4",
                        help="API / writer process counts (default 1,2,4)")  # fmt: skip
    parser.add_argument("--duration", type=int, default=None, help="seconds per ingest window")
    parser.add_argument("--warmup", type=int, default=None, help="warm-up seconds before it")
    parser.add_argument(
        "--append-events",
        type=int,
        default=None,
        help=f"events per append measurement (default {APPEND_EVENTS:,})",
    )
    parser.add_argument(
        "--delivery-events",
        type=int,
        default=None,
        help=f"events in the delivery log (default {DELIVERY_EVENTS:,})",
    )
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL, help="PostgreSQL server (no query)")
    parser.add_argument("--nats-url", default=DEFAULT_NATS_URL, help="NATS JetStream server")
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    parser.add_argument("--json", type=Path, help="also write the raw numbers as JSON here")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where SQLite files and server logs go (default: temp dir)",
    )
    return parser.parse_args(argv)  # fmt: skip


def _reachable(url: str, default_port: int) -> str | None:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or default_port), 3):
            return None
    except OSError as error:
        return f"{parts.hostname}:{parts.port or default_port} is unreachable ({error})"


def prefill_logs(lab: Lab, players: set[int], report: Report) -> dict[int, str]:
    """One prefilled schema per player count; returns their URLs."""
    urls: dict[int, str] = {}
    for count in sorted(players):
        schema = lab.schema(f"delivery{count}")
        url = lab.pg.schema_url(schema)
        began = time.perf_counter()
        log = open_log(url)
        try:
            prefill(log, delivery_events(lab.delivery_events, count, seed=count))
        finally:
            log.close()
        urls[count] = url
        progress(f"delivery log with {count:,} players filled in "
                 f"{time.perf_counter() - began:.1f} s")  # fmt: skip
    report.settings["delivery_logs"] = {str(k): v for k, v in urls.items()}
    return urls


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - {"ingest", "append", "delivery"}
    if unknown:
        raise SystemExit(f"--parts: unknown {sorted(unknown)}; use ingest, append, delivery")
    for what, url, port in (("PostgreSQL", args.pg_url, 5432), ("NATS", args.nats_url, 4222)):
        if what == "NATS" and "delivery" not in parts:
            continue
        problem = _reachable(url, port)
        if problem:
            raise SystemExit(f"bench/scale needs {what}: {problem}")
    wrk = ""
    if "ingest" in parts:
        require_taskset()
        wrk = ensure_wrk()
    runs = args.runs or (1 if args.quick else 3)
    pg = PgServer(args.pg_url)
    workdir = Path(tempfile.mkdtemp(prefix="playerlog-bench-scale-", dir=args.workdir))
    templates = make_templates("track", TEMPLATES, TRACK_SIZE, seed=7)
    lua = workdir / "scale-track-templates.lua"
    write_lua_templates(lua, templates, TRACK_SIZE)
    lab = Lab(
        wrk=wrk, workdir=workdir, pg=pg, nats_url=args.nats_url, templates=lua,
        duration=args.duration or (QUICK_DURATION if args.quick else DURATION),
        warmup=args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else WARMUP),
        append_events=args.append_events or (QUICK_APPEND_EVENTS if args.quick else APPEND_EVENTS),
        delivery_events=args.delivery_events
        or (QUICK_DELIVERY_EVENTS if args.quick else DELIVERY_EVENTS),
        processes=tuple(int(p) for p in args.processes.split(",")),
    )  # fmt: skip
    machine = describe_machine(pg.version(), event_loop_name())
    report = Report({
        "machine": machine.lines(), "wrk": wrk_version(wrk) if wrk else "-", "runs": runs,
        "processes": list(lab.processes), "parts": parts, "duration": lab.duration,
        "warmup": lab.warmup, "append_events": lab.append_events,
        "delivery_events": lab.delivery_events, "quick": args.quick,
        "body_bytes": round(mean_body_bytes(templates)),
        "load_average": {"start": round(os.getloadavg()[0], 2)},
    })  # fmt: skip
    began = time.perf_counter()
    logs: dict[int, str] = {}
    try:
        if "delivery" in parts:
            logs = prefill_logs(lab, {c.players for c in CASES}, report)
        receiver: Server | None = None
        if "delivery" in parts:
            receiver = start_asgi("receiver", "bench.scale_receiver:app", workdir,
                                  env={"BENCH_SCALE_SECRET": SECRET}, cpus=None)  # fmt: skip
            _receiver["url"] = receiver.url
        try:
            for run in range(1, runs + 1):
                progress(f"run {run} of {runs}")
                run_once(lab, report, parts, run, logs)
        finally:
            if receiver is not None:
                stop(receiver)
    finally:
        for url in logs.values():
            pg.drop_schema(urlsplit(url).query.removeprefix("schema="))
        shutil.rmtree(workdir, ignore_errors=True)
    report.settings["load_average"]["end"] = round(os.getloadavg()[0], 2)
    elapsed = time.perf_counter() - began
    print(render_text(report, elapsed))
    command = "python -m bench.scale " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.markdown:
        args.markdown.write_text(render_markdown(report, command.strip()))
    if args.json:
        args.json.write_text(json.dumps(to_json(report, elapsed), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
