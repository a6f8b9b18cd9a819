"""A projection worker run as a child process, for the SIGKILL test (killed at random):
it drives every standard projection, as `playerlog worker` does, flushing its
write-behind buffers every `flush_events` events (small, so that kills land
between flushes, with events folded and not yet written)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from eventstore import open_log
from projections import ProjectionRunner
from projections.standard import standard_projections


def work(url: str, views: str, page_size: int, ready: str, flush_events: int) -> None:
    log = open_log(url)
    runner = ProjectionRunner(
        log,
        standard_projections(),
        views=views,
        page_size=page_size,
        flush_events=flush_events,
    )
    Path(ready).write_text("ready", encoding="utf-8")
    while True:
        if not runner.step():
            time.sleep(0.005)


if __name__ == "__main__":
    work(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
