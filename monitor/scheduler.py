"""APScheduler jobs of the worker: each one isolated, single-instance, coalesced and caught up."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from monitor.clock import utcnow
from monitor.jobhealth import JobHealth, short_error

log = logging.getLogger(__name__)

WEEKDAYS = {
    "monday": "mon",
    "tuesday": "tue",
    "wednesday": "wed",
    "thursday": "thu",
    "friday": "fri",
    "saturday": "sat",
    "sunday": "sun",
}


@dataclass(frozen=True)
class JobSpec:
    """One scheduled job: what runs and when."""

    id: str
    run: Callable[[datetime], Any]
    every: timedelta | None = None
    cron: dict[str, Any] | None = None
    jitter: float = 0.0
    run_at_start: bool = True  # catches up whatever was missed while the worker was down


def guarded(
    job_id: str,
    run: Callable[[datetime], Any],
    clock: Callable[[], datetime],
    health: JobHealth | None = None,
) -> Callable[[], None]:
    """Run a job with the clock read once; a failure is logged and never stops the scheduler.

    With ``health``, each run is recorded: a job failing again and again logs its traceback
    once, then one short line per run, and makes the worker not ready (``monitor.jobhealth``).
    """

    in_a_row = 0  # failed runs in a row, when no ``health`` keeps count

    def call() -> None:
        nonlocal in_a_row
        now = clock()
        try:
            run(now)
        except Exception as exc:
            in_a_row += 1
            failures = health.failed(job_id, now, exc) if health is not None else in_a_row
            if failures <= 1:
                log.exception("job %s failed; it runs again at its next time", job_id)
            else:
                log.error(
                    "job %s failed again (%d in a row): %s", job_id, failures, short_error(exc)
                )
        else:
            in_a_row = 0
            if health is not None:
                health.succeeded(job_id, now)

    return call


def build_scheduler(
    specs: list[JobSpec],
    *,
    timezone: str,
    clock: Callable[[], datetime] = utcnow,
    rng: random.Random | None = None,
    health: JobHealth | None = None,
) -> BackgroundScheduler:
    """A scheduler with ``specs``: max one instance each, coalescing, a misfire grace period."""
    chooser = rng or random.Random()
    scheduler = BackgroundScheduler(
        timezone=timezone,
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 300},
    )
    now = clock()
    for spec in specs:
        if spec.cron is not None:
            trigger: Any = CronTrigger(timezone=timezone, **spec.cron)
        else:
            assert spec.every is not None
            trigger = IntervalTrigger(
                seconds=spec.every.total_seconds(), jitter=spec.jitter or None, timezone=timezone
            )
        first = None
        if spec.run_at_start:
            # spread the first runs a little so fifty accounts do not all poll in the same second
            first = now + timedelta(seconds=chooser.uniform(0, min(5.0, spec.jitter or 0.0)))
        scheduler.add_job(
            guarded(spec.id, spec.run, clock, health),
            trigger,
            id=spec.id,
            name=spec.id,
            next_run_time=first,
            replace_existing=True,
        )
    return scheduler


def digest_cron(weekday: str, hour: int, minute: int) -> dict[str, Any]:
    """Cron fields for the weekly digest (in the scheduler's timezone, Europe/London)."""
    return {"day_of_week": WEEKDAYS[weekday], "hour": hour, "minute": minute}
