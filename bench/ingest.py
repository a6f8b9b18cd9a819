"""bench/ingest: how many events/s `playerlog serve` stores over HTTP, beside its ceiling.

    python -m bench.ingest [--runs 3] [--duration 10] [--quick] [--markdown PATH] [--json PATH]

wrk (one thread, 64 connections, pinned to CPU 0) posts 50-event track batches to
`POST /v1/events/track` and 1,000-item unified batches to `POST /api/v1/events`, every
request with ids never sent before, to `playerlog serve` (pinned to CPU 1) on a fresh
SQLite file with the default durability (WAL, synchronous=FULL), with 1 and 2 API
processes; then at half the rate it reached, paced, for the latency. The ceiling, in the
same run: a bare ASGI app doing the same msgspec decode (bench/ingest_ceiling.py). After
every playerlog measurement the log head must have grown by the events the 2xx answers
carried. Every figure is the median of `--runs` runs. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from bench import ingest_profile
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
from bench.ingest_bodies import Kind, make_templates, mean_body_bytes, write_lua_templates
from bench.ingest_servers import (
    CLIENT_CPU,
    REPO,
    TAIL_SECONDS,
    BenchError,
    Server,
    WrkResult,
    cpu_seconds,
    create_token,
    ensure_wrk,
    progress,
    py_spy,
    require_taskset,
    run_wrk,
    running,
    settled_head,
    start_ceiling,
    start_playerlog,
    tail,
    wrk_version,
)

CONNECTIONS = 64
DURATION = 10
WARMUP = 3
QUICK_DURATION = 3
QUICK_WARMUP = 1
WORKERS = (1, 2)
TARGET_RATE = 100_000
TARGET_P99_MS = 50.0
IDLE_LOAD = 0.7
IDLE_QUIET_SECONDS = 60
IDLE_POLL_SECONDS = 30

System = Literal["playerlog", "ceiling"]


@dataclass(frozen=True)
class Scenario:
    kind: Kind
    title: str
    path: str
    size: int
    """Events (track) or items (unified) per request."""
    templates: int
    """Different bodies wrk cycles through (each with fresh ids every time)."""


SCENARIOS = (
    Scenario("track", "Track: POST /v1/events/track, 50-event batches", "/v1/events/track", 50,
             32),
    Scenario("unified", "Unified: POST /api/v1/events, 1,000-item batches", "/api/v1/events",
             1000, 8),
)  # fmt: skip


@dataclass(frozen=True)
class Config:
    system: System
    workers: int
    access_log: bool
    paced: bool = False
    """At half the rate the same config reached unpaced in the same run."""

    @property
    def key(self) -> str:
        name = "ceiling" if self.system == "ceiling" else f"playerlog-w{self.workers}"
        if self.system == "playerlog" and not self.access_log:
            name += "-nolog"
        return name + ("-half" if self.paced else "")

    def unpaced(self) -> Config:
        return Config(self.system, self.workers, self.access_log)


def max_configs(scenario: Scenario, workers: Sequence[int]) -> list[Config]:
    configs = [Config("ceiling", 1, access_log=False)]
    configs += [Config("playerlog", w, access_log=True) for w in workers]
    if scenario.kind == "track":  # one row with playerlog's access log off
        configs.append(Config("playerlog", workers[0], access_log=False))
    return configs


def paced_configs(workers: Sequence[int]) -> list[Config]:
    return [Config("playerlog", w, access_log=True, paced=True) for w in workers]


# -- results -----------------------------------------------------------------------------------


@dataclass
class Sample:
    """One measurement: one server, one wrk run."""

    scenario: str
    config: str
    run: int
    size: int
    wrk: WrkResult
    server_cpu_seconds: float
    paced_at_events: float | None = None
    stored: int | None = None
    """How much the log head grew (playerlog), after the server settled."""
    problems: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        """Events of the 2xx answers that arrived in the window, per second."""
        return self.wrk.window_ok * self.size / self.wrk.window_seconds

    @property
    def requests_per_second(self) -> float:
        return self.wrk.window_ok / self.wrk.window_seconds

    @property
    def server_cpu(self) -> float:
        """Share of one core the server's processes used in the window."""
        return self.server_cpu_seconds / self.wrk.window_seconds

    @property
    def wrk_cpu(self) -> float:
        """Share of its core wrk used over its whole run."""
        return self.wrk.cpu_seconds / self.wrk.run_seconds


@dataclass
class Report:
    settings: dict[str, Any]
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def of(self, scenario: str, config: str) -> list[Sample]:
        return [s for s in self.samples if s.scenario == scenario and s.config == config]

    def sample(self, scenario: str, config: str, run: int) -> Sample | None:
        found = [s for s in self.of(scenario, config) if s.run == run]
        return found[0] if found else None

    def median_of(
        self, scenario: str, config: str, value: Callable[[Sample], float]
    ) -> float | None:
        samples = self.of(scenario, config)
        return median([value(s) for s in samples]) if samples else None


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Lab:
    wrk: str
    workdir: Path
    templates: dict[str, Path]
    body_bytes: dict[str, float]
    connections: int
    duration: int
    warmup: int
    profile_dir: Path | None = None

    def fresh_db(self, label: str) -> Path:
        return self.workdir / f"{label}-{uuid.uuid4().hex[:8]}.db"


def measure(
    lab: Lab, scenario: Scenario, config: Config, run: int, rate_events: float | None = None
) -> Sample:
    """One measurement on a fresh server (and, for playerlog, a fresh database)."""
    if config.system == "ceiling":
        with running(start_ceiling(lab.workdir)) as server:
            return _load(lab, server, scenario, config, run, token="ceiling")
    db = lab.fresh_db(f"{scenario.kind}-{config.key}-{run}")
    url = f"sqlite:///{db}"
    try:
        token = create_token(url)
        server = start_playerlog(
            url, config.workers, access_log=config.access_log, workdir=lab.workdir
        )
        with running(server):
            return _load(lab, server, scenario, config, run, token, rate_events)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)


def _load(
    lab: Lab,
    server: Server,
    scenario: Scenario,
    config: Config,
    run: int,
    token: str,
    rate_events: float | None = None,
) -> Sample:
    """One wrk run (warm-up, window, tail), then check what the log stored."""
    playerlog = config.system == "playerlog"
    before = settled_head(server) if playerlog else 0
    cpu: list[float] = []
    result = run_wrk(
        lab.wrk, server.url, templates=lab.templates[scenario.kind], path=scenario.path,
        token=token, connections=lab.connections, warmup=lab.warmup, seconds=lab.duration,
        rate=rate_events / scenario.size if rate_events else None,
        at_window=(lambda: cpu.append(cpu_seconds(server.pid)),) * 2,
    )  # fmt: skip
    sample = Sample(scenario.kind, config.key, run, scenario.size, result, cpu[1] - cpu[0])
    sample.paced_at_events = rate_events
    sample.problems += _answer_problems(result)
    if playerlog:
        sample.stored = settled_head(server) - before
        sample.problems += _storage_problems(sample, lab.connections)
    if sample.problems:
        sample.problems.append("server log tail: " + tail(server.log_path, 3))
    return sample


def _answer_problems(result: WrkResult) -> list[str]:
    problems: list[str] = []
    if result.non_2xx or result.window_other:
        problems.append(
            f"{result.non_2xx:,} non-2xx answers ({result.window_other:,} in the window)"
        )
    if result.socket_errors:
        problems.append(f"{result.socket_errors:,} socket errors or timeouts")
    answers = result.window_ok + result.window_other
    if result.timed < answers:
        problems.append(f"only {result.timed:,} of {answers:,} answers timed (X-Request-Id)")
    if answers == 0:
        problems.append("no answer in the measurement window")
    return problems


def _storage_problems(sample: Sample, connections: int) -> list[str]:
    """The log must hold every event a 2xx answer carried; it may hold up to one
    request per connection more (requests wrk abandoned when its time was up)."""
    carried = sample.wrk.ok_requests * sample.size
    stored = sample.stored or 0
    if stored < carried:
        return [f"{carried - stored:,} events answered 2xx are not in the log"]
    extra = stored - carried
    if extra > (connections + sample.wrk.socket_errors) * sample.size:
        return [f"the log grew by {extra:,} more events than the 2xx answers carried"]
    return []


def describe(sample: Sample) -> str:
    rate = f" (paced at {fmt_rate(sample.paced_at_events)} ev/s)" if sample.paced_at_events else ""
    flag = "" if not sample.problems else "  !! " + "; ".join(sample.problems[:-1])
    return (
        f"  {sample.scenario} {sample.config} run {sample.run}{rate}: "
        f"{fmt_rate(sample.events_per_second)} ev/s, {sample.requests_per_second:,.0f} req/s, "
        f"p50 {sample.wrk.p50_ms:.1f} ms, p99 {sample.wrk.p99_ms:.1f} ms, "
        f"server CPU {fmt_percent(sample.server_cpu)}, wrk CPU {fmt_percent(sample.wrk_cpu)}" + flag
    )


def attempt(report: Report, what: str, action: Callable[[], Sample]) -> Sample | None:
    """One measurement; a failure becomes a note and the benchmark goes on."""
    try:
        sample = action()
    except (BenchError, OSError, ValueError, KeyError) as error:
        note = f"{what} failed: {type(error).__name__}: {error}"
        report.notes.append(note)
        progress(note)
        traceback.print_exc()
        return None
    report.samples.append(sample)
    progress(describe(sample))
    if sample.problems:
        report.notes.append(
            f"{sample.scenario} {sample.config} run {sample.run}: " + "; ".join(sample.problems)
        )
    return sample


def run_once(
    lab: Lab, report: Report, scenarios: Sequence[Scenario], workers: Sequence[int], run: int
) -> None:
    """Run `run` of every figure: the maximum rates, then the paced ones."""
    for scenario in scenarios:
        for config in max_configs(scenario, workers):
            attempt(
                report,
                f"{scenario.kind} {config.key} run {run}",
                partial(measure, lab, scenario, config, run),
            )
        for config in paced_configs(workers):
            reached = report.sample(scenario.kind, config.unpaced().key, run)
            if reached is None or reached.events_per_second <= 0:
                continue
            half = reached.events_per_second / 2
            attempt(
                report,
                f"{scenario.kind} {config.key} run {run}",
                partial(measure, lab, scenario, config, run, half),
            )


# -- profiling -----------------------------------------------------------------------------------


def profile(lab: Lab, report: Report, scenarios: Sequence[Scenario]) -> None:
    """One extra measurement per scenario (1 worker, access log on) with py-spy
    sampling the server; not part of the tables (sampling slows the server)."""
    tool = py_spy()
    if tool is None or lab.profile_dir is None:
        report.notes.append("profile skipped: py-spy not found (pip install py-spy)")
        return
    lab.profile_dir.mkdir(parents=True, exist_ok=True)
    for scenario in scenarios:
        output = lab.profile_dir / f"ingest-profile-{scenario.kind}.txt"
        try:
            found = _profile_one(lab, tool, scenario, output)
        except (BenchError, OSError) as error:
            report.notes.append(f"profile of {scenario.kind} failed: {error}")
            continue
        report.profiles[scenario.kind] = found
        progress(f"profile of {scenario.kind} written to {output}")


def _profile_one(lab: Lab, tool: str, scenario: Scenario, output: Path) -> dict[str, Any]:
    db = lab.fresh_db(f"profile-{scenario.kind}")
    url = f"sqlite:///{db}"
    token = create_token(url)
    spy: list[subprocess.Popen[bytes]] = []
    cpu: list[dict[int, float]] = []

    def window_start(server: Server) -> None:
        cpu.append(ingest_profile.thread_cpu(server.pid))
        spy.append(ingest_profile.start(tool, server.pid, lab.duration, output, CLIENT_CPU))

    try:
        with running(start_playerlog(url, 1, access_log=True, workdir=lab.workdir)) as server:
            result = run_wrk(
                lab.wrk, server.url, templates=lab.templates[scenario.kind],
                path=scenario.path, token=token, connections=lab.connections,
                warmup=lab.warmup, seconds=lab.duration,
                at_window=(
                    partial(window_start, server),
                    lambda: cpu.append(ingest_profile.thread_cpu(server.pid)),
                ),
            )  # fmt: skip
            problem = ingest_profile.finish(spy[0], output) if spy else "py-spy did not start"
            if problem:
                raise BenchError(problem)
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    found = ingest_profile.summarize(output.read_text(), cpu[0], cpu[1], lab.duration)
    found["events_per_second"] = result.window_ok * scenario.size / result.window_seconds
    found["file"] = str(output)
    return found


# -- targets -----------------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    measured: str
    passed: bool | None


def targets(report: Report) -> list[Target]:
    found: list[Target] = []
    for workers in report.settings["workers"]:
        key = Config("playerlog", workers, access_log=True).key
        rate = report.median_of("track", key, lambda s: s.events_per_second)
        found.append(
            Target(
                f"track 50-event batches, {_workers(workers)}: >= 100k durable ev/s",
                f"{fmt_rate(rate)} ev/s",
                None if rate is None else rate >= TARGET_RATE,
            )
        )
    for workers in report.settings["workers"]:
        key = Config("playerlog", workers, access_log=True, paced=True).key
        p99 = report.median_of("track", key, lambda s: s.wrk.p99_ms)
        at = report.median_of("track", key, lambda s: s.paced_at_events or 0.0)
        found.append(
            Target(
                f"track, {_workers(workers)}, at half its max rate ({fmt_rate(at)} ev/s): "
                "p99 < 50 ms",
                "-" if p99 is None else f"p99 {p99:.1f} ms",
                None if p99 is None else p99 < TARGET_P99_MS,
            )
        )
    return found


def _workers(count: int) -> str:
    return f"{count} API process{'es' if count > 1 else ''}"


def _verdict(target: Target) -> str:
    return "not run" if target.passed is None else "PASS" if target.passed else "MISS"


# -- output --------------------------------------------------------------------------------------

MAX_HEADERS = (
    "server",
    "workers",
    "access log",
    "ev/s",
    "req/s",
    "p50 ms",
    "p99 ms",
    "ceiling ev/s",
    "vs ceiling",
    "server CPU",
    "wrk CPU",
    "spread",
    "check",
)
PACED_HEADERS = (
    "server",
    "workers",
    "paced at ev/s",
    "achieved ev/s",
    "p50 ms",
    "p90 ms",
    "p99 ms",
    "max ms",
    "server CPU",
    "check",
)
TARGET_HEADERS = ("target", "measured", "result")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _check(samples: Sequence[Sample]) -> str:
    bad = [s for s in samples if s.problems]
    return "ok" if not bad else f"!! {len(bad)} of {len(samples)} runs"


def max_rows(report: Report, scenario: Scenario) -> list[list[str]]:
    workers = report.settings["workers"]
    ceiling = report.median_of(scenario.kind, "ceiling", lambda s: s.events_per_second)
    rows: list[list[str]] = []
    for config in max_configs(scenario, workers):
        samples = report.of(scenario.kind, config.key)
        if not samples:
            continue
        rate = median([s.events_per_second for s in samples])
        is_ceiling = config.system == "ceiling"
        rows.append(
            [
                "bare ASGI + msgspec" if is_ceiling else "playerlog",
                str(config.workers),
                "on" if config.access_log else "off",
                fmt_rate(rate),
                fmt_rate(median([s.requests_per_second for s in samples])),
                _ms(median([s.wrk.p50_ms for s in samples])),
                _ms(median([s.wrk.p99_ms for s in samples])),
                "-" if is_ceiling else fmt_rate(ceiling),
                "-" if is_ceiling else fmt_ratio(ratio(rate, ceiling)),
                fmt_percent(median([s.server_cpu for s in samples])),
                fmt_percent(median([s.wrk_cpu for s in samples])),
                fmt_percent(spread([s.events_per_second for s in samples])),
                _check(samples),
            ]
        )
    return rows


def paced_rows(report: Report, scenario: Scenario) -> list[list[str]]:
    rows: list[list[str]] = []
    for config in paced_configs(report.settings["workers"]):
        samples = report.of(scenario.kind, config.key)
        if not samples:
            continue
        rows.append(
            [
                "playerlog",
                str(config.workers),
                fmt_rate(median([s.paced_at_events or 0.0 for s in samples])),
                fmt_rate(median([s.events_per_second for s in samples])),
                _ms(median([s.wrk.p50_ms for s in samples])),
                _ms(median([s.wrk.p90_ms for s in samples])),
                _ms(median([s.wrk.p99_ms for s in samples])),
                _ms(median([s.wrk.max_ms for s in samples])),
                fmt_percent(median([s.server_cpu for s in samples])),
                _check(samples),
            ]
        )
    return rows


def target_rows(report: Report) -> list[list[str]]:
    return [[t.name, t.measured, _verdict(t)] for t in targets(report)]


def header_lines(report: Report) -> list[str]:
    s = report.settings
    load = s.get("load_average", {})
    bodies = s.get("body_bytes", {})
    return [
        *s["machine"],
        f"load          {s['wrk']}, 1 thread, {s['connections']} connections, pinned to "
        "CPU 0 (taskset -c 0); every server pinned to CPU 1 (taskset -c 1), all its "
        "processes",
        f"measurement   one wrk run per figure: {s['warmup']} s warm-up, {s['duration']} s "
        f"measured, {TAIL_SECONDS} s more; only answers arriving in the measured window "
        "count; latency per request (matched by X-Request-Id), from send to full answer; "
        f"wrk timeout {s['wrk_timeout']}",
        "playerlog     `playerlog serve --workers N`, a fresh SQLite file per measurement "
        "(WAL, synchronous=FULL, the writer's defaults); JSON access log to a file unless "
        "'off' (PLAYERLOG_ACCESS_LOG=0); token made with `playerlog tokens create`",
        "check         ok = no non-2xx answer or socket error, and the log head (GET /readyz) "
        "grew by at least the events of every 2xx answer of the run (at most one request per "
        "connection more: those wrk abandoned at its end)",
        "ceiling       bench/ingest_ceiling.py: uvicorn (uvloop, httptools, no access log) "
        "reading the body and decoding it with a cached msgspec Decoder of "
        "ingest.TrackRequest / ingest.UnifiedRequest, answering 202 / 204",
        "bodies        "
        + "; ".join(f"{k}: mean {v / 1024:,.1f} KiB" for k, v in bodies.items())
        + "; every event_id / unique_id / round_id new in every request",
        "half rate     paced at half the ev/s the same server reached in the same run "
        "(Lua delay(), wrk2-style schedule; latency from the actual send)",
        f"runs          {s['runs']} per figure; the median is shown; spread = (max - min) "
        "/ median of ev/s",
        f"load average  {load.get('start', '?')} at start, {load.get('end', '?')} at the end "
        "(1-min; the benchmark itself keeps about one CPU busy)",
    ]


def profile_lines(report: Report) -> list[str]:
    lines: list[str] = []
    for kind, found in report.profiles.items():
        lines += ingest_profile.lines(kind, found)
    return lines


def render_text(report: Report, scenarios: Sequence[Scenario], elapsed: float) -> str:
    parts = [
        f"bench/ingest: events/s over HTTP, median of {report.settings['runs']} runs "
        "(vs ceiling = playerlog / bare ASGI + msgspec decode)",
        "",
        *header_lines(report),
    ]
    for scenario in scenarios:
        parts += ["", scenario.title, "", text_table(MAX_HEADERS, max_rows(report, scenario))]
        paced = paced_rows(report, scenario)
        if paced:
            parts += ["", "At half the max rate, paced:", "", text_table(PACED_HEADERS, paced)]
    parts += ["", "Targets", "", text_table(TARGET_HEADERS, target_rows(report))]
    parts += profile_lines(report)
    parts += [*(f"note: {n}" for n in report.notes), "", f"took {elapsed / 60:.1f} min"]
    return "\n".join(parts)


def render_markdown(report: Report, scenarios: Sequence[Scenario], command: str) -> str:
    parts = [
        f"Median of {report.settings['runs']} runs. Command: `{command}`.",
        "",
        "```",
        *header_lines(report),
        "```",
    ]
    for scenario in scenarios:
        table = markdown_table(MAX_HEADERS, max_rows(report, scenario))
        parts += ["", f"{scenario.title}:", "", table]
        paced = paced_rows(report, scenario)
        if paced:
            parts += ["", "At half the max rate, paced:", "", markdown_table(PACED_HEADERS, paced)]
    parts += ["", markdown_table(TARGET_HEADERS, target_rows(report))]
    if report.profiles:
        parts += ["", "```", *profile_lines(report)[1:], "```"]
    parts += [f"\nNote: {n}" for n in report.notes]
    return "\n".join(parts) + "\n"


def to_json(report: Report, elapsed: float) -> dict[str, Any]:
    return {
        "settings": report.settings,
        "elapsed_seconds": round(elapsed, 1),
        "samples": [
            {
                **asdict(s),
                "events_per_second": s.events_per_second,
                "requests_per_second": s.requests_per_second,
                "server_cpu": s.server_cpu,
                "wrk_cpu": s.wrk_cpu,
            }
            for s in report.samples
        ],
        "targets": [asdict(t) for t in targets(report)],
        "profiles": report.profiles,
        "notes": report.notes,
    }


# -- the machine -------------------------------------------------------------------------------


def machine_lines(wrk: str) -> list[str]:
    machine = describe_machine("not used", _version("uvloop"))
    names = ("uvicorn", "uvloop", "httptools", "litestar", "msgspec")
    libraries = ", ".join(f"{name} {_version(name)}" for name in names)
    return [
        f"date          {machine.date}",
        f"machine       {machine.host}: {machine.cpus} CPUs ({machine.cpu_model}), "
        f"{machine.memory_gib:.0f} GiB RAM, Linux {machine.kernel}",
        f"python        {machine.python}; sqlite {machine.sqlite}",
        f"libraries     {libraries}; load generator {wrk_version(wrk)}",
        f"playerlog     {machine.commit}; api+ingest+eventstore/*.py sha256 {sources_digest()}",
    ]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def sources_digest() -> str:
    """Which code was measured, even with uncommitted changes in the checkout."""
    digest = hashlib.sha256()
    for package in ("api", "ingest", "eventstore"):
        for path in sorted((REPO / package).glob("*.py")):
            digest.update(f"{package}/{path.name}".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


# -- waiting for a quiet machine -----------------------------------------------------------------


def busy_processes() -> list[str]:
    """Other benchmarks and test runs on the machine (not this process or its children)."""
    mine = {os.getpid(), os.getppid()}
    found: list[str] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        text = " ".join(a.decode(errors="replace") for a in argv if a)
        if "pytest" in text or any(a.startswith(b"bench.") for a in argv):
            found.append(f"{entry.name}: {text[:100]}")
    return found


def wait_for_quiet(minutes: float, report: Report) -> None:
    """Poll until no other bench./pytest process has run for 60 s and the 1-minute
    load average is below 0.7; after `minutes`, go on anyway and say so."""
    deadline = time.monotonic() + minutes * 60
    quiet_since: float | None = None
    while True:
        now = time.monotonic()
        busy = busy_processes()
        load = os.getloadavg()[0]
        quiet_since = None if busy else (quiet_since or now)
        if quiet_since is not None and now - quiet_since >= IDLE_QUIET_SECONDS and load < IDLE_LOAD:
            progress(f"machine quiet (load {load:.2f}); starting")
            return
        if now >= deadline:
            note = (
                f"the machine never got quiet within {minutes:g} min (load {load:.2f}, "
                f"{len(busy)} other bench/pytest processes); ran anyway"
            )
            report.notes.append(note)
            progress(note)
            return
        progress(f"waiting for a quiet machine: load {load:.2f}, busy: {busy[:3] or 'none'}")
        time.sleep(IDLE_POLL_SECONDS)


# -- command line --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ingest",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument(
        "--duration", type=int, default=None, help=f"seconds per measurement (default {DURATION})"
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help=f"warm-up seconds before each (default {WARMUP})"
    )
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="wrk connections")
    parser.add_argument("--scenario", choices=("track", "unified", "all"), default="all")
    parser.add_argument(
        "--workers", default="1,2", help="API process counts, comma-separated (default 1,2)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a fast smoke run: {QUICK_WARMUP} s warm-up, {QUICK_DURATION} s, one run",
    )
    parser.add_argument("--markdown", type=Path, help="also write the tables as markdown here")
    parser.add_argument("--json", type=Path, help="also write the raw numbers as JSON here")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="after the runs, profile the server (1 process) with py-spy under full load; "
        "collapsed stacks go to DIR",
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0,
        metavar="MINUTES",
        help="first wait (up to MINUTES) until no other bench./pytest process has run for "
        "60 s and the load average is below 0.7",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the SQLite files go (default: temp dir)"
    )
    return parser.parse_args(argv)


def build_lab(args: argparse.Namespace, scenarios: Sequence[Scenario], workdir: Path) -> Lab:
    templates: dict[str, Path] = {}
    sizes: dict[str, float] = {}
    for scenario in scenarios:
        made = make_templates(scenario.kind, scenario.templates, scenario.size, seed=7)
        path = workdir / f"ingest-{scenario.kind}-templates.lua"
        write_lua_templates(path, made, scenario.size)
        templates[scenario.kind] = path
        sizes[scenario.kind] = round(mean_body_bytes(made))
    return Lab(
        wrk=ensure_wrk(),
        workdir=workdir,
        templates=templates,
        body_bytes=sizes,
        connections=args.connections,
        duration=args.duration or (QUICK_DURATION if args.quick else DURATION),
        warmup=args.warmup if args.warmup is not None else (QUICK_WARMUP if args.quick else WARMUP),
        profile_dir=args.profile,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    require_taskset()
    wrk = ensure_wrk()
    runs = args.runs or (1 if args.quick else 3)
    scenarios = [s for s in SCENARIOS if args.scenario in ("all", s.kind)]
    workers = tuple(int(w) for w in args.workers.split(","))
    report = Report({})
    if args.wait_idle > 0:
        waited = time.perf_counter()
        wait_for_quiet(args.wait_idle, report)
        report.notes.append(
            f"waited {(time.perf_counter() - waited) / 60:.1f} min for a quiet machine "
            "(not counted in 'took')"
        )
    began = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="playerlog-bench-ingest-", dir=args.workdir))
    try:
        lab = build_lab(args, scenarios, workdir)
        report.settings.update(
            machine=machine_lines(wrk), wrk=wrk_version(wrk), runs=runs, workers=list(workers),
            connections=lab.connections, duration=lab.duration, warmup=lab.warmup,
            wrk_timeout="10 s", quick=args.quick, body_bytes=lab.body_bytes,
            load_average={"start": round(os.getloadavg()[0], 2)},
        )  # fmt: skip
        for run in range(1, runs + 1):
            progress(f"run {run} of {runs}")
            run_once(lab, report, scenarios, workers, run)
        if args.profile:
            profile(lab, report, scenarios)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.settings.setdefault("load_average", {})["end"] = round(os.getloadavg()[0], 2)
    elapsed = time.perf_counter() - began
    print(render_text(report, scenarios, elapsed))
    command = "python -m bench.ingest " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.markdown:
        args.markdown.write_text(render_markdown(report, scenarios, command.strip()))
    if args.json:
        args.json.write_text(json.dumps(to_json(report, elapsed), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
