"""Retrying transient failures with jittered exponential backoff."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from connectors.base import TransientError

T = TypeVar("T")


def backoff_delays(
    attempts: int, *, base: float = 0.5, cap: float = 30.0, rng: random.Random | None = None
) -> list[float]:
    """Full-jitter delays (AWS style) for ``attempts`` retries."""
    chooser = rng or random.Random()
    return [chooser.uniform(0, min(cap, base * 2**n)) for n in range(attempts)]


def with_retries(
    call: Callable[[], T],
    *,
    attempts: int = 3,
    base: float = 0.5,
    cap: float = 30.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run ``call``; on TransientError retry up to ``attempts`` times, then re-raise."""
    delays = backoff_delays(attempts, base=base, cap=cap, rng=rng)
    for delay in delays:
        try:
            return call()
        except TransientError:
            sleep(delay)
    return call()
