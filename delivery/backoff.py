"""Exponential backoff with full jitter (AWS Architecture Blog, "Exponential
Backoff and Jitter"): spreading the retries of many deliverers over the whole
interval keeps them from hammering a recovering receiver in step."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int,
    initial: float,
    cap: float,
    rng: random.Random,
    retry_after: float | None = None,
) -> float:
    """Seconds to wait before retry number `attempt` (1 = the first retry): uniform in
    [0, min(cap, initial * 2**(attempt-1))], but at least what the destination asked
    for (`retry_after`), itself capped at `cap`."""
    if attempt < 1:
        raise ValueError(f"attempt: must be 1 or more, got {attempt}")
    ceiling = min(cap, initial * 2 ** min(attempt - 1, 62))
    delay = rng.uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
