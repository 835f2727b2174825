"""Scheduled policy checks: R1 gaps, R2 clocks, R3 two admins, R4 leavers, R6 DSL, R13 register."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import cases
from monitor.constants import (
    DEFAULT_TIMEZONE,
    OPEN_CASE_STATES,
    AlertChannel,
    AlertKind,
    CaseState,
    Category,
    Role,
    Severity,
)
from monitor.directory import Directory, local_today
from monitor.handover import HandoverRefused, run_handover, staff_in_post
from monitor.outbox import enqueue
from monitor.rules.alerting import dsls_in_post
from monitor.rules.engine import (
    ClockStep,
    clock_step,
    leaver_warning_due,
    responded_case_settles,
)
from monitor.rules.handling import HandlingClock, HandlingStep, handling_step, is_handled
from monitor.rules.routing import RESTRICTED_VIEWERS
from monitor.rules.standing_checks import (
    ACCOUNT_REGISTER,
    HANDOVER_BLOCKED,
    MONITORING_GAP,
    SCHOOL_WITHOUT_DSL,
    STANDING_CHECKS,
    TWO_ADMINS,
    AdminFacts,
    DslFacts,
    GapFacts,
    HandoverFacts,
    Outcome,
    Problem,
    RegisterFacts,
    StandingCheck,
    Unchanged,
    Watches,
)
from monitor.rules.visibility import ContentAccess, may_see_content
from monitor.storage import tables as t
from monitor.storage.queries.cases import school_key_of

log = logging.getLogger(__name__)


@dataclass
class ComplianceReport:
    """Cases opened and closed by one run."""

    opened: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)
    reminders: list[int] = field(default_factory=list)
    breaches: list[int] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    handovers: list[str] = field(default_factory=list)


def _open_one(  # noqa: PLR0913 - the case row's columns, keyword-only
    session: Session,
    report: ComplianceReport,
    directory: Directory,
    *,
    prefix: str,
    category: Category,
    title: str,
    now: datetime,
    account: t.Account | None,
    details: dict[str, object],
    severity: Severity = Severity.MEDIUM,
    school: t.School | None = None,
) -> None:
    """Open a case for a standing problem unless one is already open (``school``: no account)."""
    if cases.open_cases_for(session, category, prefix):
        return
    case, created = cases.open_case(
        session,
        dedupe_key=f"{prefix}{now.isoformat()}",
        category=category,
        severity=severity,
        title=title,
        now=now,
        account_id=account.id if account else None,
        school_id=account.school_id if account else (school.id if school else None),
        details={"categories": [category.value], **details},
    )
    if created:
        report.opened.append(case.id)
        cases.notify(session, case, directory, kind=AlertKind.CASE_OPENED, now=now)


def _close(
    session: Session, report: ComplianceReport, case: t.Case, *, now: datetime, reason: str
) -> None:
    """Close a case on the policy's behalf and report it."""
    cases.change_state(session, case, CaseState.CLOSED, actor="policy", now=now, reason=reason)
    report.closed.append(case.id)


def _close_all(
    session: Session,
    report: ComplianceReport,
    *,
    prefix: str,
    category: Category,
    now: datetime,
    reason: str,
) -> None:
    for case in cases.open_cases_for(session, category, prefix):
        _close(session, report, case, now=now, reason=reason)


def _live_accounts(session: Session, *, polled_only: bool = False) -> list[t.Account]:
    """Accounts in the register (not archived); with ``polled_only`` just the enabled ones."""
    query = select(t.Account).where(t.Account.archived_at.is_(None))
    if polled_only:
        query = query.where(t.Account.enabled.is_(True))
    return list(session.scalars(query.order_by(t.Account.key)))


@dataclass(frozen=True)
class Subject:
    """One thing a standing check watches, with the facts its problem function needs."""

    id: int | None  # the account's or school's id: whose case it is (None: the service's)
    key: str | None  # None: the check has one subject (the model), its cases one prefix
    facts: object
    account: t.Account | None = None
    school: t.School | None = None


def _admins(session: Session, directory: Directory, now: datetime) -> list[Subject]:  # noqa: ARG001 - the gatherers' shared signature
    subjects = []
    for account in _live_accounts(session):
        listed = session.scalars(
            select(t.Staff)
            .join(t.AccountAdmin, t.AccountAdmin.staff_id == t.Staff.id)
            .where(t.AccountAdmin.account_id == account.id, t.AccountAdmin.removed_at.is_(None))
            .order_by(t.Staff.key)
        ).all()
        # R3/R4: only staff still in post count; a leaver whose handover was blocked stops
        # counting the day after their last day, though they are still listed
        today = local_today(now, account.school.timezone)
        admins = [staff.key for staff in listed if staff_in_post(staff, today=today)]
        gone = [
            staff.key
            for staff in listed
            if staff.leaving_on is not None and staff.leaving_on < today and staff.key not in admins
        ]
        facts = AdminFacts(account.key, admins, gone)
        subjects.append(Subject(account.id, account.key, facts, account=account))
    return subjects


def _schools(session: Session, directory: Directory, now: datetime) -> list[Subject]:  # noqa: ARG001 - the gatherers' shared signature
    schools = session.scalars(
        select(t.School).where(t.School.archived_at.is_(None)).order_by(t.School.key)
    )
    watched = Counter(account.school_id for account in _live_accounts(session, polled_only=True))
    subjects = []
    for school in schools:
        today = directory.today(school.key)
        # the school's DSLs who no longer count, to say what changed
        gone = [
            f"{p.key} left {p.leaving_on.isoformat()}"
            if p.leaving_on is not None and p.leaving_on < today
            else f"{p.key} inactive"
            for p in directory.people
            if directory.effective_roles(p) & RESTRICTED_VIEWERS
            and p.serves(school.key)
            and not directory.in_post(p, school.key)
        ]
        facts = DslFacts(
            school.key,
            school.name,
            enabled_accounts=watched[school.id],
            dsls_in_post=sorted(p.key for p in dsls_in_post(directory, school.key)),
            not_in_post=gone,
        )
        subjects.append(Subject(school.id, school.key, facts, school=school))
    return subjects


def _register(session: Session, directory: Directory, now: datetime) -> list[Subject]:  # noqa: ARG001 - the gatherers' shared signature
    subjects = []
    for account in _live_accounts(session):
        approver = session.get(t.Staff, account.approved_by_id) if account.approved_by_id else None
        facts = RegisterFacts(account.key, approver.key if approver else None, account.linked_email)
        subjects.append(Subject(account.id, account.key, facts, account=account))
    return subjects


def _polled(session: Session, directory: Directory, now: datetime) -> list[Subject]:  # noqa: ARG001 - the gatherers' shared signature
    subjects = []
    for account in _live_accounts(session, polled_only=True):
        health = session.get(t.AccountHealth, account.id)
        facts = GapFacts(
            account.key,
            last_success=health.last_success_at if health else None,
            watched_since=account.created_at,
            gap_limit=timedelta(seconds=account.gap_limit_s),
            now=now,
            last_error=health.last_error if health else None,
        )
        subjects.append(Subject(account.id, account.key, facts, account=account))
    return subjects


# How each standing check gathers its facts (the I/O half of its row in rules.standing_checks).
GATHER: dict[str, Callable[[Session, Directory, datetime], list[Subject]]] = {
    TWO_ADMINS.name: _admins,
    SCHOOL_WITHOUT_DSL.name: _schools,
    ACCOUNT_REGISTER.name: _register,
    MONITORING_GAP.name: _polled,
}


def _settle(
    session: Session,
    report: ComplianceReport,
    directory: Directory,
    check: StandingCheck,
    subject: str | None,
    *,
    outcome: Outcome,
    now: datetime,
    account: t.Account | None = None,
    school: t.School | None = None,
) -> None:
    """Open the subject's case for a problem (once), close it when fine, or leave it be."""
    if isinstance(outcome, Unchanged):
        return
    if isinstance(outcome, Problem):
        _open_one(
            session,
            report,
            directory,
            prefix=check.prefix(subject),
            category=check.category,
            title=outcome.title,
            now=now,
            account=account,
            school=school,
            details=outcome.details,
            severity=check.severity,
        )
    else:
        _close_all(
            session,
            report,
            prefix=check.prefix(subject),
            category=check.category,
            now=now,
            reason=outcome.reason,
        )


def reconcile(
    session: Session,
    directory: Directory,
    check: StandingCheck,
    *,
    now: datetime,
    report: ComplianceReport,
    observed: Sequence[Subject] | None = None,
) -> None:
    """Run one standing check over everything it watches, opening and closing its cases.

    ``observed``: the subjects a reported check's facts came from (the worker saw them); a
    gathered check finds its own and closes the cases of subjects no longer watched.
    """
    if check.watches.reported:
        if observed is None:
            raise ValueError(f"the {check.name} check is reported: pass what was observed")
        subjects = list(observed)
    else:
        subjects = GATHER[check.name](session, directory, now)
        _close_unwatched(session, report, check, subjects, now=now)
    for subject in subjects:
        _settle(
            session,
            report,
            directory,
            check,
            subject.key,
            outcome=check.problem(subject.facts),
            now=now,
            account=subject.account,
            school=subject.school,
        )


def _close_unwatched(
    session: Session,
    report: ComplianceReport,
    check: StandingCheck,
    subjects: Sequence[Subject],
    *,
    now: datetime,
) -> None:
    """A subject no longer watched (archived, disabled) closes its case, or it stays open."""
    live = {subject.id for subject in subjects}
    for case in cases.open_cases_for(session, check.category, check.prefix()):
        owner = case.school_id if check.watches is Watches.SCHOOLS else case.account_id
        if owner not in live and (owner is not None or check.watches is Watches.SCHOOLS):
            _close(session, report, case, now=now, reason=check.gone)


def sweep_response_clocks(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R2: a reminder before the due time, escalation to SLT when it is missed."""
    rows = session.scalars(
        select(t.Case).where(
            t.Case.due_at.is_not(None),
            t.Case.responded_at.is_(None),
            # R8: hiding, removing, or reporting and blocking the content stopped its clock
            t.Case.handled_at.is_(None),
            t.Case.state.in_([s.value for s in OPEN_CASE_STATES]),
            t.Case.due_at <= now + timedelta(days=30),
        )
    ).all()
    for case in rows:
        remind_text = case.details.get("remind_at")
        remind_at = datetime.fromisoformat(remind_text) if isinstance(remind_text, str) else None
        step = clock_step(
            due_at=case.due_at,
            remind_at=remind_at,
            reminded=case.reminded_at is not None,
            breached=case.breached_at is not None,
            now=now,
            responded=case.responded_at is not None,
        )
        if step is ClockStep.REMIND:
            case.reminded_at = now
            cases.log_event(
                session,
                case,
                "clock.reminder",
                actor="policy",
                now=now,
                details={"due_at": case.due_at.isoformat() if case.due_at else None},
            )
            cases.notify(session, case, directory, kind=AlertKind.REMINDER, now=now)
            report.reminders.append(case.id)
        elif step is ClockStep.BREACH:
            case.breached_at = now
            cases.log_event(
                session,
                case,
                "clock.breached",
                actor="policy",
                now=now,
                reason="response target missed (R2)",
            )
            if case.case_state is not CaseState.ESCALATED:
                cases.change_state(
                    session,
                    case,
                    CaseState.ESCALATED,
                    actor="policy",
                    now=now,
                    reason="response target missed",
                )
            cases.notify(session, case, directory, kind=AlertKind.BREACH, now=now, escalation=True)
            report.breaches.append(case.id)


# R8: what each handling step records and tells, and whether it escalates to SLT
_HANDLING_STEPS: dict[HandlingStep, tuple[str, AlertKind, bool]] = {
    HandlingStep.REMIND: ("handling_reminded", AlertKind.HANDLING_REMINDER, False),
    HandlingStep.FIRST_ACTION_MISSED: ("handling_first_missed", AlertKind.HANDLING_MISSED, True),
    HandlingStep.REMOVAL_MISSED: ("handling_removal_missed", AlertKind.REMOVAL_MISSED, True),
}
_HANDLING_REASONS: dict[HandlingStep, str] = {
    HandlingStep.REMIND: "nobody has acted on it yet (R8)",
    HandlingStep.FIRST_ACTION_MISSED: "nobody acted on it by the first-action target (R8)",
    HandlingStep.REMOVAL_MISSED: "removal not sought by the removal target (R8)",
}


def sweep_handling_clocks(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R8: abuse and threats nobody acts on are reminded, then escalated to SLT like a missed reply."""
    rows = session.scalars(
        select(t.Case).where(
            t.Case.handled_at.is_(None),
            t.Case.item_id.is_not(None),
            t.Case.state.in_([s.value for s in OPEN_CASE_STATES]),
        )
    ).all()
    for case in rows:
        clock = HandlingClock.from_json(case.details.get("handling"))
        if clock is None:
            continue
        flags = case.details
        step = handling_step(
            clock,
            state=CaseState(case.state),
            handled=is_handled(state=CaseState(case.state), handled_at=case.handled_at),
            reminded=bool(flags.get("handling_reminded")),
            first_missed=bool(flags.get("handling_first_missed")),
            removal_missed=bool(flags.get("handling_removal_missed")),
            now=now,
        )
        if step is HandlingStep.NONE:
            continue
        flag, kind, escalates = _HANDLING_STEPS[step]
        case.details = {**case.details, flag: now.isoformat()}
        cases.log_event(
            session,
            case,
            f"handling.{step.value}",
            actor="policy",
            now=now,
            reason=_HANDLING_REASONS[step],
            details=clock.to_json(),
        )
        if escalates and CaseState(case.state) is not CaseState.ESCALATED:
            cases.change_state(
                session,
                case,
                CaseState.ESCALATED,
                actor="policy",
                now=now,
                reason=_HANDLING_REASONS[step],
            )
        cases.notify(session, case, directory, kind=kind, now=now, escalation=escalates)
        (report.breaches if escalates else report.reminders).append(case.id)


def settle_responded_cases(session: Session, *, now: datetime, report: ComplianceReport) -> None:
    """Close cases answered ``RESPONDED_SETTLE_AFTER`` ago with nothing since (R2, R14)."""
    rows = session.scalars(
        select(t.Case).where(
            t.Case.state == CaseState.RESPONDED.value, t.Case.responded_at.is_not(None)
        )
    ).all()
    for case in rows:
        if responded_case_settles(state=case.case_state, responded_at=case.responded_at, now=now):
            _close(
                session, report, case, now=now, reason="answered two weeks ago with no follow-up"
            )


def check_leavers(
    session: Session,
    directory: Directory,
    *,
    now: datetime,
    report: ComplianceReport,
    timezone: str = DEFAULT_TIMEZONE,
) -> None:
    """R4: warnings before a leaving date, the handover on it."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    leavers = session.scalars(
        select(t.Staff).where(
            t.Staff.leaving_on.is_not(None),
            t.Staff.left_at.is_(None),
            t.Staff.archived_at.is_(None),
        )
    ).all()
    for leaver in leavers:
        assert leaver.leaving_on is not None
        days = leaver_warning_due(leaving_on=leaver.leaving_on, today=today)
        if days is not None:
            _warn(session, directory, leaver, days, now)
            report.warnings.append(f"{leaver.key}:{days}")
        if leaver.leaving_on <= today:
            try:
                run_handover(session, leaver.key, now=now, directory=directory)
            except HandoverRefused as exc:
                refused: str | None = str(exc)
            else:
                refused = None
                report.handovers.append(leaver.key)
            outcome = HANDOVER_BLOCKED.problem(HandoverFacts(leaver.key, leaver.name, refused))
            _settle(
                session, report, directory, HANDOVER_BLOCKED, leaver.key, outcome=outcome, now=now
            )


def settle_cases_without_dsl(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """Close a "safeguarding case has no DSL" case once a DSL in post has it, or it is finished."""
    for alarm in cases.open_cases_for(
        session, Category.SAFEGUARDING_NO_DSL, f"{Category.SAFEGUARDING_NO_DSL.value}:"
    ):
        case = session.get(t.Case, int(alarm.details.get("case", 0)))
        if case is not None and case.case_state in OPEN_CASE_STATES:
            owner = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
            person = directory.person(owner.key) if owner else None
            school_key = school_key_of(session, case)
            sight = may_see_content(
                directory,
                person,
                school_key=school_key,
                category=Category.SAFEGUARDING,
                restricted=True,
            )
            # a DSL or deputy in post has it (a stand-in holding it is why the alarm is open)
            if person is None or sight.access is not ContentAccess.DSL:
                continue
            reason = f"{person.key} now has safeguarding case {case.id}"
        else:
            reason = "the safeguarding case is finished"
        cases.change_state(session, alarm, CaseState.CLOSED, actor="policy", now=now, reason=reason)
        report.closed.append(alarm.id)


def _warn(
    session: Session, directory: Directory, leaver: t.Staff, days: int, now: datetime
) -> None:
    text = (
        f"{leaver.name} leaves in {days} day{'s' if days != 1 else ''} ({leaver.leaving_on}). "
        + (
            f"Their accounts and open cases pass to {leaver.successor_key}."
            if leaver.successor_key
            else "No successor is named: their accounts pass to the other administrators."
        )
    )
    people = directory.with_roles({Role.SLT, Role.PRINCIPAL, Role.IT_ADMIN}, None)
    for person in people:
        for channel, target in (
            (AlertChannel.SLACK, person.slack_user_id),
            (AlertChannel.EMAIL, person.email),
        ):
            if target:
                enqueue(
                    session,
                    key=f"leaver:{leaver.key}:{days}:{channel.value}:{target}",
                    channel=channel,
                    target=target,
                    kind=AlertKind.LEAVER_WARNING,
                    now=now,
                    payload={"text": text, "subject": f"Staff leaving: {leaver.name}"},
                )


def check_after_change(
    session: Session, directory: Directory, *, now: datetime
) -> ComplianceReport:
    """R3, R6 (a DSL in post) and R13 at once after a configuration or staff change.

    The schedule re-checks them too.
    """
    report = ComplianceReport()
    for check in STANDING_CHECKS:
        if check.after_change:
            reconcile(session, directory, check, now=now, report=report)
    return report


def run_compliance(
    session: Session, directory: Directory, *, now: datetime, timezone: str = DEFAULT_TIMEZONE
) -> ComplianceReport:
    """Every scheduled policy check, in one transaction."""
    report = ComplianceReport()
    check_leavers(session, directory, now=now, report=report, timezone=timezone)
    settle_cases_without_dsl(session, directory, now=now, report=report)
    for check in STANDING_CHECKS:
        reconcile(session, directory, check, now=now, report=report)
    sweep_response_clocks(session, directory, now=now, report=report)
    sweep_handling_clocks(session, directory, now=now, report=report)
    settle_responded_cases(session, now=now, report=report)
    return report
