"""Reading one player with many players in the read model: bench/projections' latency rows.

* `function_latency`: `projections.get_player(conn, ...)` called directly on the view
  file, for random known players: what the query costs without HTTP.
* `http_latency`: `GET /v1/players/{user_id}` through `playerlog serve` (pinned to CPU
  1, its access log on, as operators run it) driven by wrk on CPU 0 at a fixed,
  moderate rate, for random known players.

The route is being written while this benchmark is; until `GET /v1/players/<a known
id>` answers 200, the HTTP row says why it is not available instead of a figure.
"""

from __future__ import annotations

import json
import math
import os
import random
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from bench.ingest_servers import (
    CLIENT_CPU,
    REPO,
    TAIL_SECONDS,
    VENV_BIN,
    BenchError,
    running,
    start_playerlog,
)
from bench.projections_events import ENVIRONMENT, TENANT
from eventstore import open_log
from projections import Projection, ProjectionRunner, get_player, open_views, views_path_for

LUA_SCRIPT: Final = Path(__file__).resolve().parent / "projections_get.lua"
WRK_TIMEOUT: Final = "5s"


@dataclass(frozen=True)
class Latency:
    """Latency percentiles of one measurement, in milliseconds."""

    samples: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    rate: float | None = None
    """Answers per second in the window (HTTP only)."""
    errors: int = 0
    """Non-200 answers and socket errors (HTTP only)."""


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank percentile `q` (0-100) of ascending `ordered` values."""
    if not ordered:
        return float("nan")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_of(values_ms: Sequence[float]) -> Latency:
    ordered = sorted(values_ms)
    return Latency(
        samples=len(ordered),
        p50_ms=percentile(ordered, 50),
        p90_ms=percentile(ordered, 90),
        p99_ms=percentile(ordered, 99),
        max_ms=ordered[-1] if ordered else float("nan"),
    )


def median_latency(runs: Sequence[Latency]) -> Latency:
    """Each figure's median over the runs (samples and errors summed)."""
    rates = [r.rate for r in runs if r.rate is not None]
    return Latency(
        samples=sum(r.samples for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p90_ms=statistics.median(r.p90_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        max_ms=max(r.max_ms for r in runs),
        rate=statistics.median(rates) if rates else None,
        errors=sum(r.errors for r in runs),
    )


def build_views(
    log_path: Path, projections: Sequence[Projection], *, report: Callable[[str], None]
) -> Path:
    """The read models of the log at `log_path`, where `playerlog serve --db` finds them
    (`views_path_for`); built once (cached with a marker file)."""
    url = f"sqlite:///{log_path}"
    views = views_path_for(url)
    done = views.with_name(views.name + ".done")
    # Views built by another set of projections (or versions) would make the server
    # build the missing ones while it is being measured: they are built again.
    key = ",".join(sorted(f"{p.name}:{p.version}" for p in projections))
    if views.exists() and done.exists() and done.read_text() == key:
        return views
    for stale in (views, *(views.with_name(views.name + s) for s in ("-wal", "-shm"))):
        stale.unlink(missing_ok=True)
    began = time.perf_counter()
    log = open_log(url)
    try:
        with ProjectionRunner(log, projections, views=views) as runner:
            applied = runner.catch_up()
    finally:
        log.close()
    seconds = time.perf_counter() - began
    report(f"projected the log ({applied:,} events applied by {len(projections)} projections)"
           f" in {seconds:.0f} s: {views}")  # fmt: skip
    done.write_text(key)
    return views


def function_latency(views: Path, players: int, samples: int, seed: int) -> Latency:
    """`get_player` for `samples` random players of `ply_1 .. ply_<players>`; each call
    timed on its own. Every one must be found."""
    rng = random.Random(seed)
    ids = [f"ply_{rng.randint(1, players)}" for _ in range(samples)]
    conn = open_views(views)
    timings: list[float] = []
    try:
        for user_id in ids[: min(200, samples)]:  # warm the statement cache and pages
            get_player(conn, TENANT, ENVIRONMENT, user_id)
        clock = time.perf_counter_ns
        for user_id in ids:
            start = clock()
            found = get_player(conn, TENANT, ENVIRONMENT, user_id)
            timings.append((clock() - start) / 1e6)
            if found is None:
                raise BenchError(f"get_player found no {user_id}")
    finally:
        conn.close()
    return latency_of(timings)


# -- over HTTP -----------------------------------------------------------------------------------


def create_read_token(db_url: str) -> str:
    """A `projections:read` token, made with the command line as an operator does."""
    done = subprocess.run(
        [str(VENV_BIN / "playerlog"), "tokens", "create", "--db", db_url, "--tenant", TENANT,
         "--env", ENVIRONMENT, "--scope", "projections:read", "--name", "bench-projections",
         "--json"],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"playerlog tokens create failed: {last}")
    token: str = json.loads(done.stdout)["token"]
    return token


def probe(url: str, token: str) -> str | None:
    """None when `GET /v1/players/ply_1` answers 200 with the player; else why not."""
    request = urllib.request.Request(
        url + "/v1/players/ply_1", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # localhost only
            body: Any = json.loads(response.read())
    except urllib.error.HTTPError as error:
        text = error.read().decode(errors="replace")[:160]
        return f"GET /v1/players/ply_1 answered {error.code}: {text}"
    except (OSError, ValueError) as error:
        return f"GET /v1/players/ply_1 failed: {error}"
    if not isinstance(body, dict) or body.get("user_id") != "ply_1":
        return f"GET /v1/players/ply_1 answered 200 without the player: {str(body)[:160]}"
    return None


def wait_caught_up(url: str, token: str, limit: float = 900.0) -> str | None:
    """Wait until `GET /v1/projections` shows every projection live with no lag, so no
    catch-up in the server runs while it is measured. None when caught up (or when the
    server has no such route); else why not."""
    request = urllib.request.Request(
        url + "/v1/projections", headers={"Authorization": f"Bearer {token}"}
    )
    deadline = time.monotonic() + limit
    states: list[Any] = []
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # localhost only
                states = json.loads(response.read()).get("projections", [])
        except (OSError, ValueError):
            return None
        if all(s.get("lag_events") == 0 and s.get("state") == "live" for s in states):
            return None
        time.sleep(1)
    behind = [f"{s.get('name')} {s.get('state')} lag {s.get('lag_events')}" for s in states]
    return f"the server's projections did not catch up within {limit:.0f} s: {behind}"


@dataclass(frozen=True)
class HttpSettings:
    rate: float
    connections: int
    warmup: int
    seconds: int


def http_latency(
    wrk: str,
    log_path: Path,
    players: int,
    settings: HttpSettings,
    *,
    runs: int,
    workdir: Path,
    seed: int,
) -> list[Latency] | str:
    """`GET /v1/players/{id}` latency through `playerlog serve` on the log at `log_path`
    (its views already built beside it), `runs` wrk runs against one server; a text
    saying why when the route is not there."""
    db_url = f"sqlite:///{log_path}"
    token = create_read_token(db_url)
    server = start_playerlog(db_url, 1, access_log=True, workdir=workdir)
    with running(server):
        problem = probe(server.url, token)
        if problem is not None:
            return f"not available: {problem}"
        lagging = wait_caught_up(server.url, token)
        if lagging is not None:
            return f"not measured: {lagging}"
        return [
            _run_wrk(wrk, server.url, players, token, settings, seed + run) for run in range(runs)
        ]


def _run_wrk(
    wrk: str, url: str, players: int, token: str, settings: HttpSettings, seed: int
) -> Latency:
    total = settings.warmup + settings.seconds + TAIL_SECONDS
    env = {
        **os.environ,
        "BENCH_GET_WINDOW": f"{settings.warmup},{settings.seconds}",
        "BENCH_GET_RATE": f"{settings.rate:.3f}",
    }
    command = ["taskset", "-c", CLIENT_CPU, wrk, "-t1", f"-c{settings.connections}",
               f"-d{total}s", "--timeout", WRK_TIMEOUT, "-s", str(LUA_SCRIPT), url, "--",
               str(players), token, str(seed)]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=total + 120, check=False
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith('{"requests"')]
    if done.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
    data = json.loads(lines[-1])
    window = data["window"]
    latency = window["latency_ms"]
    errors = data["errors"]
    socket_errors = errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]
    return Latency(
        samples=window["timed"],
        p50_ms=latency["p50"],
        p90_ms=latency["p90"],
        p99_ms=latency["p99"],
        max_ms=latency["max"],
        rate=window["ok"] / settings.seconds,
        errors=window["missing"] + window["other"] + socket_errors,
    )
