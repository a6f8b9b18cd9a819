"""A wake-up for followers: the writer rings it after each commit."""

from __future__ import annotations

import asyncio
import contextlib
import threading

__all__ = ["ChangeSignal"]


class ChangeSignal:
    """Thread-safe, usable from any event loop.

    A follower takes `generation()` *before* it reads, and after an empty read
    calls `wait(since=that)`, which returns at once if anything changed in
    between: no wake-up is lost between the read and the wait.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def generation(self) -> int:
        return self._generation

    def notify(self) -> None:
        with self._lock:
            self._generation += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self, since: int, timeout: float) -> bool:
        """Wait until the generation moves past `since`, or `timeout` seconds.

        Returns whether a change was signalled (False: timed out, poll anyway).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._generation != since:
                return True
            self._waiters.append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            with self._lock, contextlib.suppress(ValueError):
                self._waiters.remove((loop, future))
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
