"""The progress line of long command-line jobs: redrawn in place on a terminal, a line
every few seconds elsewhere, with done/total, rate and time left."""

from __future__ import annotations

import io

import pytest

from api.log_progress import Progress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_on_a_terminal_one_line_is_redrawn_with_rate_and_time_left() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, label="importing x", total=1_000, interactive=True,
                        interval=0.2, clock=clock)

    clock.now += 1
    progress.update(250)
    clock.now += 1
    progress.update(500)
    progress.finish(500)

    assert stream.getvalue() == (
        "\rimporting x 250/1,000 lines (25%), 250 lines/s, 0:03 left"
        "\rimporting x 500/1,000 lines (50%), 250 lines/s, 0:02 left"
        "\rimporting x 500/1,000 lines (50%), 250 lines/s, 0:02 left\n"
    )


def test_elsewhere_a_full_line_is_written_only_every_interval() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, label="importing x", total=None, interactive=False,
                        interval=5.0, clock=clock)

    clock.now += 1
    progress.update(100)
    clock.now += 5
    progress.update(600)
    clock.now += 1
    progress.update(700)
    progress.finish(700)

    assert stream.getvalue() == "importing x 600 lines, 100 lines/s, 0:06 elapsed\n"


def test_a_shorter_redraw_pads_over_the_longer_one() -> None:
    stream, clock = io.StringIO(), Clock()
    progress = Progress(stream, label="x", total=None, unit="events", interactive=True,
                        interval=0.0, clock=clock)

    clock.now += 1
    progress.update(1_000_000)
    clock.now += 1_000_000
    progress.update(1)

    first, second = stream.getvalue().split("\r")[1:]
    assert len(second) == len(first)
    assert second.rstrip() == "x 1 events, 0 events/s, 277:46:41 elapsed"


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0:00"), (7.4, "0:07"), (185, "3:05"), (3723, "1:02:03")]
)
def test_durations_read_as_clock_times(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
