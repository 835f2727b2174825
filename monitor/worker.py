"""The worker: the only code that talks to platforms, the model, Slack and SMTP."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import cases
from monitor.actions import POLICY, ActionUnderWay, request_action
from monitor.classify import ModelState, ModelStatus
from monitor.config_models import Config
from monitor.constants import ActionKind, AlertKind, Category, PollErrorKind, Severity
from monitor.directory import Directory, load_directory
from monitor.jobs.actions import ActionOutcome, run_pending_actions
from monitor.jobs.assess import Assessor, AssessReport, ReportsModelStatus, assess_pending
from monitor.jobs.compliance import ComplianceReport, Subject, reconcile, run_compliance
from monitor.jobs.poll import ConnectorPool, PollOutcome, poll_account, poll_thread
from monitor.jobs.triage import Triage, TriagingAssessor
from monitor.jobs.verify import CheckResult, run_removal_checks
from monitor.policy import item_policy
from monitor.posts import Checker, PublishOutcome, publish_due, remind_waiting, watched_threads
from monitor.publishers import PublisherCache
from monitor.rules.standing_checks import (
    CLASSIFIER_DOWN,
    LOGIN_REFUSED,
    Fine,
    LoginFacts,
    ModelFacts,
    StandingCheck,
    Unchanged,
)
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.accounts import account_by_key
from monitor.sync import Change, apply_config

log = logging.getLogger(__name__)
ASSESS_BUDGET_S = 120.0
MAX_LISTED = 50  # quarantined ids and errors listed on an IT case (the count is exact)  # longest one assessment run keeps going before letting other jobs in

# the model's state as the classifier-down check reads it (None: not loaded yet, nothing known)
LOADED: dict[ModelState, bool | None] = {
    ModelState.LOADED: True,
    ModelState.UNAVAILABLE: False,
    ModelState.NOT_LOADED: None,
}


def _merge(first: AssessReport, more: AssessReport) -> AssessReport:
    """Two assessment reports as one."""
    return AssessReport(
        assessed=first.assessed + more.assessed,
        unscored=first.unscored + more.unscored,
        cases_opened=first.cases_opened + more.cases_opened,
        cases_reclassified=first.cases_reclassified + more.cases_reclassified,
        responses_recorded=first.responses_recorded + more.responses_recorded,
        auto_actions=first.auto_actions + more.auto_actions,
        more=more.more,
    )


@dataclass
class Worker:
    """Everything the scheduled jobs share: the database, the configuration, live connectors."""

    sessions: sessionmaker[Session]
    config: Config
    assessor: Assessor
    pool: ConnectorPool = field(default_factory=ConnectorPool)
    config_dir: Path | None = None
    # asks the scheduler to run a job now (set by the service; a no-op otherwise)
    nudge: Callable[[str], None] = field(default=lambda _job: None)
    # set when the service is stopping: long jobs stop at their next batch boundary
    stopping: threading.Event = field(default_factory=threading.Event)
    # the rules run on new comments as they are stored, so urgent ones are scored first
    triage: Triage | None = None
    _assess_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _quarantine_checked: bool = field(default=False, repr=False)
    _checker: Checker | None = field(default=None, repr=False)
    _publishers: PublisherCache | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.triage is None and isinstance(self.assessor, TriagingAssessor):
            self.triage = Triage(self.assessor)

    def directory(self, session: Session, now: datetime) -> Directory:
        """Staff and routing as of ``now`` (leaving dates are judged against it)."""
        return load_directory(
            session, self.config.routing, now=now, timezone=self.config.organisation.timezone
        )

    def sync(self, now: datetime) -> list[Change]:
        """Apply the configuration to the database."""
        with transaction(self.sessions) as session:
            return apply_config(session, self.config, now=now)

    def account_keys(self) -> list[str]:
        """Keys of the accounts that are polled."""
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(t.Account.key)
                    .where(t.Account.archived_at.is_(None), t.Account.enabled.is_(True))
                    .order_by(t.Account.key)
                )
            )

    def poll(self, account_key: str, now: datetime) -> PollOutcome:
        """Poll one account (isolated: never raises for platform trouble)."""
        outcome = poll_account(self.sessions, account_key, self.pool, now)
        if outcome.new_item_ids:
            self._triage(outcome.new_item_ids, now)
            self.nudge("assess")  # new comments are scored now, not at the next tick
        if outcome.error_kind is PollErrorKind.AUTH or outcome.ok:
            self._auth_case(account_key, outcome, now)
        if outcome.quarantined or not self._quarantine_checked:
            # also once per process: rows a crash left without a case are reported now
            self.quarantine_cases(now)
            self._quarantine_checked = True
        return outcome

    def quarantine_cases(self, now: datetime) -> int:
        """Tell IT of quarantined items: one case per account while it is open, not one per item.

        Items quarantined while the account's case is open join it quietly; rows no case
        reports yet (say, after a crash between the poll and this) are found on the next
        call. Returns how many cases were opened.
        """
        opened = 0
        with transaction(self.sessions) as session:
            waiting = list(
                session.scalars(
                    select(t.QuarantinedItem)
                    .where(t.QuarantinedItem.case_id.is_(None))
                    .order_by(t.QuarantinedItem.id)
                )
            )
            by_account: dict[int, list[t.QuarantinedItem]] = {}
            for row in waiting:
                by_account.setdefault(row.account_id, []).append(row)
            for account_id, rows in by_account.items():
                account = session.get(t.Account, account_id)
                if account is None:
                    continue
                prefix = f"item_quarantined:{account.key}:"
                open_now = cases.open_cases_for(session, Category.ITEM_QUARANTINED, prefix)
                case = open_now[0] if open_now else None
                if case is None:
                    case, _ = cases.open_case(
                        session,
                        dedupe_key=f"{prefix}{now.isoformat()}",
                        category=Category.ITEM_QUARANTINED,
                        severity=Severity.MEDIUM,
                        title=(
                            f"{account.key}: the database refused an item, kept in quarantine; "
                            "polling goes on past it"
                        ),
                        now=now,
                        account_id=account.id,
                        school_id=account.school_id,
                        details={"categories": [Category.ITEM_QUARANTINED.value]},
                    )
                    cases.notify(
                        session,
                        case,
                        self.directory(session, now),
                        kind=AlertKind.CASE_OPENED,
                        now=now,
                    )
                    opened += 1
                for row in rows:
                    row.case_id = case.id
                ids = [*case.details.get("quarantined_ids", []), *(row.id for row in rows)]
                errors = {*case.details.get("errors", []), *(row.error for row in rows)}
                case.details = {
                    **case.details,
                    "quarantined": int(case.details.get("quarantined", 0)) + len(rows),
                    "quarantined_ids": ids[:MAX_LISTED],  # the first ones; the table has all
                    "errors": sorted(errors)[:MAX_LISTED],
                }
        if opened:
            self.nudge("deliver")
        return opened

    def _triage(self, item_ids: Sequence[int], now: datetime) -> None:
        """Run the rules on new items now (never fails the poll: untriaged items wait in turn)."""
        if self.triage is None:
            return
        try:
            urgent = self.triage.run(self.sessions, item_ids, now)
        except Exception:
            log.exception("triage of %d new items failed; they are scored in turn", len(item_ids))
            return
        if urgent:
            log.info("%d of %d new items are urgent: scored first", urgent, len(item_ids))

    def _auth_case(self, account_key: str, outcome: PollOutcome, now: datetime) -> None:
        """An auth failure pauses the account and tells IT once; a good poll closes it."""
        logged_in = (
            True if outcome.ok else False if outcome.error_kind is PollErrorKind.AUTH else None
        )
        facts = LoginFacts(account_key, logged_in, outcome.error)
        with transaction(self.sessions) as session:
            account = account_by_key(session, account_key)
            subject = Subject(account.id, account.key, facts, account=account)
            report = self._reconcile(session, LOGIN_REFUSED, subject, now)
        if report.opened:
            self.nudge("deliver")

    def _reconcile(
        self, session: Session, check: StandingCheck, subject: Subject, now: datetime
    ) -> ComplianceReport:
        """Settle a reported standing check's case with what the worker has just seen."""
        report = ComplianceReport()
        outcome = check.problem(subject.facts)
        if isinstance(outcome, Unchanged) or (
            isinstance(outcome, Fine)
            and not cases.open_cases_for(session, check.category, check.prefix(subject.key))
        ):
            return report  # nothing to open or close: no need to load the directory
        reconcile(
            session, self.directory(session, now), check, now=now, report=report, observed=[subject]
        )
        return report

    def assess(self, now: datetime, *, rescore: bool = False) -> AssessReport:
        """Assess new items and open the cases the policy asks for.

        One pass at a time (polls nudge it from many threads). A rescore that finds a pass
        running returns at once rather than hold a scheduler thread: it runs again later.
        """
        if not self._assess_lock.acquire(blocking=not rescore):
            return AssessReport()
        try:
            started = time.monotonic()
            report = self._assess(now, rescore=rescore)
            if report.more and (report.cases_opened or report.cases_reclassified):
                self.nudge("deliver")  # this batch's alerts leave while the next is scored
            # a burst is worked through batch after batch, not one batch per tick
            while (
                report.more
                and time.monotonic() - started < ASSESS_BUDGET_S
                and not self.stopping.is_set()
            ):
                # the time each batch is assessed (cases opened, due times) moves on with it
                later = now + timedelta(seconds=time.monotonic() - started)
                more = self._assess(later, rescore=rescore)
                if not more.assessed:
                    break
                report = _merge(report, more)
                if more.cases_opened or more.cases_reclassified:
                    self.nudge("deliver")
            self._classifier_health(now)
        finally:
            self._assess_lock.release()
        if report.cases_opened or report.cases_reclassified:
            self.nudge("deliver")  # urgent alerts leave at once
        if report.auto_actions:
            self.nudge("actions")
        return report

    def assess_items(self, item_ids: Sequence[int], now: datetime) -> AssessReport:
        """Assess those of ``item_ids`` still waiting: one batch of the scaled mode's queue."""
        with self._assess_lock:  # one batch at a time per process: the model has one thread
            report = self._assess(now, rescore=False, only=item_ids)
            self._classifier_health(now)
        if report.cases_opened or report.cases_reclassified:
            self.nudge("deliver")
        if report.auto_actions:
            self.nudge("actions")
        return report

    def model_status(self) -> ModelStatus | None:
        """The toxicity model's state (None: this assessor has no model, as in tests)."""
        if isinstance(self.assessor, ReportsModelStatus):
            return self.assessor.model_status
        return None

    def _classifier_health(self, now: datetime) -> None:
        """One IT case while the model is unavailable (not one per item); closed when it is back."""
        status = self.model_status()
        if status is None:
            return
        facts = ModelFacts(LOADED[status.state], status.message())
        with transaction(self.sessions) as session:
            self._reconcile(session, CLASSIFIER_DOWN, Subject(None, None, facts), now)

    def _assess(
        self, now: datetime, *, rescore: bool, only: Sequence[int] | None = None
    ) -> AssessReport:
        return assess_pending(
            self.sessions,
            self.assessor,
            policy_for=lambda school: item_policy(self.config, school),
            directory=self.directory,
            now=now,
            rescore=rescore,
            request_action=self._policy_action,
            triage=self.triage,
            only=only,
        )

    def _policy_action(
        self, session: Session, case: t.Case, kind: ActionKind, now: datetime, dry_run: bool
    ) -> int | None:
        try:
            request = request_action(
                session,
                case,
                kind,
                actor=POLICY,
                now=now,
                directory=self.directory(session, now),
                reason="automatic: above the auto-hide threshold",
                dry_run=dry_run,
            )
        except ActionUnderWay as exc:  # someone asked first
            return exc.request_id
        return request.id

    def run_actions(self, now: datetime) -> list[ActionOutcome]:
        """Carry out requested platform actions (evidence first)."""
        return run_pending_actions(self.sessions, self.pool, now=now, directory=self.directory)

    def verify(self, now: datetime) -> list[CheckResult]:
        """Re-check hidden or removed items (R8)."""
        return run_removal_checks(self.sessions, self.pool, now=now, directory=self.directory)

    def compliance(self, now: datetime) -> ComplianceReport:
        """Gaps, two administrators, leavers, register and response clocks."""
        with transaction(self.sessions) as session:
            return run_compliance(
                session,
                self.directory(session, now),
                now=now,
                timezone=self.config.organisation.timezone,
            )

    def cycle(self, now: datetime) -> dict[str, Any]:
        """One pass of everything (``monitor poll --once`` and tests); the scheduler runs them apart."""
        polls = [self.poll(key, now) for key in self.account_keys()]
        assessed = self.assess(now)
        actions = self.run_actions(now)
        checks = self.verify(now)
        compliance = self.compliance(now)
        return {
            "polls": polls,
            "assessed": assessed,
            "actions": actions,
            "checks": checks,
            "compliance": compliance,
        }

    def post_checker(self) -> Checker:
        """The pre-publication checks with this worker's classifier (its toxicity model and
        rules) when it has one, else the rules alone."""
        if hasattr(self.assessor, "model_scores") and hasattr(self.assessor, "engine"):
            return Checker.with_model(self.config, self.assessor)
        return Checker.for_config(self.config)

    def publish(self, now: datetime) -> list[PublishOutcome]:
        """Remind approvers of waiting drafts; publish every approved post that is due (R16)."""
        if self._checker is None:
            self._checker = self.post_checker()
        if self._publishers is None:
            self._publishers = PublisherCache(self.pool.account_ref)
        with transaction(self.sessions) as session:
            remind_waiting(session, self.config, now)
        return publish_due(self.sessions, self._checker, self._publishers, now)

    def watch_replies(self, now: datetime) -> list[PollOutcome]:
        """Read the replies under each post published within ``posting.reply_watch``, every
        ``posting.reply_poll_interval`` (the thread alone, not the whole account)."""
        with self.sessions() as session:
            threads = watched_threads(session, now)
        outcomes = []
        for key, root in threads:
            outcome = poll_thread(self.sessions, key, root, self.pool, now)
            if outcome.new_item_ids:
                self._triage(outcome.new_item_ids, now)
                self.nudge("assess")
            outcomes.append(outcome)
        return outcomes

    def close(self) -> None:
        """Release connectors."""
        self.pool.close()
