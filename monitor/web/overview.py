"""The accounts-and-compliance page and the audit log page (data only; access: policy_gate)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.constants import DEFAULT_TIMEZONE, OPEN_CASE_STATES, Category
from monitor.directory import Directory, Person
from monitor.display import when
from monitor.notify.case_view import staff_names
from monitor.rules.engine import two_admin_problem
from monitor.storage import tables as t
from monitor.web import policy_gate
from monitor.web.views import facts_of, in_words, platform_capabilities

# What fixes each standing problem, for the person reading the accounts page.
FIXES: dict[Category, str] = {
    Category.MONITORING_GAP: "check the account's credentials and the last error; polling resumes by itself",
    Category.TWO_ADMINS: "name a second administrator in accounts[].admins and run `monitor sync`",
    Category.ACCOUNT_REGISTER: "set accounts[].approved_by and accounts[].linked_email",
    Category.CREDENTIAL_ROTATION: "rotate the account's password or token and update the secret",
    Category.SCHOOL_WITHOUT_DSL: "give someone the dsl or deputy_dsl role for the school",
    Category.CONNECTOR_AUTH: "the platform refused the credentials: renew them",
    Category.REMOVAL_OVERDUE: "the hidden content is still visible: act on the platform by hand",
}


@dataclass(frozen=True)
class AccountLine:
    key: str
    school: str
    platform: str
    handle: str
    enabled: bool
    last_poll: str
    gap: str
    in_gap: bool
    last_error: str
    capabilities: str
    admins: str
    two_admins: str
    approver: str
    linked_email: str
    problems: list[tuple[int, str, str]]  # case id, category, what fixes it


def accounts_overview(
    session: Session, directory: Directory, person: Person, *, now: datetime
) -> list[AccountLine]:
    """Every account of the schools ``person`` serves, with health and standing problems."""
    lines = []
    rows = session.execute(
        select(t.Account, t.School)
        .join(t.School, t.School.id == t.Account.school_id)
        .where(t.Account.archived_at.is_(None))
        .order_by(t.School.name, t.Account.key)
    ).all()
    for account, school in rows:
        if not person.serves(school.key):
            continue
        health = session.get(t.AccountHealth, account.id)
        admins = [
            admin.staff
            for admin in session.scalars(
                select(t.AccountAdmin).where(
                    t.AccountAdmin.account_id == account.id, t.AccountAdmin.removed_at.is_(None)
                )
            )
        ]
        in_post = [
            s.key
            for s in admins
            if (p := directory.person(s.key)) and directory.in_post(p, school.key)
        ]
        approver = session.get(t.Staff, account.approved_by_id) if account.approved_by_id else None
        last = health.last_success_at if health else None
        gap_s = (now - last).total_seconds() if last else None
        problems = [
            (case.id, case.category, FIXES.get(Category(case.category), "see the case"))
            for case in session.scalars(
                select(t.Case)
                .where(
                    t.Case.account_id == account.id,
                    t.Case.state.in_([s.value for s in OPEN_CASE_STATES]),
                    t.Case.item_id.is_(None),
                )
                .order_by(t.Case.id)
            )
        ]
        capabilities = platform_capabilities(account.platform)
        lines.append(
            AccountLine(
                key=account.key,
                school=school.name,
                platform=account.platform,
                handle=account.handle,
                enabled=account.enabled,
                last_poll=when(last, school.timezone or DEFAULT_TIMEZONE) if last else "never",
                gap=in_words(gap_s) if gap_s is not None else "never polled",
                in_gap=gap_s is None or gap_s > account.gap_limit_s,
                last_error=(health.last_error_kind or "") if health else "",
                capabilities=", ".join(sorted(capabilities)) if capabilities else "",
                admins=", ".join(s.name for s in admins) or "none",
                two_admins=two_admin_problem(in_post) or "two or more in post",
                approver=approver.name if approver else "not approved",
                linked_email=account.linked_email or "none",
                problems=problems,
            )
        )
    return lines


@dataclass(frozen=True)
class AuditLine:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    reason: str


@dataclass(frozen=True)
class AuditPage:
    lines: list[AuditLine]
    checked: int
    breaks: list[str]
    older: int | None  # the seq to page back from, if there is more


def audit_page(
    session: Session,
    directory: Directory,
    person: Person,
    *,
    before: int | None,
    limit: int = 100,
    verify: bool = False,
) -> AuditPage:
    """The newest events (before ``before``), names for ids; a safeguarding case's reasons only
    for those who may read that case."""
    query = select(t.AuditEvent).order_by(t.AuditEvent.seq.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(t.AuditEvent.seq < before)
    events = list(session.scalars(query))
    more = len(events) > limit
    events = events[:limit]
    names = staff_names(session, {e.actor for e in events})
    lines = []
    for event in events:
        reason = event.reason or ""
        if event.case_id is not None and reason:
            case = session.get(t.Case, event.case_id)
            school = session.get(t.School, case.school_id) if case and case.school_id else None
            if case is not None and not policy_gate.may_see_content(
                directory, person, facts_of(case, school.key if school else None)
            ):
                reason = "(withheld: safeguarding case)"
        lines.append(
            AuditLine(
                seq=event.seq,
                at=when(event.at),
                actor=names.get(event.actor, event.actor),
                action=event.action,
                subject=event.subject,
                reason=reason,
            )
        )
    checked, breaks = audit.verify_chain(session) if verify else (0, [])
    return AuditPage(
        lines=lines,
        checked=checked,
        breaks=[f"event {b.seq}: {b.problem}" for b in breaks],
        older=events[-1].seq if more and events else None,
    )
