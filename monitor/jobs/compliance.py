"""Scheduled policy checks: R1 gaps, R2 clocks, R3 two admins, R4 leavers, R6 DSL, R13 register."""

from __future__ import annotations

import logging
from collections import Counter
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
from monitor.directory import Directory, local_today
from monitor.handover import HandoverRefused, run_handover, staff_in_post
from monitor.outbox import enqueue
from monitor.rules.alerting import dsls_in_post
from monitor.rules.engine import (
    ClockStep,
    clock_step,
    dsl_problem,
    in_monitoring_gap,
    leaver_warning_due,
    register_problems,
    responded_case_settles,
    two_admin_problem,
)
from monitor.rules.handling import HandlingClock, HandlingStep, handling_step, is_handled
from monitor.rules.permissions import assignee_refusal
from monitor.rules.routing import RESTRICTED_VIEWERS
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
        cases.notify(session, case, directory, kind="case_opened", now=now)


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


def _close_orphans(
    session: Session,
    report: ComplianceReport,
    *,
    category: Category,
    checked: list[t.Account],
    now: datetime,
    reason: str,
) -> None:
    """Close an account's standing case once the account is no longer checked (archived, disabled)."""
    # without this, the case of an account removed from the configuration stays open for ever
    live = {account.id for account in checked}
    for case in cases.open_cases_for(session, category, f"{category.value}:"):
        if case.account_id is not None and case.account_id not in live:
            _close(session, report, case, now=now, reason=reason)


def check_two_admins(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R3: every account has at least two active administrators."""
    accounts = _live_accounts(session)
    _close_orphans(
        session,
        report,
        category=Category.TWO_ADMINS,
        checked=accounts,
        now=now,
        reason="the account is no longer in the register",
    )
    for account in accounts:
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
        problem = two_admin_problem(admins)
        prefix = f"two_admins:{account.key}:"
        if problem:
            _open_one(
                session,
                report,
                directory,
                prefix=prefix,
                category=Category.TWO_ADMINS,
                title=f"{account.key} {problem}"
                + (f" ({', '.join(gone)} past their leaving date)" if gone else ""),
                now=now,
                account=account,
                details={"admins": sorted(admins), "past_leaving_date": gone},
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


def check_dsl_in_post(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R6: every school with an enabled account has a DSL or deputy DSL in post."""
    category = Category.SCHOOL_WITHOUT_DSL
    schools = list(
        session.scalars(
            select(t.School).where(t.School.archived_at.is_(None)).order_by(t.School.key)
        )
    )
    watched = Counter(account.school_id for account in _live_accounts(session, polled_only=True))
    for school in schools:
        dsls = sorted(p.key for p in dsls_in_post(directory, school.key))
        problem = dsl_problem(enabled_accounts=watched[school.id], dsls_in_post=dsls)
        prefix = f"{category.value}:{school.key}:"
        if problem:
            # the school's DSLs who no longer count, to say what changed
            today = directory.today(school.key)
            gone = [
                f"{p.key} left {p.leaving_on.isoformat()}"
                if p.leaving_on is not None and p.leaving_on < today
                else f"{p.key} inactive"
                for p in directory.people
                if directory.effective_roles(p) & RESTRICTED_VIEWERS
                and p.serves(school.key)
                and not directory.in_post(p, school.key)
            ]
            _open_one(
                session,
                report,
                directory,
                prefix=prefix,
                category=category,
                title=f"{school.name} {problem}" + (f" ({', '.join(gone)})" if gone else ""),
                now=now,
                account=None,
                school=school,
                details={"school": school.key, "not_in_post": gone},
                severity=Severity.HIGH,
            )
        else:
            _close_all(
                session,
                report,
                prefix=prefix,
                category=category,
                now=now,
                reason=(
                    f"a DSL or deputy DSL is in post: {', '.join(dsls)}"
                    if dsls
                    else "none of the school's accounts is watched"
                ),
            )
    live = {school.id for school in schools}
    for case in cases.open_cases_for(session, category, f"{category.value}:"):
        if case.school_id not in live:
            _close(session, report, case, now=now, reason="the school is no longer in the register")


def check_register(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """R13: every account has an approving senior leader and a linked school email."""
    accounts = _live_accounts(session)
    _close_orphans(
        session,
        report,
        category=Category.ACCOUNT_REGISTER,
        checked=accounts,
        now=now,
        reason="the account is no longer in the register",
    )
    for account in accounts:
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
    accounts = _live_accounts(session, polled_only=True)
    _close_orphans(
        session,
        report,
        category=Category.MONITORING_GAP,
        checked=accounts,
        now=now,
        reason="the account is no longer polled",
    )
    for account in accounts:
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


# R8: what each handling step records and tells, and whether it escalates to SLT
_HANDLING_STEPS: dict[HandlingStep, tuple[str, str, bool]] = {
    HandlingStep.REMIND: ("handling_reminded", "handling_reminder", False),
    HandlingStep.FIRST_ACTION_MISSED: ("handling_first_missed", "handling_missed", True),
    HandlingStep.REMOVAL_MISSED: ("handling_removal_missed", "removal_missed", True),
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
        if responded_case_settles(
            state=CaseState(case.state), responded_at=case.responded_at, now=now
        ):
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
            else:
                report.handovers.append(leaver.key)
                _close_all(
                    session,
                    report,
                    prefix=f"handover_blocked:{leaver.key}:",
                    category=Category.TWO_ADMINS,
                    now=now,
                    reason="the handover went ahead",
                )


def settle_cases_without_dsl(
    session: Session, directory: Directory, *, now: datetime, report: ComplianceReport
) -> None:
    """Close a "safeguarding case has no DSL" case once a DSL in post has it, or it is finished."""
    for alarm in cases.open_cases_for(
        session, Category.SAFEGUARDING_NO_DSL, f"{Category.SAFEGUARDING_NO_DSL.value}:"
    ):
        case = session.get(t.Case, int(alarm.details.get("case", 0)))
        if case is not None and CaseState(case.state) in OPEN_CASE_STATES:
            owner = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
            person = directory.person(owner.key) if owner else None
            school = session.get(t.School, case.school_id) if case.school_id else None
            school_key = school.key if school else None
            if person is None or assignee_refusal(
                person.key,
                roles=directory.effective_roles(person),
                in_post=directory.in_post(person, school_key),
                serves_school=person.serves(school_key),
                safeguarding=True,
            ):
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
                    kind="leaver_warning",
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
    check_two_admins(session, directory, now=now, report=report)
    check_dsl_in_post(session, directory, now=now, report=report)
    check_register(session, directory, now=now, report=report)
    return report


def run_compliance(
    session: Session, directory: Directory, *, now: datetime, timezone: str = DEFAULT_TIMEZONE
) -> ComplianceReport:
    """Every scheduled policy check, in one transaction."""
    report = ComplianceReport()
    check_leavers(session, directory, now=now, report=report, timezone=timezone)
    settle_cases_without_dsl(session, directory, now=now, report=report)
    check_two_admins(session, directory, now=now, report=report)
    check_dsl_in_post(session, directory, now=now, report=report)
    check_register(session, directory, now=now, report=report)
    check_gaps(session, directory, now=now, report=report)
    sweep_response_clocks(session, directory, now=now, report=report)
    sweep_handling_clocks(session, directory, now=now, report=report)
    settle_responded_cases(session, now=now, report=report)
    return report
