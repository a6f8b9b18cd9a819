"""A worker killed with SIGKILL mid-page (or mid-buffer: events folded in memory,
not yet flushed) and restarted gives the same read models (every standard
projection, every table)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventstore import EventLog
from projections import ProjectionRunner, load_builds, open_views
from projections.standard import standard_projections
from tests.projections.helpers import dump_all, fresh_standard_build, money_mix_events

ROOT = Path(__file__).resolve().parents[2]
NAMES = [p.name for p in standard_projections()]
ROUNDS = int(os.environ.get("PLAYERLOG_PROJECTION_CRASH_ROUNDS", "5"))


def _start(url: str, views: Path, ready: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.projections.worker_child",
            url,
            str(views),
            "20",  # events a page
            str(ready),
            "70",  # events between flushes: a flush every fourth page while behind
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_ready(ready: Path, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not ready.exists():
        if child.poll() is not None:
            _, err = child.communicate()
            pytest.fail(f"worker exited early: {err.decode()}")
        if time.monotonic() > deadline:
            pytest.fail("worker did not start")
        time.sleep(0.01)


def _checkpoint(views: Path) -> int:
    """The lowest checkpoint of the projections' builds (0 before all have one)."""
    conn = open_views(views)
    try:
        builds = load_builds(conn, NAMES)
        if {b.name for b in builds} != set(NAMES):
            return 0
        return min(b.position for b in builds)
    finally:
        conn.close()


def _wait_for_progress(views: Path, beyond: int) -> None:
    deadline = time.monotonic() + 30
    while _checkpoint(views) <= beyond and time.monotonic() < deadline:
        time.sleep(0.005)


def test_a_worker_killed_mid_page_and_restarted_gives_the_same_read_model(
    log: EventLog, log_url: str, views: Path, tmp_path: Path
) -> None:
    rng = random.Random(os.environ.get("PLAYERLOG_CRASH_SEED", "7"))
    events = money_mix_events(16_000, seed=21)
    per_round = len(events) // (ROUNDS + 1)
    log.append_sync(events[:per_round])
    checkpoints: list[int] = []
    killed_mid_work = 0
    for round_ in range(ROUNDS):
        ready = tmp_path / f"ready-{round_}"
        child = _start(log_url, views, ready)
        _wait_ready(ready, child)
        _wait_for_progress(views, beyond=checkpoints[-1] if checkpoints else 0)
        time.sleep(rng.uniform(0.0, 0.1))  # then kill at a random moment of the work
        child.send_signal(signal.SIGKILL)
        child.communicate()
        assert child.returncode == -signal.SIGKILL
        checkpoints.append(_checkpoint(views))
        killed_mid_work += checkpoints[-1] < log.head()
        start = per_round * (round_ + 1)
        log.append_sync(events[start : start + per_round])
    log.append_sync(events[per_round * (ROUNDS + 1) :])
    assert checkpoints == sorted(checkpoints)
    assert killed_mid_work, f"no kill landed while the worker had work: {checkpoints}"
    with ProjectionRunner(log, standard_projections(), views=views, page_size=20) as runner:
        runner.catch_up()
        after_kills = dump_all(runner.conn)
        assert [(s.name, s.position) for s in runner.status()] == [
            (name, len(events)) for name in sorted(NAMES)
        ]
    fresh = fresh_standard_build(log, tmp_path / "fresh.views.db")
    assert all(fresh.values())  # every table of every model has rows to compare
    assert after_kills == fresh
