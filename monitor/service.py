"""Running the service: the worker (leader-locked scheduler) and the web app, together or apart."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler

from monitor.clock import utcnow
from monitor.config import LoadedConfig
from monitor.context import AppContext
from monitor.jobhealth import JobHealth
from monitor.jobs.assess import Assessor
from monitor.jobs.buttons import button_handler
from monitor.jobs.deliver import EmailOut, SlackOut, deliver_pending
from monitor.jobs.poll import ConnectorPool
from monitor.jobs.undelivered import configured_channels
from monitor.leader import LeaderLock, leader_lock_for
from monitor.scale.broker import ScaleSettings, make_broker, make_redis
from monitor.scheduler import JobSpec, build_scheduler, digest_cron
from monitor.web.links import base_url
from monitor.worker import Worker

log = logging.getLogger(__name__)
STANDBY_CHECK = 10.0  # seconds between a standby's attempts to take the lead (takeover < 1 minute)
LEADER_CHECK = 5.0  # seconds between the leader's checks that it still holds the lock
RETRY_AFTER = 30.0  # seconds a worker waits after an error before trying to lead again
LISTEN_RETRY = 60.0  # seconds between attempts to reach Slack Socket Mode (a rate-limited call)


def job_specs(
    worker: Worker,
    *,
    slack: SlackOut | None,
    email: EmailOut | None,
    extra: list[JobSpec] | None = None,
) -> list[JobSpec]:
    """Every scheduled job of the worker."""
    config = worker.config

    def poller(key: str) -> Callable[[datetime], Any]:
        return lambda now: worker.poll(key, now)

    specs = [
        JobSpec(
            f"poll:{key}",
            poller(key),
            every=timedelta(seconds=interval),
            jitter=min(5.0, interval * 0.05),
        )
        for key, interval in _intervals(worker).items()
    ]

    deliver = make_deliver(worker, slack=slack, email=email)
    timing = config.worker
    specs += [
        JobSpec("assess", worker.assess, every=timedelta(seconds=timing.assess_every)),
        JobSpec(
            "rescore",
            lambda now: worker.assess(now, rescore=True),
            every=timedelta(seconds=timing.rescore_every),
        ),
        JobSpec("actions", worker.run_actions, every=timedelta(seconds=timing.actions_every)),
        JobSpec("deliver", deliver, every=timedelta(seconds=timing.deliver_every)),
        JobSpec("verify", worker.verify, every=timedelta(seconds=timing.verify_every)),
        JobSpec("compliance", worker.compliance, every=timedelta(seconds=timing.compliance_every)),
        JobSpec("publish", worker.publish, every=timedelta(seconds=timing.publish_every)),
        JobSpec(
            "watch-replies",
            worker.watch_replies,
            every=timedelta(seconds=config.posting.reply_poll_interval),
        ),
    ]
    return specs + (extra or [])


def make_deliver(
    worker: Worker, *, slack: SlackOut | None, email: EmailOut | None
) -> Callable[[datetime], Any]:
    """The delivery job: send what the outbox holds by Slack and email."""
    config = worker.config

    def deliver(now: datetime) -> Any:
        with worker.sessions() as session:
            directory = worker.directory(session, now)
        return deliver_pending(
            worker.sessions,
            slack=slack,
            email=email,
            directory=directory,
            now=now,
            timezone=config.organisation.timezone,
            links_base=base_url(config),
        )

    return deliver


def _intervals(worker: Worker) -> dict[str, float]:
    """Poll interval of every enabled account, from the configuration (the database may be new)."""
    return {a.key: float(a.poll_interval) for a in worker.config.accounts if a.enabled}


@dataclass
class WorkerProcess:
    """Waits for the leader lock, then runs the scheduler until told to stop or the lock is lost."""

    worker: Worker
    lock: LeaderLock
    specs: list[JobSpec]
    timezone: str
    stop: threading.Event = field(default_factory=threading.Event)
    state: dict[str, Any] = field(default_factory=lambda: {"role": "starting"})
    listener: Any = None
    standby_check: float = STANDBY_CHECK
    leader_check: float = LEADER_CHECK
    retry_after: float = RETRY_AFTER
    _listening: bool = field(default=False, repr=False)
    _listen_failed: bool = field(default=False, repr=False)
    _listen_next: float = field(default=0.0, repr=False)
    _last_error: str | None = field(default=None, repr=False)
    # each job's failures in a row (a job that keeps failing makes the worker not ready)
    health: JobHealth | None = None

    def run(self) -> None:
        """Loop until ``stop`` is set: standby, then leader, then standby again if the lock is lost."""
        while not self.stop.is_set():
            if not self._try_lead():
                if self.state.get("role") != "standby":
                    log.info("another worker holds the lead; waiting as a standby")
                self.state["role"] = "standby"
                self.stop.wait(self.standby_check)
                continue
            try:
                self._lead()
            except Exception as exc:
                # e.g. the database went away during start-up: never leave the process without a
                # worker, and let a standby take over while this one waits
                error = f"{type(exc).__name__}: {exc}"
                if error != self._last_error:  # one traceback per new problem, not one a minute
                    log.exception("the worker stopped leading after an error; retrying")
                self._last_error = error
                self.state.update(role="retrying", error=type(exc).__name__)
                self.lock.release()
                self.stop.wait(self.retry_after)
            else:
                self._last_error = None
        self.lock.release()
        self.state["role"] = "stopped"

    def _try_lead(self) -> bool:
        """Take the lock if free; an unreachable database counts as 'not now'."""
        try:
            return self.lock.try_acquire()
        except Exception:
            log.exception("could not take the worker lock")
            return False

    def _lead(self) -> None:
        """One term as leader: sync the configuration, run the scheduler until stop or lock loss."""
        log.info("this worker now leads: starting the scheduler")
        self.state.update(role="leader", since=utcnow().isoformat())
        self.state.pop("error", None)
        self.worker.stopping.clear()
        self.worker.sync(utcnow())
        if self.health is not None:
            self.health.forget_except({spec.id for spec in self.specs})
        scheduler = build_scheduler(self.specs, timezone=self.timezone, health=self.health)
        nudger = Nudger(scheduler)
        self.worker.nudge = nudger
        scheduler.start()
        try:
            self._listen()
            while not self.stop.wait(self.leader_check):
                if not self.lock.still_held():
                    log.error("lost the worker lock: stopping the scheduler")
                    break
                self._listen()
        finally:
            self._shutdown(scheduler, nudger)

    def _listen(self) -> None:
        """Start the Slack button listener; if Slack is unreachable, alerts go on and we retry."""
        if self.listener is None or self._listening or time.monotonic() < self._listen_next:
            return
        try:
            self.listener.start()
        except Exception as exc:
            self._listen_next = time.monotonic() + LISTEN_RETRY
            if not self._listen_failed:
                log.warning("Slack buttons unavailable (%s); retrying every minute", exc)
            self._listen_failed = True
            return
        if self._listen_failed:
            log.info("Slack buttons available again")
        self._listening, self._listen_failed = True, False

    def _shutdown(self, scheduler: BackgroundScheduler, nudger: Nudger) -> None:
        """Stop the listener and the scheduler (running jobs finish), close the connectors."""
        if self._listening:
            self.listener.stop()
            self._listening = False
        self.worker.stopping.set()  # long jobs stop at their next batch boundary
        # before the scheduler: its shutdown holds the lock a nudge needs while it waits for
        # the running jobs, so a job nudging another then would wait for ever
        nudger.stop()
        # wait=True: running jobs finish their transaction (or roll back) before we exit
        scheduler.shutdown(wait=True)
        self.worker.close()
        self.state["role"] = "standby"


class Nudger:
    """Jobs ask for other jobs to run soon; one thread of its own passes that to the scheduler.

    A job never calls the scheduler itself, so it can never wait on the scheduler's locks
    (which its shutdown holds while it waits for the running jobs to finish).
    """

    def __init__(self, scheduler: BackgroundScheduler) -> None:
        self._scheduler = scheduler
        self._pending: dict[str, None] = {}
        self._changed = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="nudger", daemon=True)
        self._thread.start()

    def __call__(self, job_id: str) -> None:
        """Ask for ``job_id`` to run now; returns at once, and does nothing once stopped."""
        with self._changed:
            if not self._stopped:
                self._pending[job_id] = None
                self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._pending and not self._stopped:
                    self._changed.wait()
                if self._stopped:
                    return
                due, self._pending = list(self._pending), {}
            for job_id in due:
                run_soon(self._scheduler, job_id)

    def stop(self) -> None:
        """Drop what is pending and wait for the thread (at most one nudge in flight)."""
        with self._changed:
            self._stopped = True
            self._changed.notify()
        self._thread.join()


def run_soon(scheduler: BackgroundScheduler, job_id: str) -> None:
    """Bring a job's next run forward to now (if it is running, its next tick picks the work up)."""
    try:
        scheduler.modify_job(job_id, next_run_time=utcnow())
    except JobLookupError:
        log.debug("no job %s to run now", job_id)


def make_worker_process(ctx: AppContext, loaded: LoadedConfig, assessor: Assessor) -> WorkerProcess:
    """A worker process from settings and configuration, with Slack and email if configured."""
    from monitor.notify.email import EmailSender
    from monitor.notify.slack import SlackSender

    settings = ctx.settings
    config = loaded.config
    worker = Worker(
        ctx.sessions,
        config,
        assessor,
        pool=ConnectorPool(config_dir=loaded.path.parent, sessions=ctx.sessions),
        config_dir=loaded.path.parent,
    )
    slack = SlackSender.from_settings(settings) if settings.slack_bot_token else None
    email = EmailSender.from_settings(settings) if settings.smtp_host else None
    extra: list[JobSpec] = _optional_jobs(worker, email)
    specs = job_specs(worker, slack=slack, email=email, extra=extra)
    scale = ScaleSettings.from_settings(settings)
    if scale is not None:
        # the scaled mode: the leader's scheduler enqueues the heavy jobs for the workers
        from monitor.scale.enqueue import Enqueuer
        from monitor.scale.tasks import Tasks

        logging.getLogger("pika").setLevel(logging.WARNING)  # a line per connection otherwise
        tasks = Tasks.declare(make_broker(scale), scale)
        specs = Enqueuer(tasks, make_redis(scale), scale, ctx.sessions).specs(specs)
    process = WorkerProcess(
        worker,
        leader_lock_for(ctx.engine),
        specs,
        config.organisation.timezone,
        health=JobHealth(
            ctx.sessions,
            directory=worker.directory,
            channels=configured_channels(slack=slack, email=email),
            nudge=lambda job: worker.nudge(job),
        ),
    )
    if slack is not None and settings.slack_app_token:
        from monitor.notify.buttons import ButtonListener

        process.listener = ButtonListener(
            app_token=settings.slack_app_token,
            web_client=slack.client,
            handler=button_handler(ctx.sessions, worker.directory, utcnow, worker.post_checker()),
        )
    return process


def _optional_jobs(worker: Worker, email: Any) -> list[JobSpec]:
    """Retention (nightly) and the weekly digest."""
    from monitor.retention import purge

    config = worker.config

    def retention(now: Any) -> Any:
        # a plain session: purge commits batch by batch so it never holds the write lock long
        with worker.sessions() as session:
            report = purge(session, config.retention, now=now, commit_batches=True)
            session.commit()
            return report

    specs = [JobSpec("retention", retention, cron={"hour": 2, "minute": 30})]
    if email is not None:
        from monitor.digest.send import send_weekly

        def digest(now: Any) -> Any:
            return send_weekly(worker.sessions, config, email, now=now)

        specs.append(
            JobSpec(
                "digest",
                digest,
                cron=digest_cron(
                    config.digest.weekday, config.digest.time.hour, config.digest.time.minute
                ),
            )
        )
        specs.append(JobSpec("digest-catch-up", digest, every=timedelta(minutes=15)))
    return specs
