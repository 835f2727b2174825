"""The worker's schedule and its leadership loop, without a real clock or real waiting."""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.orm import Session, sessionmaker

from monitor import service
from monitor.config import load_config
from monitor.config_models import Config
from monitor.jobs.assess import BATCH, AssessReport
from monitor.scheduler import JobSpec, build_scheduler, digest_cron, guarded
from monitor.service import WorkerProcess, _optional_jobs, job_specs
from monitor.worker import Worker
from tests.conftest import EXAMPLE_CONFIG, FIXED_NOW

LONDON = ZoneInfo("Europe/London")


@pytest.fixture
def config() -> Config:
    return load_config(EXAMPLE_CONFIG, environ={}).config


class NoAssessor:
    """An assessor that is never asked (the schedule is inspected, not run)."""

    def assess(self, texts: Any, *, school_key: str | None = None) -> list[Any]:
        raise AssertionError("not expected to assess")


@pytest.fixture
def worker(sessions: sessionmaker[Session], config: Config) -> Worker:
    return Worker(sessions, config, NoAssessor())


@pytest.fixture
def started() -> Iterator[list[BackgroundScheduler]]:
    """Schedulers started paused (jobs get their final settings; nothing runs), then shut down."""
    schedulers: list[BackgroundScheduler] = []
    yield schedulers
    for scheduler in schedulers:
        scheduler.shutdown(wait=False)


def start_paused(
    specs: list[JobSpec], started: list[BackgroundScheduler], seed: int = 1
) -> dict[str, Any]:
    scheduler = build_scheduler(
        specs, timezone="Europe/London", clock=lambda: FIXED_NOW, rng=random.Random(seed)
    )
    scheduler.start(paused=True)
    started.append(scheduler)
    return {job.id: job for job in scheduler.get_jobs()}


def test_every_job_is_single_instance_coalesced_and_forgives_a_late_start(
    worker: Worker, started: list[BackgroundScheduler]
) -> None:
    specs = job_specs(worker, slack=None, email=None) + _optional_jobs(worker, email=object())
    jobs = start_paused(specs, started)
    assert set(jobs) == {
        "poll:oakfield-bluesky",  # the example's only enabled account
        "assess",
        "rescore",
        "actions",
        "deliver",
        "verify",
        "compliance",
        "publish",  # scheduled posts that are due (R16)
        "watch-replies",  # a new post's replies, polled faster for an hour
        "retention",
        "digest",
        "digest-catch-up",
    }
    for job in jobs.values():
        # never two runs of one job at once; a backlog of missed runs becomes one run;
        # a run up to five minutes late still happens
        assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 300), job.id


def test_jobs_run_at_once_on_start_so_downtime_is_caught_up(
    worker: Worker, started: list[BackgroundScheduler]
) -> None:
    specs = job_specs(worker, slack=None, email=None)
    assert all(spec.run_at_start for spec in specs)
    jobs = start_paused(specs, started)
    for job in jobs.values():
        # first runs are spread over a few seconds, never pushed to the end of an interval
        assert FIXED_NOW <= job.next_run_time <= FIXED_NOW + timedelta(seconds=5), job.id


def test_polls_follow_each_accounts_interval_with_jitter(
    worker: Worker, started: list[BackgroundScheduler]
) -> None:
    jobs = start_paused(job_specs(worker, slack=None, email=None), started)
    trigger = jobs["poll:oakfield-bluesky"].trigger
    assert isinstance(trigger, IntervalTrigger)
    assert trigger.interval == timedelta(minutes=5) and trigger.jitter == 5.0
    timing = worker.config.worker
    assert jobs["deliver"].trigger.interval == timedelta(seconds=timing.deliver_every)
    assert jobs["compliance"].trigger.interval == timedelta(seconds=timing.compliance_every)


def test_only_enabled_accounts_are_polled(
    sessions: sessionmaker[Session], config: Config, started: list[BackgroundScheduler]
) -> None:
    accounts = [a.model_copy(update={"enabled": True}) for a in config.accounts]
    every = Worker(sessions, config.model_copy(update={"accounts": accounts}), NoAssessor())
    polls = {s.id for s in job_specs(every, slack=None, email=None) if s.id.startswith("poll:")}
    assert polls == {f"poll:{a.key}" for a in accounts}


@pytest.mark.parametrize(
    ("after", "expected_local"),
    [
        # GMT: Monday 23 November 2026 07:30 has passed, so the next Monday
        (datetime(2026, 11, 23, 7, 31, tzinfo=LONDON), datetime(2026, 11, 30, 7, 30)),
        # BST: 07:30 in London is 06:30 UTC
        (datetime(2026, 7, 1, 12, 0, tzinfo=LONDON), datetime(2026, 7, 6, 7, 30)),
        # the week the clocks go back (25 October 2026): still 07:30 local on the Monday
        (datetime(2026, 10, 24, 12, 0, tzinfo=LONDON), datetime(2026, 10, 26, 7, 30)),
    ],
)
def test_the_weekly_digest_is_a_cron_in_london_time(
    worker: Worker,
    started: list[BackgroundScheduler],
    after: datetime,
    expected_local: datetime,
) -> None:
    jobs = start_paused(_optional_jobs(worker, email=object()), started)
    trigger = jobs["digest"].trigger
    assert isinstance(trigger, CronTrigger)
    fire = trigger.get_next_fire_time(None, after)
    assert fire.astimezone(LONDON).replace(tzinfo=None) == expected_local
    retention = jobs["retention"].trigger.get_next_fire_time(None, after)
    assert (retention.astimezone(LONDON).hour, retention.minute) == (2, 30)


def test_without_email_there_is_no_digest_job(worker: Worker) -> None:
    assert [s.id for s in _optional_jobs(worker, email=None)] == ["retention"]


def test_digest_cron_fields() -> None:
    assert digest_cron("friday", 16, 5) == {"day_of_week": "fri", "hour": 16, "minute": 5}


def test_a_failing_job_is_logged_and_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[datetime] = []

    def boom(now: datetime) -> None:
        seen.append(now)
        raise RuntimeError("platform exploded")

    call = guarded("poll:x", boom, lambda: FIXED_NOW)
    with caplog.at_level(logging.ERROR, logger="monitor.scheduler"):
        call()  # would kill the job's thread (and its future runs) if it raised
        call()
    assert seen == [FIXED_NOW, FIXED_NOW]
    messages = [r.getMessage() for r in caplog.records]
    # the traceback once, then a short line per run (not a traceback every run)
    assert messages == [
        "job poll:x failed; it runs again at its next time",
        "job poll:x failed again (2 in a row): RuntimeError: platform exploded",
    ]
    assert caplog.records[0].exc_info and not caplog.records[1].exc_info


def test_a_long_assessment_stops_at_a_batch_boundary_when_the_service_stops(
    worker: Worker,
) -> None:
    calls: list[int] = []

    def full_batch(
        now: datetime, *, rescore: bool, only: Sequence[int] | None = None
    ) -> AssessReport:
        calls.append(1)
        if len(calls) == 2:
            worker.stopping.set()  # SIGTERM arrives during the second batch
        return AssessReport(assessed=BATCH, more=True)

    worker._assess = full_batch  # type: ignore[method-assign]
    worker._classifier_health = lambda now: None  # type: ignore[method-assign]
    report = worker.assess(FIXED_NOW)
    assert len(calls) == 2 and report.assessed == 2 * BATCH


# ------------------------------------------------------------- leadership


@dataclass
class FakeLock:
    """A leader lock whose answers the test scripts."""

    acquire: list[Any] = field(default_factory=list)  # True, False or an exception, in turn
    held: list[bool] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    def try_acquire(self) -> bool:
        answer = self.acquire.pop(0) if self.acquire else True
        self.events.append(f"acquire:{answer!r}")
        if isinstance(answer, BaseException):
            raise answer
        return bool(answer)

    def still_held(self) -> bool:
        return self.held.pop(0) if self.held else True

    def release(self) -> None:
        self.events.append("release")


class FakeWorker:
    """Stands in for Worker: records what the leadership loop asks of it."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.syncs = 0
        self.closed = 0
        self.stopping = threading.Event()
        self.leading = threading.Event()
        self.nudge: Any = None

    def sync(self, now: datetime) -> list[Any]:
        self.syncs += 1
        if self.syncs <= self.failures:
            raise RuntimeError("database is starting up")
        self.leading.set()
        return []

    def close(self) -> None:
        self.closed += 1


def process(worker: FakeWorker, lock: FakeLock, **kwargs: Any) -> WorkerProcess:
    return WorkerProcess(
        worker,  # type: ignore[arg-type]
        lock,
        [],
        "Europe/London",
        standby_check=0.01,
        leader_check=0.01,
        retry_after=0.01,
        **kwargs,
    )


def run_until(proc: WorkerProcess, condition: threading.Event) -> None:
    thread = threading.Thread(target=proc.run)
    thread.start()
    try:
        assert condition.wait(20), proc.state
    finally:
        proc.stop.set()
        thread.join(20)
    assert not thread.is_alive()


def test_an_error_while_leading_releases_the_lock_and_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker, lock = FakeWorker(failures=2), FakeLock()
    proc = process(worker, lock)
    with caplog.at_level(logging.INFO, logger="monitor.service"):
        run_until(proc, worker.leading)
    assert worker.syncs == 3
    # each failed term gives the lock up (a standby may take over) before trying again
    assert lock.events[:4] == ["acquire:True", "release", "acquire:True", "release"]
    assert proc.state["role"] == "stopped" and worker.stopping.is_set() and worker.closed == 1
    # the same error twice is one traceback, not one per attempt
    assert caplog.text.count("the worker stopped leading after an error; retrying") == 1


def test_an_unreachable_database_keeps_the_worker_waiting_not_dead() -> None:
    worker = FakeWorker()
    lock = FakeLock(acquire=[OSError("connection refused"), False, False, True])
    run_until(process(worker, lock), worker.leading)
    assert lock.events[:4] == [
        "acquire:OSError('connection refused')",
        "acquire:False",
        "acquire:False",
        "acquire:True",
    ]


def test_losing_the_lock_stops_the_scheduler_and_waits_as_a_standby() -> None:
    worker = FakeWorker()
    lock = FakeLock(acquire=[True, False], held=[True, False])
    proc = process(worker, lock)
    stood_by = threading.Event()
    original = lock.try_acquire

    def watch() -> bool:
        got = original()
        if len(lock.events) >= 2 and not got:
            stood_by.set()
        return got

    lock.try_acquire = watch  # type: ignore[method-assign]
    run_until(proc, stood_by)
    assert worker.closed == 1 and worker.stopping.is_set()


class FlakyListener:
    """A Slack button listener that cannot connect at first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.starts = 0
        self.stops = 0
        self.connected = threading.Event()

    def start(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise ConnectionError("Slack Socket Mode unreachable")
        self.connected.set()

    def stop(self) -> None:
        self.stops += 1


def test_slack_being_down_at_start_does_not_stop_the_worker(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(service, "LISTEN_RETRY", 0.0)
    worker, listener = FakeWorker(), FlakyListener(failures=3)
    proc = process(worker, FakeLock(), listener=listener)
    with caplog.at_level(logging.INFO, logger="monitor.service"):
        run_until(proc, listener.connected)
    assert listener.starts == 4 and listener.stops == 1 and worker.syncs == 1
    messages = [r.getMessage() for r in caplog.records]
    # one line when it breaks and one when it recovers, not one per attempt
    assert sum("Slack buttons unavailable" in m for m in messages) == 1
    assert messages.count("Slack buttons available again") == 1


def test_a_standby_logs_once_while_it_waits_and_once_when_it_leads(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = FakeWorker()
    proc = process(worker, FakeLock(acquire=[False] * 5 + [True]))
    with caplog.at_level(logging.INFO, logger="monitor.service"):
        run_until(proc, worker.leading)
    messages = [r.getMessage() for r in caplog.records if r.name == "monitor.service"]
    assert messages.count("another worker holds the lead; waiting as a standby") == 1
    assert messages.count("this worker now leads: starting the scheduler") == 1


def test_a_job_that_nudges_while_the_scheduler_stops_does_not_hang_it() -> None:
    """The scheduler's shutdown holds its job-store lock while it waits for running jobs."""
    import time

    from apscheduler.schedulers.base import STATE_STOPPED

    started, go = threading.Event(), threading.Event()
    nudges: list[service.Nudger] = []
    ran_other: list[datetime] = []

    def slow(now: datetime) -> None:
        started.set()
        assert go.wait(10)
        nudges[0]("other")  # e.g. the assess job asking for delivery, mid-shutdown

    specs = [
        JobSpec("slow", slow, every=timedelta(hours=1)),
        JobSpec("other", ran_other.append, every=timedelta(hours=1)),
    ]
    scheduler = build_scheduler(specs, timezone="Europe/London")
    nudger = service.Nudger(scheduler)
    nudges.append(nudger)
    scheduler.start()
    assert started.wait(10)

    def stop() -> None:  # the order WorkerProcess._shutdown uses
        nudger.stop()
        scheduler.shutdown(wait=True)

    stopper = threading.Thread(target=stop)
    stopper.start()
    deadline = time.monotonic() + 10
    while scheduler.state != STATE_STOPPED and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(0.05)  # a bound, not a wait for work: shutdown now holds its locks
    go.set()
    stopper.join(10)
    assert not stopper.is_alive(), "the scheduler never stopped: a job waited on its lock"


def test_a_nudge_brings_a_job_forward() -> None:
    ran = threading.Event()
    scheduler = build_scheduler(
        [JobSpec("later", lambda now: ran.set(), every=timedelta(hours=1))],
        timezone="Europe/London",
    )
    scheduler.start(paused=True)
    scheduler.modify_job("later", next_run_time=datetime.now(ZoneInfo("UTC")) + timedelta(hours=1))
    scheduler.resume()
    nudger = service.Nudger(scheduler)
    try:
        nudger("later")
        assert ran.wait(10)
    finally:
        nudger.stop()
        scheduler.shutdown(wait=True)
    nudger("later")  # after stop: nothing happens, nothing waits


def test_a_rescore_does_not_wait_for_a_running_assessment(worker: Worker) -> None:
    calls: list[bool] = []

    def record(now: datetime, *, rescore: bool, only: Sequence[int] | None = None) -> AssessReport:
        calls.append(rescore)
        return AssessReport(assessed=1)

    worker._assess = record  # type: ignore[method-assign]
    worker._classifier_health = lambda now: None  # type: ignore[method-assign]
    with worker._assess_lock:  # an assessment pass is running
        assert worker.assess(FIXED_NOW, rescore=True).assessed == 0  # returns at once
    assert calls == []
    assert worker.assess(FIXED_NOW, rescore=True).assessed == 1
    assert calls == [True]
