"""Jittered exponential backoff for transient failures (no real sleeps: the sleep is injected)."""

from __future__ import annotations

import random

import pytest

from connectors.base import AuthError, ConnectorError, RateLimited, TransientError
from connectors.retry import backoff_delays, with_retries


class Flaky:
    """Fails with ``errors`` in turn, then returns "ok"; counts the calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_delays_are_full_jitter_under_a_doubling_cap() -> None:
    delays = backoff_delays(6, base=0.5, cap=4.0, rng=random.Random(1))
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert len(delays) == 6
    assert all(0 <= d <= c for d, c in zip(delays, caps, strict=True))
    runs = {tuple(backoff_delays(3, rng=random.Random(seed))) for seed in range(5)}
    assert len(runs) == 5  # jittered: no two runs wait the same


def test_transient_failures_are_retried_then_succeed() -> None:
    slept: list[float] = []
    call = Flaky(TransientError("503"), TransientError("timeout"))
    assert with_retries(call, attempts=3, sleep=slept.append, rng=random.Random(2)) == "ok"
    assert call.calls == 3 and len(slept) == 2
    assert 0 <= slept[0] <= 0.5 and 0 <= slept[1] <= 1.0


def test_the_last_transient_failure_is_raised_after_the_budget() -> None:
    slept: list[float] = []
    call = Flaky(*(TransientError(f"503 #{n}") for n in range(5)))
    with pytest.raises(TransientError, match="#3"):
        with_retries(call, attempts=3, sleep=slept.append)
    assert call.calls == 4 and len(slept) == 3  # the first try and three retries


@pytest.mark.parametrize(
    "error", [RateLimited(30), AuthError("revoked"), ConnectorError("422"), ValueError("bug")]
)
def test_other_errors_are_never_retried(error: Exception) -> None:
    slept: list[float] = []
    call = Flaky(error)
    with pytest.raises(type(error)):
        with_retries(call, attempts=3, sleep=slept.append)
    assert call.calls == 1 and slept == []  # a rate limit is the scheduler's to wait out


def test_no_attempts_means_one_try() -> None:
    call = Flaky(TransientError("503"))
    with pytest.raises(TransientError):
        with_retries(call, attempts=0, sleep=lambda _s: None)
    assert call.calls == 1
