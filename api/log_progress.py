"""A one-line progress report on stderr for long command-line jobs (`log import`).

On a terminal the line is redrawn in place a few times a second; otherwise (a log
file, CI) a full line is written every `interval` seconds, so the output stays
readable there. Hand-written so the command line needs no progress-bar package.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final, TextIO

__all__ = ["Progress", "format_duration"]

_TTY_INTERVAL: Final = 0.2
_LOG_INTERVAL: Final = 5.0


def format_duration(seconds: float) -> str:
    """`0:07`, `3:05`, `1:02:03`."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{secs:02}" if hours else f"{minutes}:{secs:02}"


class Progress:
    """`label done/total unit (pct), rate unit/s, time left`; `total` may be unknown."""

    def __init__(
        self,
        stream: TextIO,
        *,
        label: str,
        total: int | None,
        unit: str = "lines",
        interactive: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._label = label
        self._total = total
        self._unit = unit
        self._interactive = stream.isatty() if interactive is None else interactive
        self._interval = (
            interval
            if interval is not None
            else _TTY_INTERVAL
            if self._interactive
            else _LOG_INTERVAL
        )
        self._clock = clock
        self._started = clock()
        self._next = self._started + self._interval
        self._width = 0

    def update(self, done: int) -> None:
        """Report `done` if the interval has passed; cheap enough to call per batch."""
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        self._show(self.render(done, now))

    def finish(self, done: int) -> None:
        """Leave the final figures on screen (a terminal only; logs had their lines)."""
        if self._interactive:
            self._show(self.render(done, self._clock()))
            self._stream.write("\n")
            self._stream.flush()

    def render(self, done: int, now: float) -> str:
        elapsed = max(now - self._started, 1e-9)
        rate = done / elapsed
        parts = [f"{self._label} {done:,}"]
        if self._total is not None:
            percent = 100 * done / self._total if self._total else 100.0
            parts[0] += f"/{self._total:,} {self._unit} ({percent:.0f}%)"
        else:
            parts[0] += f" {self._unit}"
        parts.append(f"{rate:,.0f} {self._unit}/s")
        if self._total is not None and rate > 0:
            parts.append(f"{format_duration(max(self._total - done, 0) / rate)} left")
        else:
            parts.append(f"{format_duration(elapsed)} elapsed")
        return ", ".join(parts)

    def _show(self, text: str) -> None:
        if self._interactive:
            # Pad over the previous, possibly longer, text instead of clearing the line.
            self._stream.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            self._stream.write(text + "\n")
        self._stream.flush()
