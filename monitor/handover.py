"""Staff leaving (R4): warnings, then administrator roles and open cases handed over, all audited."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit, cases
from monitor.constants import OPEN_CASE_STATES, Category, Severity
from monitor.directory import Directory
from monitor.rules.engine import HandoverPlan, plan_handover
from monitor.storage import tables as t


class HandoverRefused(Exception):
    """The handover would leave an account with fewer than two administrators."""


@dataclass
class HandoverResult:
    """What a handover did."""

    leaver: str
    plans: list[HandoverPlan] = field(default_factory=list)
    cases_moved: list[int] = field(default_factory=list)
    rotation_cases: list[int] = field(default_factory=list)


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


def _active_keys(session: Session) -> frozenset[str]:
    return frozenset(
        session.scalars(
            select(t.Staff.key).where(
                t.Staff.active.is_(True), t.Staff.left_at.is_(None), t.Staff.archived_at.is_(None)
            )
        )
    )


def plans_for(session: Session, leaver_key: str, successor_key: str | None) -> list[HandoverPlan]:
    """One plan per account the leaver administers."""
    leaver = _staff(session, leaver_key)
    if successor_key is not None:
        successor = _staff(session, successor_key)
        if not successor.active or successor.left_at is not None:
            raise HandoverRefused(f"successor {successor_key!r} is not an active member of staff")
    active = _active_keys(session)
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
    plans = plans_for(session, leaver_key, successor_key)
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
    plans = plans_for(session, leaver_key, successor_key)
    refusals = [p.refused for p in plans if p.refused]
    if refusals:
        raise HandoverRefused("; ".join(r for r in refusals if r))
    result = HandoverResult(leaver_key, plans)
    successor = _staff(session, successor_key) if successor_key else None
    for plan in plans:
        account = session.scalars(select(t.Account).where(t.Account.key == plan.account_key)).one()
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
            cases.notify(session, rotation, directory, kind="case_opened", now=now)
    session.flush()
    result.cases_moved = _move_cases(session, leaver, successor, now=now, actor=actor)
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
    session: Session, leaver: t.Staff, successor: t.Staff | None, *, now: datetime, actor: str
) -> list[int]:
    moved = []
    open_cases = session.scalars(
        select(t.Case).where(
            t.Case.assignee_id == leaver.id, t.Case.state.in_([s.value for s in OPEN_CASE_STATES])
        )
    ).all()
    for case in open_cases:
        new_owner = successor or _another_admin(session, case, leaver)
        cases.assign(
            session,
            case,
            new_owner,
            actor=actor,
            now=now,
            reason=f"handover: {leaver.key} has left",
        )
        moved.append(case.id)
    return moved


def _another_admin(session: Session, case: t.Case, leaver: t.Staff) -> t.Staff | None:
    if case.account_id is None:
        return None
    for row in _active_admin_rows(session, case.account_id):
        if row.staff_id != leaver.id and row.staff.active and row.staff.left_at is None:
            return row.staff
    return None
