"""Staff leaving (R4): warnings, then administrator roles and open cases handed over, all audited."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit, cases
from monitor.constants import OPEN_CASE_STATES, AlertKind, Category, Role, Severity
from monitor.directory import Directory, Person, local_today
from monitor.rules.engine import HandoverPlan, in_post, plan_handover
from monitor.rules.leavers import leaving_date_refusal, successor_refusal
from monitor.rules.permissions import Candidate, handover_assignee
from monitor.rules.routing import RESTRICTED_VIEWERS
from monitor.rules.visibility import is_safeguarding
from monitor.storage import tables as t
from monitor.storage.queries.accounts import account_by_key
from monitor.storage.queries.cases import school_of


class HandoverRefused(Exception):
    """The handover would leave an account with fewer than two administrators."""


@dataclass
class HandoverResult:
    """What a handover did."""

    leaver: str
    plans: list[HandoverPlan] = field(default_factory=list)
    cases_moved: list[int] = field(default_factory=list)
    rotation_cases: list[int] = field(default_factory=list)
    # safeguarding cases left unassigned: no DSL or deputy was in post to take them
    without_dsl: list[int] = field(default_factory=list)


def _staff(session: Session, key: str) -> t.Staff:
    row = session.scalars(select(t.Staff).where(t.Staff.key == key)).one_or_none()
    if row is None:
        raise HandoverRefused(f"unknown staff id {key!r}")
    return row


def _active_admin_rows(session: Session, account_id: int) -> list[t.AccountAdmin]:
    return list(
        session.scalars(
            select(t.AccountAdmin).where(
                t.AccountAdmin.account_id == account_id, t.AccountAdmin.removed_at.is_(None)
            )
        )
    )


def staff_in_post(staff: t.Staff, *, today: date) -> bool:
    """Whether they still count: active, not handed over or archived, not past their last day."""
    return in_post(
        active=staff.active and staff.left_at is None and staff.archived_at is None,
        leaving_on=staff.leaving_on,
        today=today,
    )


def _in_post_keys(session: Session, today: date) -> frozenset[str]:
    rows = session.scalars(
        select(t.Staff).where(
            t.Staff.active.is_(True), t.Staff.left_at.is_(None), t.Staff.archived_at.is_(None)
        )
    )
    return frozenset(row.key for row in rows if staff_in_post(row, today=today))


def plans_for(
    session: Session, leaver_key: str, successor_key: str | None, *, now: datetime
) -> list[HandoverPlan]:
    """One plan per account the leaver administers."""
    leaver = _staff(session, leaver_key)
    if successor_key is not None:
        successor = _staff(session, successor_key)
        if not successor.active or successor.left_at is not None:
            raise HandoverRefused(f"successor {successor_key!r} is not an active member of staff")
    plans = []
    accounts = session.scalars(
        select(t.Account)
        .join(t.AccountAdmin, t.AccountAdmin.account_id == t.Account.id)
        .where(
            t.AccountAdmin.staff_id == leaver.id,
            t.AccountAdmin.removed_at.is_(None),
            t.Account.archived_at.is_(None),
        )
        .order_by(t.Account.key)
    ).all()
    for account in accounts:
        # R3/R4: someone past their leaving date neither remains nor takes over
        active = _in_post_keys(session, local_today(now, account.school.timezone))
        if successor_key is not None and successor_key not in active:
            raise HandoverRefused(f"successor {successor_key!r} is not an active member of staff")
        if successor_key is not None:
            why = successor_refusal(
                successor_key,
                successor_schools=_staff(session, successor_key).schools or (),
                account_key=account.key,
                account_school=account.school.key,
            )
            if why:
                raise HandoverRefused(why)
        admins = frozenset(row.staff.key for row in _active_admin_rows(session, account.id))
        plans.append(
            plan_handover(
                account_key=account.key,
                admins=admins,
                leaver=leaver_key,
                successor=successor_key,
                active=active,
            )
        )
    return plans


def schedule_leaving(
    session: Session,
    leaver_key: str,
    *,
    on: date,
    successor_key: str | None,
    actor: str,
    now: datetime,
) -> list[HandoverPlan]:
    """Record a leaving date (refused if the handover could not keep two administrators)."""
    why = leaving_date_refusal(on, today=local_today(now, None))
    if why:
        raise HandoverRefused(why)
    plans = plans_for(session, leaver_key, successor_key, now=now)
    refusals = [p.refused for p in plans if p.refused]
    if refusals:
        raise HandoverRefused("; ".join(r for r in refusals if r))
    leaver = _staff(session, leaver_key)
    leaver.leaving_on = on
    leaver.successor_key = successor_key
    audit.record(
        session,
        at=now,
        actor=actor,
        action="staff.leaving_scheduled",
        subject=f"staff:{leaver_key}",
        details={
            "on": on.isoformat(),
            "successor": successor_key,
            "accounts": [p.account_key for p in plans],
        },
    )
    return plans


def run_handover(
    session: Session, leaver_key: str, *, now: datetime, directory: Directory, actor: str = "policy"
) -> HandoverResult:
    """Hand over on the leaving day: roles, open cases, credential rotation, then the R3 re-check."""
    leaver = _staff(session, leaver_key)
    successor_key = leaver.successor_key
    plans = plans_for(session, leaver_key, successor_key, now=now)
    refusals = [p.refused for p in plans if p.refused]
    if refusals:
        raise HandoverRefused("; ".join(r for r in refusals if r))
    result = HandoverResult(leaver_key, plans)
    successor = _staff(session, successor_key) if successor_key else None
    for plan in plans:
        account = account_by_key(session, plan.account_key)
        subject = f"account:{account.key}"
        for row in _active_admin_rows(session, account.id):
            if row.staff_id == leaver.id:
                row.removed_at = now
                audit.record(
                    session,
                    at=now,
                    actor=actor,
                    action="account.admin_removed",
                    subject=subject,
                    reason="handover: staff leaving",
                    details={"staff": leaver_key},
                )
        if plan.added and successor is not None:
            session.add(
                t.AccountAdmin(
                    account_id=account.id, staff_id=successor.id, added_at=now, source="handover"
                )
            )
            audit.record(
                session,
                at=now,
                actor=actor,
                action="account.admin_added",
                subject=subject,
                reason=f"handover from {leaver_key}",
                details={"staff": successor.key},
            )
        rotation, created = cases.open_case(
            session,
            dedupe_key=f"credential_rotation:{account.key}:{leaver_key}",
            category=Category.CREDENTIAL_ROTATION,
            severity=Severity.MEDIUM,
            title=f"Rotate the credentials of {account.key}: {leaver.name} has left",
            now=now,
            actor=actor,
            account_id=account.id,
            school_id=account.school_id,
            details={"categories": [Category.CREDENTIAL_ROTATION.value], "leaver": leaver_key},
        )
        if created:
            result.rotation_cases.append(rotation.id)
            cases.notify(session, rotation, directory, kind=AlertKind.CASE_OPENED, now=now)
    session.flush()
    result.cases_moved, result.without_dsl = _move_cases(
        session, leaver, successor, now=now, actor=actor, directory=directory
    )
    leaver.active = False
    leaver.left_at = now
    audit.record(
        session,
        at=now,
        actor=actor,
        action="staff.left",
        subject=f"staff:{leaver_key}",
        details={"successor": successor_key, "accounts": [p.account_key for p in plans]},
    )
    return result


def _move_cases(
    session: Session,
    leaver: t.Staff,
    successor: t.Staff | None,
    *,
    now: datetime,
    actor: str,
    directory: Directory,
) -> tuple[list[int], list[int]]:
    """Each open case of the leaver to whoever ``handover_assignee`` picks; returns (moved, no DSL)."""
    moved, without_dsl = [], []
    open_cases = session.scalars(
        select(t.Case)
        .where(
            t.Case.assignee_id == leaver.id, t.Case.state.in_([s.value for s in OPEN_CASE_STATES])
        )
        .order_by(t.Case.id)
    ).all()
    for case in open_cases:
        school = school_of(session, case)
        school_key = school.key if school else None
        safeguarding = is_safeguarding(category=case.case_category, restricted=case.restricted)
        # the leaver is still in post on their last day: they are never offered their own cases
        dsls = [
            p for p in directory.with_roles(RESTRICTED_VIEWERS, school_key) if p.key != leaver.key
        ]
        chosen = handover_assignee(
            leaver=leaver.key,
            successor=_candidate(directory, successor.key, school_key) if successor else None,
            admins=[
                c
                for key in _other_admin_keys(session, case, leaver)
                if (c := _candidate(directory, key, school_key)) is not None
            ],
            dsls=[
                _candidate_of(directory, p, school_key)
                for p in sorted(dsls, key=lambda p: (Role.DSL not in p.roles, p.key))
            ],
            safeguarding=safeguarding,
        )
        new_owner = (
            session.scalars(select(t.Staff).where(t.Staff.key == chosen)).one() if chosen else None
        )
        reason = f"handover: {leaver.key} has left"
        if new_owner is None and safeguarding:
            reason += "; no DSL or deputy DSL in post to take this safeguarding case"
        cases.assign(session, case, new_owner, actor=actor, now=now, reason=reason)
        moved.append(case.id)
        if new_owner is None and safeguarding:
            without_dsl.append(case.id)
            _tell_leaders_no_dsl(session, case, leaver, school, directory, now=now, actor=actor)
    return moved, without_dsl


def _candidate_of(directory: Directory, person: Person, school_key: str | None) -> Candidate:
    return Candidate(
        person.key,
        directory.effective_roles(person),
        in_post=directory.in_post(person, school_key),
        serves_school=person.serves(school_key),
    )


def _candidate(directory: Directory, key: str, school_key: str | None) -> Candidate | None:
    person = directory.person(key)
    return _candidate_of(directory, person, school_key) if person else None


def _other_admin_keys(session: Session, case: t.Case, leaver: t.Staff) -> list[str]:
    """The other administrators of the case's account, by staff id."""
    if case.account_id is None:
        return []
    return sorted(
        row.staff.key
        for row in _active_admin_rows(session, case.account_id)
        if row.staff_id != leaver.id
    )


def _tell_leaders_no_dsl(
    session: Session,
    case: t.Case,
    leaver: t.Staff,
    school: t.School | None,
    directory: Directory,
    *,
    now: datetime,
    actor: str,
) -> None:
    """A high-severity case for SLT: a safeguarding case has no DSL (counts and ids only)."""
    where = school.name if school else "the trust"
    alarm, created = cases.open_case(
        session,
        dedupe_key=f"safeguarding_no_dsl:{case.id}",
        category=Category.SAFEGUARDING_NO_DSL,
        severity=Severity.HIGH,
        title=(
            f"Safeguarding case {case.id} has no DSL: {leaver.name} has left and no DSL or "
            f"deputy DSL is in post for {where}; name one, who then takes case {case.id}"
        ),
        now=now,
        actor=actor,
        account_id=case.account_id,
        school_id=case.school_id,
        details={
            "categories": [Category.SAFEGUARDING_NO_DSL.value],
            "case": case.id,
            "leaver": leaver.key,
        },
    )
    if created:
        cases.notify(session, alarm, directory, kind=AlertKind.CASE_OPENED, now=now)
