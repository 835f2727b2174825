"""Cases: opening (idempotent), state changes and assignment, every step an audit event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import audit
from monitor.constants import SEVERITY_ORDER, AlertChannel, CaseState, Category, Severity
from monitor.directory import Directory
from monitor.outbox import enqueue, refresh_case_messages
from monitor.rules.alerting import plan_case_alerts, state_change_is_quiet
from monitor.rules.emails import emailed
from monitor.rules.engine import CaseDecision
from monitor.rules.permissions import can_transition
from monitor.rules.routing import CATEGORY_PRIORITY, ROUTES, is_urgent
from monitor.storage import tables as t
from monitor.storage.queries.cases import school_key_of


class CaseRefused(Exception):
    """A change to a case that the policy does not allow."""


def log_event(
    session: Session,
    case: t.Case,
    action: str,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record one case event in the hash-chained audit log."""
    audit.record(
        session,
        at=now,
        actor=actor,
        action=action,
        subject=f"case:{case.id}",
        case_id=case.id,
        reason=reason,
        details=details,
    )


def find_by_key(session: Session, dedupe_key: str) -> t.Case | None:
    """The case with ``dedupe_key``."""
    return session.scalars(select(t.Case).where(t.Case.dedupe_key == dedupe_key)).one_or_none()


def open_case(  # noqa: PLR0913 - the case row's columns, keyword-only
    session: Session,
    *,
    dedupe_key: str,
    category: Category,
    severity: Severity,
    title: str,
    now: datetime,
    actor: str = "policy",
    item_id: int | None = None,
    account_id: int | None = None,
    school_id: int | None = None,
    restricted: bool = False,
    due_at: datetime | None = None,
    remind_at: datetime | None = None,
    police_step: bool = False,
    details: dict[str, Any] | None = None,
) -> tuple[t.Case, bool]:
    """Open a case unless one with ``dedupe_key`` exists; returns (case, created)."""
    existing = find_by_key(session, dedupe_key)
    if existing is not None:
        return existing, False
    case = t.Case(
        dedupe_key=dedupe_key,
        item_id=item_id,
        account_id=account_id,
        school_id=school_id,
        category=category.value,
        severity=severity.value,
        state=CaseState.NEW.value,
        restricted=restricted,
        title=title,
        opened_at=now,
        due_at=due_at,
        reminded_at=None,
        police_step="pending" if police_step else None,
        details={**(details or {}), **({"remind_at": remind_at.isoformat()} if remind_at else {})},
    )
    session.add(case)
    session.flush()
    log_event(
        session,
        case,
        "case.opened",
        actor=actor,
        now=now,
        details={
            "category": category.value,
            "severity": severity.value,
            "due_at": due_at.isoformat() if due_at else None,
            "restricted": restricted,
        },
    )
    if police_step:
        log_event(
            session,
            case,
            "case.police_step",
            actor=actor,
            now=now,
            reason="threat: consider a police report (R9)",
        )
    return case, True


def open_from_decision(
    session: Session,
    decision: CaseDecision,
    *,
    item: t.Item,
    school_id: int,
    now: datetime,
    scores: dict[str, float],
) -> tuple[t.Case, bool]:
    """Open the case an engine decision asks for."""
    return open_case(
        session,
        dedupe_key=decision.dedupe_key,
        category=decision.category,
        severity=decision.severity,
        title=decision.title,
        now=now,
        item_id=item.id,
        account_id=item.account_id,
        school_id=school_id,
        restricted=decision.restricted,
        due_at=decision.due_at,
        remind_at=decision.remind_at,
        police_step=decision.police_step,
        details={
            "categories": sorted(c.value for c in decision.categories),
            "scores": scores,
            **({"handling": decision.handling.to_json()} if decision.handling else {}),
        },
    )


def reclassify(
    session: Session,
    case: t.Case,
    decision: CaseDecision,
    *,
    now: datetime,
    scores: dict[str, float],
) -> bool:
    """Add the categories a re-assessment found to an unsettled case; True when it changed."""
    # A comment first scored by the rules alone (the model was down) may turn out abusive,
    # or worse, once the model scores it: the existing case takes the new categories, the
    # most serious one becomes its category, and the stricter routing applies from then on.
    # A case a person closed or dismissed keeps their judgement.
    if case.case_state in (CaseState.CLOSED, CaseState.DISMISSED):
        return False
    before = frozenset(Category(c) for c in case.details.get("categories", [case.category]))
    added = decision.categories - before
    if not added:
        return False
    merged = before | decision.categories
    previous = case.case_category
    category = next((c for c in CATEGORY_PRIORITY if c in merged), previous)
    severity = max(case.case_severity, decision.severity, key=SEVERITY_ORDER.__getitem__)
    case.category = category.value
    case.severity = severity.value
    case.restricted = case.restricted or decision.restricted
    details: dict[str, Any] = {
        **case.details,
        "categories": sorted(c.value for c in merged),
        "scores": scores,
    }
    if case.due_at is None and decision.due_at is not None:
        case.due_at = decision.due_at
        if decision.remind_at is not None:
            details["remind_at"] = decision.remind_at.isoformat()
    if "handling" not in details and decision.handling is not None and case.handled_at is None:
        details["handling"] = decision.handling.to_json()  # R8: found abusive only now
    case.details = details
    log_event(
        session,
        case,
        "case.reclassified",
        actor="policy",
        now=now,
        reason="re-assessed with the model",
        details={
            "added": sorted(c.value for c in added),
            "from": previous.value,
            "to": category.value,
            "severity": severity.value,
            "restricted": case.restricted,
            "due_at": case.due_at.isoformat() if case.due_at else None,
        },
    )
    if decision.police_step and case.police_step is None:
        case.police_step = "pending"
        log_event(
            session,
            case,
            "case.police_step",
            actor="policy",
            now=now,
            reason="threat: consider a police report (R9)",
        )
    # messages already posted show the new category, and nothing a restriction now hides
    refresh_case_messages(session, case.id, actor="policy", now=now)
    return True


def change_state(
    session: Session,
    case: t.Case,
    new: CaseState,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> bool:
    """Move a case to ``new``; returns False when it already was there."""
    current = case.case_state
    if new == current:
        return False
    if not can_transition(current, new):
        raise CaseRefused(f"case {case.id} is {current.value} and cannot become {new.value}")
    case.state = new.value
    if new is CaseState.RESPONDED and case.responded_at is None:
        case.responded_at = now
    if new in (CaseState.CLOSED, CaseState.DISMISSED) and case.closed_at is None:
        case.closed_at = now
    log_event(
        session,
        case,
        "case.state",
        actor=actor,
        now=now,
        reason=reason,
        details={"from": current.value, "to": new.value},
    )
    # the Slack messages about the case are updated in place, with who did it in the thread
    # ... or, for housekeeping on a case already settled, only updated in place
    refresh_case_messages(
        session,
        case.id,
        actor=actor,
        now=now,
        state=new.value,
        reason=reason,
        quiet=state_change_is_quiet(current, new, actor=actor),
    )
    return True


def record_response(
    session: Session,
    case: t.Case,
    *,
    at: datetime,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> bool:
    """Stop the R2 clock (False if it had already stopped); only a query case becomes responded."""
    # A query or media enquiry is then ``responded``. Any other case (abuse, a threat, a
    # safeguarding concern that also asked something) keeps its state: answering the
    # question does not deal with the rest of it.
    if case.responded_at is not None:
        return False
    case.responded_at = at
    current = case.case_state
    if ROUTES[case.case_category].response_due and can_transition(current, CaseState.RESPONDED):
        change_state(session, case, CaseState.RESPONDED, actor=actor, now=now, reason=reason)
    else:
        log_event(
            session,
            case,
            "clock.stopped",
            actor=actor,
            now=now,
            reason=reason,
            details={"responded_at": at.isoformat(), "state": current.value},
        )
    return True


def assign(
    session: Session,
    case: t.Case,
    staff: t.Staff | None,
    *,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Give the case to ``staff`` (None: unassigned)."""
    previous = case.assignee_id
    case.assignee_id = staff.id if staff else None
    if previous != case.assignee_id:
        log_event(
            session,
            case,
            "case.assigned",
            actor=actor,
            now=now,
            reason=reason,
            details={"to": staff.key if staff else None},
        )


def notify(
    session: Session,
    case: t.Case,
    directory: Directory,
    *,
    kind: str,
    now: datetime,
    escalation: bool = False,
) -> int:
    """Put the case's alerts in the outbox; returns how many were new."""
    school_key = school_key_of(session, case)
    route_categories = frozenset(
        Category(c) for c in case.details.get("categories", [case.category])
    )
    plans = plan_case_alerts(
        directory,
        category=case.case_category,
        categories=route_categories,
        school_key=school_key,
        restricted=case.restricted,
        urgent=escalation or _is_urgent(case),
        escalation=escalation,
    )
    added = 0
    for plan in plans:
        if plan.channel is AlertChannel.EMAIL and not emailed(kind):
            continue  # one email per case, again only on a reminder or escalation
        added += enqueue(
            session,
            key=plan.key(case.id, kind),
            channel=plan.channel,
            target=plan.target,
            kind=kind,
            now=now,
            case_id=case.id,
            urgent=plan.urgent,
            payload={"audience": plan.audience.value, **({"no_dsl": True} if plan.no_dsl else {})},
        )
    return added


def _is_urgent(case: t.Case) -> bool:
    categories = [Category(c) for c in case.details.get("categories", [case.category])]
    return is_urgent([*categories, case.case_category])


def open_cases_for(session: Session, category: Category, dedupe_prefix: str) -> list[t.Case]:
    """Open cases of ``category`` whose key starts with ``dedupe_prefix``."""
    from monitor.constants import OPEN_CASE_STATES

    return list(
        session.scalars(
            select(t.Case).where(
                t.Case.category == category.value,
                t.Case.dedupe_key.startswith(dedupe_prefix),
                t.Case.state.in_([s.value for s in OPEN_CASE_STATES]),
            )
        )
    )
