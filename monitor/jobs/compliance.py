"""Policy checks that run on a schedule: R1 gaps, R2 clocks, R3 two admins, R4 leavers, R13 register."""

from __future__ import annotations

import logging
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
    CaseState,
    Category,
    Role,
    Severity,
)
from monitor.directory import Directory
from monitor.handover import HandoverRefused, run_handover
from monitor.outbox import enqueue
from monitor.rules.engine import (
    ClockStep,
    clock_step,
    in_monitoring_gap,
    leaver_warning_due,
    register_problems,
    two_admin_problem,
)
from monitor.storage import tables as t

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


def _open_one(
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
) -> None:
    """Open a case for a standing problem unless one is already open."""
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
        school_id=account.school_id if account else None,
        details={"categories": [category.value], **details},
    )
    if created:
        report.opened.append(case.id)
        cases.notify(session, case, directory, kind="case_opened", now=now)


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
        cases.change_state(session, case, CaseState.CLOSED, actor="policy", now=now, reason=reason)
        report.closed.append(case.id)


def _live_accounts(session: Session, *, polled_only: bool = False) -> list[t.Account]:
    """Accounts in the register (not archived); with ``polled_only`` just the enabled ones."""
    query = select(t.Account).where(t.Account.archived_at.is_(None))
    if polled_only:
        query = query.where(t.Account.enabled.is_(True))
    return list(session.scalars(query.order_by(t.Account.key)))


def check_two_admins(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R3: every account has at least two active administrators."""
    for account in _live_accounts(session):
        admins = session.scalars(
            select(t.Staff.key)
            .join(t.AccountAdmin, t.AccountAdmin.staff_id == t.Staff.id)
            .where(
                t.AccountAdmin.account_id == account.id,
                t.AccountAdmin.removed_at.is_(None),
                t.Staff.active.is_(True),
                t.Staff.left_at.is_(None),
                t.Staff.archived_at.is_(None),
            )
        ).all()
        problem = two_admin_problem(admins)
        prefix = f"two_admins:{account.key}:"
        if problem:
            _open_one(
                session,
                report,
                directory,
                prefix=prefix,
                category=Category.TWO_ADMINS,
                title=f"{account.key} {problem}",
                now=now,
                account=account,
                details={"admins": sorted(admins)},
                severity=Severity.HIGH,
            )
        else:
            _close_all(
                session,
                report,
                prefix=prefix,
                category=Category.TWO_ADMINS,
                now=now,
                reason=f"now has {len(set(admins))} active administrators",
            )


def check_register(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R13: every account has an approving senior leader and a linked school email."""
    for account in _live_accounts(session):
        approver = session.get(t.Staff, account.approved_by_id) if account.approved_by_id else None
        problems = register_problems(
            approved_by=approver.key if approver else None, linked_email=account.linked_email
        )
        prefix = f"account_register:{account.key}:"
        if problems:
            _open_one(
                session,
                report,
                directory,
                prefix=prefix,
                category=Category.ACCOUNT_REGISTER,
                title=f"{account.key} is not compliant: {'; '.join(problems)}",
                now=now,
                account=account,
                details={"problems": problems},
            )
        else:
            _close_all(
                session,
                report,
                prefix=prefix,
                category=Category.ACCOUNT_REGISTER,
                now=now,
                reason="register complete",
            )


def check_gaps(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R1: an account with no successful check for longer than its limit is a case for IT."""
    for account in _live_accounts(session, polled_only=True):
        health = session.get(t.AccountHealth, account.id)
        gap = in_monitoring_gap(
            last_success=health.last_success_at if health else None,
            watched_since=account.created_at,
            gap_limit=timedelta(seconds=account.gap_limit_s),
            now=now,
        )
        prefix = f"monitoring_gap:{account.key}:"
        if gap:
            last = (
                health.last_success_at.isoformat() if health and health.last_success_at else "never"
            )
            error = health.last_error if health else None
            _open_one(
                session,
                report,
                directory,
                prefix=prefix,
                category=Category.MONITORING_GAP,
                title=f"{account.key} has not been checked successfully since {last}",
                now=now,
                account=account,
                details={"last_success": last, "last_error": error},
                severity=Severity.HIGH,
            )
        else:
            _close_all(
                session,
                report,
                prefix=prefix,
                category=Category.MONITORING_GAP,
                now=now,
                reason="checked successfully again",
            )


def sweep_response_clocks(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R2: a reminder before the due time, escalation to SLT when it is missed."""
    rows = session.scalars(
        select(t.Case).where(
            t.Case.due_at.is_not(None),
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
            cases.notify(session, case, directory, kind="reminder", now=now)
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
            if CaseState(case.state) is not CaseState.ESCALATED:
                cases.change_state(
                    session,
                    case,
                    CaseState.ESCALATED,
                    actor="policy",
                    now=now,
                    reason="response target missed",
                )
            cases.notify(session, case, directory, kind="breach", now=now, escalation=True)
            report.breaches.append(case.id)


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
                report.handovers.append(leaver.key)
            except HandoverRefused as exc:
                _open_one(
                    session,
                    report,
                    directory,
                    prefix=f"handover_blocked:{leaver.key}:",
                    category=Category.TWO_ADMINS,
                    title=f"Handover for {leaver.name} blocked: {exc}",
                    now=now,
                    account=None,
                    details={"leaver": leaver.key},
                    severity=Severity.HIGH,
                )


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
                    kind="leaver_warning",
                    now=now,
                    payload={"text": text, "subject": f"Staff leaving: {leaver.name}"},
                )


def run_compliance(
    session: Session, directory: Directory, *, now: datetime, timezone: str = DEFAULT_TIMEZONE
) -> ComplianceReport:
    """Every scheduled policy check, in one transaction."""
    report = ComplianceReport()
    check_leavers(session, directory, now=now, report=report, timezone=timezone)
    check_two_admins(session, directory, now=now, report=report)
    check_register(session, directory, now=now, report=report)
    check_gaps(session, directory, now=now, report=report)
    sweep_response_clocks(session, directory, now=now, report=report)
    return report
