"""Kill a writer with SIGKILL at random moments, again and again.

After each kill: every event whose append had returned is in the log, none is
there twice, positions are 1..head without a gap, and a follower started
afterwards reads everything without stalling. The short version runs in CI;
`make crash-long` runs 200 rounds.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from eventstore import EventLog, open_log
from tests.eventstore.helpers import batch

ROUNDS = int(os.environ.get("PLAYERLOG_CRASH_ROUNDS", "4"))
ROOT = Path(__file__).resolve().parents[2]


def _start_writer(url: str, prefix: str, acked: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.eventstore.writers", url, prefix, "200", str(acked)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for_acks(acked: Path, child: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if acked.exists() and acked.stat().st_size > 0:
            return
        if child.poll() is not None:
            _, err = child.communicate()
            pytest.fail(f"writer exited early: {err.decode()}")
        time.sleep(0.02)
    pytest.fail("writer acknowledged nothing in time")


def _check(log: EventLog, acked_ids: set[str]) -> int:
    head = log.head()
    events = log.read(limit=head + 1)
    positions = [e.position for e in events]
    assert positions == list(range(1, head + 1)), "positions must be gap-free"
    ids = [e.event_id for e in events]
    assert len(ids) == len(set(ids)), "an event was stored twice"
    missing = acked_ids - set(ids)
    assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:3]}"

    async def follow_all() -> int:
        count = 0
        async for _ in log.follow(poll_interval=0.05):
            count += 1
            if count == head:
                return count
        return count

    if head:
        assert asyncio.run(asyncio.wait_for(follow_all(), 30)) == head
    return head


def crash_rounds(url: str, tmp_path: Path, rounds: int, reopen: Callable[[], EventLog]) -> None:
    rng = random.Random(os.environ.get("PLAYERLOG_CRASH_SEED", "7"))
    acked_ids: set[str] = set()
    for round_ in range(rounds):
        acked = tmp_path / f"acked-{round_}.txt"
        child = _start_writer(url, f"r{round_}", acked)
        _wait_for_acks(acked, child, timeout=30)
        time.sleep(rng.uniform(0.0, 0.4))
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stderr is not None:
            child.stderr.close()
        acked_ids.update(acked.read_text(encoding="utf-8").split())
        log = reopen()
        try:
            head = _check(log, acked_ids)
            # Resending what was acknowledged stores nothing new.
            first = batch(f"r{round_}-0", 200)
            assert {r.status for r in log.append_sync(first)} == {"duplicate"}
            assert log.head() == head
        finally:
            log.close()


def test_sqlite_log_survives_sigkill_under_load(tmp_path: Path) -> None:
    # A small dedup tail and short slices, so kills also land in flushes and merges.
    knobs = "tail_limit=700&merge_fan_in=3&merge_slice=400"
    url = f"sqlite:///{tmp_path / 'crash.db'}?{knobs}"
    crash_rounds(url, tmp_path, ROUNDS, lambda: open_log(url))
