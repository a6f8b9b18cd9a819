"""A `playerlog worker` stand-in run as a child process, for the runner-lock takeover
test: a ProjectionWorker over every standard projection, with the runner lock the
composition root picks for `views`, logging to stderr whether it drives or stands by."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from eventstore import open_log
from projections.standard import standard_projections
from projections.worker import ProjectionWorker, runner_lock_for


async def _work(url: str, views: str, lock_poll: float) -> None:
    log = open_log(url)
    worker = ProjectionWorker(
        log,
        standard_projections(),
        views=views,
        lock=runner_lock_for(views),
        lock_poll=lock_poll,
        poll_interval=0.05,
        page_size=50,
    )
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await worker.run(stop)
    finally:
        log.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    asyncio.run(_work(sys.argv[1], sys.argv[2], float(sys.argv[3])))
