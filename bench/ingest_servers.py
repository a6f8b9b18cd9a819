"""Processes of bench/ingest: the servers under test, wrk, py-spy, and CPU accounting.

Servers run on CPU 1 (`taskset -c 1`), wrk on CPU 0 (`taskset -c 0`). Every process
started here is started in its own session and stopped through its own process group,
so nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
LUA_SCRIPT = Path(__file__).resolve().parent / "ingest_lua" / "post.lua"
CLIENT_CPU = "0"
SERVER_CPU = "1"
TENANT = "casino-a"
WRK_TIMEOUT = "10s"
"""Per request: long enough that a slow request is measured, not counted as an error."""
TAIL_SECONDS = 1
"""wrk goes on this long after the window, so the window ends in the steady state."""

WRK_INSTALL = "apt-get install -y wrk"


class BenchError(RuntimeError):
    """A measurement could not be made (a server did not start, wrk failed)."""


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- tools -------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    """wrk's path; installs the Debian package when missing and allowed to."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        progress(f"wrk is missing: running `{WRK_INSTALL}`")
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False, capture_output=True)
        found = shutil.which("wrk")
        if found:
            return found
    raise SystemExit(f"bench/ingest needs wrk; install it with: {WRK_INSTALL}")


def wrk_version(wrk: str) -> str:
    done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0] if first else "wrk (unknown version)"


def require_taskset() -> None:
    if shutil.which("taskset") is None:
        raise SystemExit("bench/ingest needs taskset (Debian package util-linux)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("bench/ingest needs 2 CPUs: wrk on CPU 0, the server on CPU 1")


def py_spy() -> str | None:
    found = VENV_BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- CPU accounting ------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name is in parentheses and may hold spaces
    return text[text.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """`root` and every process descended from it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(root: int) -> float:
    """User + system CPU of `root` and its live descendants."""
    total = 0
    for pid in process_tree(root):
        fields = _stat(pid)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / _TICK


def children_cpu_seconds() -> float:
    """CPU of every child this process has waited for (wrk's share, by difference)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# -- servers -------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


def create_token(db_url: str) -> str:
    """A write token made through the command line, as an operator makes one."""
    done = subprocess.run(
        [str(VENV_BIN / "playerlog"), "tokens", "create", "--db", db_url, "--tenant", TENANT,
         "--env", "live", "--scope", "events:write", "--name", "bench-ingest", "--json"],
        capture_output=True, text=True, check=False, cwd=REPO, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise BenchError(f"playerlog tokens create failed: {done.stderr.strip()}")
    token: str = json.loads(done.stdout)["token"]
    return token


def _start(
    name: str,
    command: list[str],
    env: Mapping[str, str],
    workdir: Path,
    port: int,
    cpus: str | None = SERVER_CPU,
) -> Server:
    """Start a server (pinned to `cpus` with taskset; None: not pinned) and wait
    until it answers GET /readyz."""
    log_path = workdir / f"{name}-{port}.log"
    pinned = ["taskset", "-c", cpus] if cpus is not None else []
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*pinned, *command],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=REPO,
            start_new_session=True,  # its own process group: stopped as one, by its id
        )
    server = Server(name, process, port, log_path)
    try:
        wait_ready(server)
    except BaseException:
        stop(server)
        raise
    return server


def start_playerlog(
    db_url: str,
    workers: int,
    *,
    access_log: bool,
    workdir: Path,
    cpus: str | None = SERVER_CPU,
    env: Mapping[str, str] | None = None,
) -> Server:
    port = free_port()
    # --no-projections: the figure is ingestion's; read models are measured by
    # bench/projections (run `playerlog worker` beside it to see them share the cores).
    command = [str(VENV_BIN / "playerlog"), "serve", "--db", db_url, "--port", str(port),
               "--workers", str(workers), "--no-projections"]  # fmt: skip
    settings = {**(env or {}), "PLAYERLOG_ACCESS_LOG": "1" if access_log else "0"}
    return _start("playerlog", command, settings, workdir, port, cpus)


def start_asgi(
    name: str,
    app: str,
    workdir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cpus: str | None = SERVER_CPU,
) -> Server:
    """A bare ASGI app (`module:attribute`) under uvicorn: uvloop, httptools, no access log."""
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port",
               str(port), "--loop", "uvloop", "--http", "httptools", "--no-access-log",
               "--log-level", "warning"]  # fmt: skip
    return _start(name, command, env or {}, workdir, port, cpus)


def start_ceiling(workdir: Path) -> Server:
    return start_asgi("ceiling", "bench.ingest_ceiling:app", workdir)


def get_json(url: str, timeout: float = 10.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # localhost only
        data: dict[str, Any] = json.loads(response.read())
        return data


def wait_ready(server: Server, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise BenchError(f"{server.name} exited with {server.process.returncode}: {tail}")
        with contextlib.suppress(OSError, ValueError):
            get_json(server.url + "/readyz", timeout=2)
            return
        time.sleep(0.2)
    raise BenchError(f"{server.name} did not answer /readyz within {limit:.0f} s")


def head(server: Server) -> int:
    value: int = get_json(server.url + "/readyz")["head"]
    return value


def settled_head(server: Server, limit: float = 60.0) -> int:
    """The log head once it stops moving (requests wrk abandoned at its end finish)."""
    deadline = time.monotonic() + limit
    last = head(server)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = head(server)
        if now == last:
            return now
        last = now
    return last


def stop(server: Server) -> None:
    """SIGTERM to the server's own process group, SIGKILL after 20 s."""
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait(timeout=10)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        stop(server)


# -- wrk -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: totals for the whole run (for the storage check) and the figures of
    the measurement window (answers arriving after the warm-up, before the tail)."""

    requests: int
    """Answers in the whole run, any status."""
    non_2xx: int
    socket_errors: int
    run_seconds: float
    window_ok: int
    """2xx answers in the window."""
    window_other: int
    window_seconds: float
    timed: int
    """Answers in the window whose latency was matched through X-Request-Id."""
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    cpu_seconds: float
    """wrk's own CPU time over the run: near `run_seconds` would mean the load generator
    is the limit."""

    @property
    def ok_requests(self) -> int:
        return self.requests - self.non_2xx


Hook = Callable[[], None]


def run_wrk(
    wrk: str,
    url: str,
    *,
    templates: Path,
    path: str,
    token: str,
    connections: int,
    warmup: int,
    seconds: int,
    rate: float | None = None,
    at_window: tuple[Hook, Hook] | None = None,
) -> WrkResult:
    """One wrk run on CPU 0: `warmup` seconds, the `seconds` measured, and a tail of
    TAIL_SECONDS so that the window ends in the steady state. `rate` (requests/s) paces
    it; `at_window` is called when the window starts and when it ends."""
    nonce = secrets.token_hex(4)
    env = {
        **os.environ,
        "BENCH_INGEST_THREADS": "1",
        "BENCH_INGEST_WINDOW": f"{warmup},{seconds}",
    }
    if rate:
        env["BENCH_INGEST_RATE"] = f"{rate:.3f}"
    total = warmup + seconds + TAIL_SECONDS
    command = ["taskset", "-c", CLIENT_CPU, wrk, "-t1", f"-c{connections}", f"-d{total}s",
               "--timeout", WRK_TIMEOUT, "-s", str(LUA_SCRIPT), url, "--",
               str(templates), path, token, nonce]  # fmt: skip
    before = children_cpu_seconds()
    began = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        if at_window:
            _sleep_until(began + warmup)
            at_window[0]()
            _sleep_until(began + warmup + seconds)
            at_window[1]()
        out, err = process.communicate(timeout=total + 120)
    except BaseException:
        process.kill()
        process.wait()
        raise
    cpu = children_cpu_seconds() - before
    lines = [line for line in out.splitlines() if line.startswith('{"requests"')]
    if process.returncode != 0 or not lines:
        raise BenchError(f"wrk failed ({process.returncode}): {err.strip()[-1000:]}")
    return _wrk_result(json.loads(lines[-1]), seconds, cpu)


def _sleep_until(moment: float) -> None:
    time.sleep(max(0.0, moment - time.monotonic()))


def _wrk_result(data: dict[str, Any], seconds: int, cpu: float) -> WrkResult:
    errors = data["errors"]
    window = data["window"]
    latency = window["latency_ms"]
    return WrkResult(
        requests=data["requests"],
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        run_seconds=data["duration_us"] / 1e6,
        window_ok=window["ok"],
        window_other=window["other"],
        window_seconds=float(seconds),
        timed=window["timed"],
        mean_ms=latency["mean"],
        p50_ms=latency["p50"],
        p90_ms=latency["p90"],
        p99_ms=latency["p99"],
        p999_ms=latency["p999"],
        max_ms=latency["max"],
        cpu_seconds=cpu,
    )


def tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as handle:
            return _last_lines(handle, lines)
    except OSError:
        return ""


def _last_lines(handle: IO[bytes], lines: int) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - 8192))
    return "\n".join(handle.read().decode(errors="replace").splitlines()[-lines:])
