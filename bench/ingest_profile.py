"""Where `playerlog serve` spends its time under full load: py-spy plus per-thread CPU.

py-spy samples every thread's Python stack (non-blocking, so the server keeps its pace;
idle threads are left out); /proc gives each thread's CPU time over the same window. A
thread's share of samples is the share of wall time it was busy (on the CPU, or waiting
in a call such as fsync); its CPU share is what it took of the server's core.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import fmt_percent, fmt_rate

SAMPLE_RATE = 100
"""py-spy samples per second."""

_TICK = os.sysconf("SC_CLK_TCK")
_EVENT_LOOP = "(in the event loop's C code: uvloop, httptools, sockets)"
# Frames seen where a thread only waits (py-spy sometimes reports them as busy).
_IDLE_LEAVES = ("Condition.wait (threading.py)", "_worker (concurrent/futures/thread.py)")
# Frames worth naming in the inclusive list: our code below the request's trunk of ASGI
# wrappers, and logging.
_INTERESTING = (
    "api/access.py",
    "api/auth.py",
    "api/ingestion.py",
    "api/logs.py",
    "api/replay.py",
    "ingest/",
    "eventstore/",
    "logging/",
)


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds (user + system) of each thread of `pid`, by thread id."""
    found: dict[int, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        found[int(task.name)] = (int(fields[11]) + int(fields[12])) / _TICK
    return found


def start(tool: str, pid: int, seconds: int, output: Path, cpu: str) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` into collapsed stacks, pinned beside wrk."""
    command = ["taskset", "-c", cpu, tool, "record", "--pid", str(pid),
               "--duration", str(seconds), "--rate", str(SAMPLE_RATE), "--nonblocking",
               "--format", "raw", "--threads", "--output", str(output)]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes], output: Path) -> str | None:
    """None when the profile was written, else why not."""
    try:
        _, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return "py-spy did not finish"
    if process.returncode != 0 or not output.exists():
        return f"py-spy failed: {err.decode(errors='replace').strip()[-500:]}"
    return None


@dataclass
class ThreadProfile:
    name: str
    tid: int
    samples: int = 0
    cpu_seconds: float = 0.0
    own: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)


def _frame_name(frame: str) -> str:
    """`f (path/x.py:12)` -> `f (path/x.py)`: one entry per function."""
    if frame.endswith(")") and ":" in frame:
        return frame[: frame.rindex(":")] + ")"
    return frame


def _thread_of(head: str) -> tuple[int, str]:
    """`thread (2737): MainThread` -> (2737, "MainThread")."""
    label, _, name = head.partition(": ")
    digits = "".join(c for c in label if c.isdigit())
    return int(digits or 0), name.strip() or label


def parse(raw: str) -> dict[int, ThreadProfile]:
    threads: dict[int, ThreadProfile] = {}
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        tid, name = _thread_of(frames[0])
        names = [_frame_name(f) for f in frames[1:]]
        if names and names[-1] in _IDLE_LEAVES:
            continue
        thread = threads.setdefault(tid, ThreadProfile(name, tid))
        count = int(count_text)
        thread.samples += count
        leaf = names[-1] if names else "(no Python frame)"
        if leaf.startswith("Runner.run (asyncio/runners.py)"):
            leaf = _EVENT_LOOP
        thread.own[leaf] += count
        for frame in set(names):
            if frame[frame.rfind("(") + 1 :].startswith(_INTERESTING):
                thread.inclusive[frame] += count
    return threads


def summarize(
    raw: str, cpu_before: dict[int, float], cpu_after: dict[int, float], seconds: float
) -> dict[str, Any]:
    """Per thread: CPU share of the core, busy share of wall time, and the functions
    (self and inclusive) as shares of wall time."""
    threads = parse(raw)
    for tid, after in cpu_after.items():
        thread = threads.setdefault(tid, ThreadProfile(f"thread {tid}", tid))
        thread.cpu_seconds = after - cpu_before.get(tid, 0.0)
    wall = SAMPLE_RATE * seconds
    busy = [t for t in threads.values() if t.samples or t.cpu_seconds > 0.02 * seconds]
    busy.sort(key=lambda t: -t.cpu_seconds)
    return {
        "seconds": seconds,
        "threads": [
            {
                "name": t.name,
                "tid": t.tid,
                "cpu": t.cpu_seconds / seconds,
                "busy": t.samples / wall,
                "self": [(name, n / wall) for name, n in t.own.most_common(12)],
                "inclusive": [(name, n / wall) for name, n in t.inclusive.most_common(16)],
            }
            for t in busy
        ],
    }


def lines(kind: str, found: dict[str, Any]) -> list[str]:
    out = [
        "",
        f"Where the server's time goes: {kind}, 1 API process, full load "
        f"({fmt_rate(found['events_per_second'])} ev/s while sampled; py-spy "
        f"{SAMPLE_RATE}/s non-blocking for {found['seconds']:.0f} s; file {found['file']})",
        "",
        "  thread: CPU = share of the server's core it used; busy = share of wall time "
        "py-spy found it running Python or in a call (fsync included)",
    ]
    out.extend(
        f"  {t['name']}: CPU {fmt_percent(t['cpu'])}, busy {fmt_percent(t['busy'])}"
        for t in found["threads"]
    )
    for thread in found["threads"]:
        if not thread["self"]:
            continue
        out += ["", f"  {thread['name']}, self time (share of wall time):"]
        out += [f"    {fmt_percent(v):>4}  {name}" for name, v in thread["self"]]
        if thread["inclusive"]:
            out += [f"  {thread['name']}, inclusive (our code and logging):"]
            out += [f"    {fmt_percent(v):>4}  {name}" for name, v in thread["inclusive"]]
    return out
