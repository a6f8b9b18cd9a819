"""Exponential backoff with full jitter."""

from __future__ import annotations

import random

import pytest

from delivery.backoff import backoff_delay


def test_delays_stay_under_the_doubling_ceiling_and_the_cap() -> None:
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 10.0), (200, 10.0)]:
        delays = [backoff_delay(attempt, 1.0, 10.0, rng) for _ in range(300)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8, "full jitter spreads over the whole interval"
        assert min(delays) < ceiling * 0.2


def test_a_destination_s_retry_after_is_honoured_up_to_the_cap() -> None:
    rng = random.Random(1)

    assert backoff_delay(1, 0.01, 10.0, rng, retry_after=3) >= 3
    assert backoff_delay(1, 0.01, 10.0, rng, retry_after=3600) == 10.0


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="attempt: must be 1 or more"):
        backoff_delay(0, 1.0, 10.0, random.Random())
