"""Each scheduled job's health: failures in a row, and one IT notice while a job keeps failing.

The scheduler's guard reports every run here. A job failing ``JOB_FAILURES_NOT_READY``
times in a row makes ``/readyz`` not ready (naming it) and shows in ``monitor status``;
IT is told once, and again when it recovers. Its traceback is logged once per run of
failures, then a short line per run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.constants import AlertChannel
from monitor.directory import Directory
from monitor.outbox import enqueue
from monitor.rules.delivery import IT_ROLES, reachable
from monitor.rules.jobs import JOB_FAILING, JOB_RECOVERED, job_failing, tell_it_now
from monitor.storage import tables as t
from monitor.storage.db import transaction

log = logging.getLogger(__name__)


def short_error(exc: BaseException) -> str:
    """``"OperationalError: ..."``, one line, at most 300 characters."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class JobHealth:
    """Counts failures in a row per job (in memory, and in ``job_health`` when it can)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        directory: Callable[[Session, datetime], Directory] | None = None,
        channels: frozenset[AlertChannel] = frozenset(),
        nudge: Callable[[str], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._channels = channels
        self._nudge = nudge
        self._failures: dict[str, int] = {}
        self._stored: set[str] | None = None  # jobs with failures on record (read once)
        self._lock = threading.Lock()

    def failures(self, job_id: str) -> int:
        """Failed runs in a row of ``job_id`` in this process."""
        with self._lock:
            return self._failures.get(job_id, 0)

    def failing(self) -> list[str]:
        """Jobs that count as failing now (this process)."""
        with self._lock:
            return sorted(j for j, n in self._failures.items() if job_failing(n))

    def succeeded(self, job_id: str, now: datetime) -> None:
        """A run went well: the job is healthy again (IT hears if it was told of the failures)."""
        with self._lock:
            before = self._failures.pop(job_id, 0)
        if before == 0 and not self._stored_failing(job_id):
            return
        if before:
            log.info("job %s works again after %d failed run(s)", job_id, before)
        try:
            with transaction(self._sessions) as session:
                row = session.get(t.JobHealth, job_id)
                if row is None:
                    return
                told = row.alerted_at is not None
                row.consecutive_failures = 0
                row.failing_since = None
                row.alerted_at = None
                row.last_success_at = now
                if self._stored is not None:
                    self._stored.discard(job_id)
                if told:
                    self._tell_it(
                        session,
                        now,
                        kind=JOB_RECOVERED,
                        key=f"{JOB_RECOVERED}:{job_id}:{now.isoformat()}",
                        subject=f"Monitor: the {job_id} job works again",
                        text=f"The scheduled job {job_id} ran successfully again.",
                    )
        except Exception as exc:
            log.warning("could not record that job %s succeeded: %s", job_id, short_error(exc))

    def failed(self, job_id: str, now: datetime, exc: BaseException) -> int:
        """A run failed; returns its failures in a row. Records it and tells IT once."""
        with self._lock:
            count = self._failures[job_id] = self._failures.get(job_id, 0) + 1
        error = short_error(exc)
        try:
            with transaction(self._sessions) as session:
                row = session.get(t.JobHealth, job_id, with_for_update=True)
                if row is None:
                    row = t.JobHealth(job_id=job_id, consecutive_failures=0)
                    session.add(row)
                row.consecutive_failures = max(count, (row.consecutive_failures or 0) + 1)
                row.failing_since = row.failing_since or now
                row.last_failure_at = now
                row.last_error = error
                if self._stored is not None:
                    self._stored.add(job_id)
                if tell_it_now(row.consecutive_failures, row.alerted_at is not None):
                    row.alerted_at = now
                    self._tell_it(
                        session,
                        now,
                        kind=JOB_FAILING,
                        key=f"{JOB_FAILING}:{job_id}:{row.failing_since.isoformat()}",
                        subject=f"Monitor: the {job_id} job keeps failing",
                        text=(
                            f"The scheduled job {job_id} has failed {row.consecutive_failures} "
                            f"times in a row (since {row.failing_since.isoformat()}): {error}. "
                            "The worker reports not ready until it runs again; the log has "
                            "the first traceback."
                        ),
                    )
        except Exception as store_error:
            log.warning("could not record that job %s failed: %s", job_id, short_error(store_error))
        return count

    def forget_except(self, job_ids: set[str]) -> None:
        """Drop the records of jobs no longer scheduled (an account removed, say)."""
        with transaction(self._sessions) as session:
            session.execute(delete(t.JobHealth).where(t.JobHealth.job_id.not_in(job_ids)))

    def _stored_failing(self, job_id: str) -> bool:
        """Whether ``job_id`` has failures on record (from before this process, say)."""
        if self._stored is None:
            try:
                with self._sessions() as session:
                    self._stored = set(
                        session.scalars(
                            select(t.JobHealth.job_id).where(t.JobHealth.consecutive_failures > 0)
                        )
                    )
            except Exception:
                return False
        return job_id in self._stored

    def _tell_it(
        self, session: Session, now: datetime, *, kind: str, key: str, subject: str, text: str
    ) -> None:
        if self._directory is None:
            return
        directory = self._directory(session, now)
        for recipient in reachable(directory, IT_ROLES, None, self._channels, one_each=True):
            enqueue(
                session,
                key=f"{key}:{recipient.channel.value}:{recipient.target}"[:200],
                channel=recipient.channel,
                target=recipient.target,
                kind=kind,
                now=now,
                urgent=True,
                payload={"notice": True, "subject": subject, "text": text},
            )
        if self._nudge is not None:
            self._nudge("deliver")


def failing_jobs(session: Session) -> list[t.JobHealth]:
    """Jobs failing now (``JOB_FAILURES_NOT_READY`` runs or more in a row), by id."""
    rows = session.scalars(
        select(t.JobHealth).where(t.JobHealth.consecutive_failures > 0).order_by(t.JobHealth.job_id)
    ).all()
    return [row for row in rows if job_failing(row.consecutive_failures)]
