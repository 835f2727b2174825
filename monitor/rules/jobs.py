"""When a scheduled job that keeps failing makes the worker not ready, as data."""

from __future__ import annotations

from monitor.constants import AlertKind

# This many failed runs in a row: /readyz says not ready (naming the job), `monitor status`
# lists it, and IT is told once. The next successful run clears it.
JOB_FAILURES_NOT_READY = 3
# The kinds of the notices to IT (outbox alerts without a case).
JOB_FAILING = AlertKind.JOB_FAILING
JOB_RECOVERED = AlertKind.JOB_RECOVERED


def job_failing(consecutive_failures: int) -> bool:
    """Whether a job with this many failed runs in a row counts as failing."""
    return consecutive_failures >= JOB_FAILURES_NOT_READY


def tell_it_now(consecutive_failures: int, already_told: bool) -> bool:
    """IT hears once per run of failures: when it first counts as failing."""
    return job_failing(consecutive_failures) and not already_told
