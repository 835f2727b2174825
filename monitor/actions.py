"""Requesting actions on cases: permission checks, then either done at once or queued for the worker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor import cases
from monitor.constants import ActionKind, ActionStatus, AlertKind, Role
from monitor.directory import Directory, Person, local_today
from monitor.handover import staff_in_post
from monitor.rules.permissions import (
    PLATFORM_ACTIONS,
    POLICE_OUTCOMES,
    STATE_AFTER,
    assignee_refusal,
    refusal,
)
from monitor.rules.visibility import ContentAccess, is_safeguarding, may_see_content
from monitor.storage import tables as t
from monitor.storage.queries.cases import school_key_of, school_of

# Public replies a moderator may send (R5: tell the audience why). {school} is filled in.
REPLY_TEMPLATES: dict[str, str] = {
    "removed": "We have hidden a comment that broke our community guidelines. "
    "Please keep conversations on {school}'s pages kind and respectful.",
    "acknowledge": "Thank you for getting in touch with {school}. We have passed your message "
    "to the right member of staff and will reply as soon as we can.",
    "contact_office": "Thank you for your message. For anything about an individual child, "
    "please contact the {school} office directly rather than posting here.",
}


@dataclass(frozen=True)
class Actor:
    """Who asks for an action: a member of staff, or the policy itself."""

    key: str
    name: str
    roles: frozenset[Role]
    is_policy: bool = False
    schools: frozenset[str] = frozenset()  # the schools they serve; empty: trust-wide

    @classmethod
    def of(cls, person: Person, directory: Directory) -> Actor:
        """The actor for a member of staff, with the roles routing gives them."""
        return cls(
            person.key, person.name, directory.effective_roles(person), schools=person.schools
        )

    def serves(self, school_key: str | None) -> bool:
        """True when they cover ``school_key`` (the policy and trust-wide staff cover every one)."""
        return (
            self.is_policy or not self.schools or school_key is None or school_key in self.schools
        )


POLICY = Actor("policy", "Automatic policy", frozenset(Role), is_policy=True)


class ActionRefused(Exception):
    """The action is not allowed; the message says why, for the person who asked."""


class ActionUnderWay(ActionRefused):
    """The same action on the same case is already pending or done: request ``request_id``."""

    def __init__(self, message: str, request: t.ActionRequest) -> None:
        super().__init__(message)
        self.request_id = request.id


# Platform actions done once per case (a second hide would file a second report where the
# platform cannot hide): a pending, running or done one stands until its opposite is asked.
ONCE_PER_CASE = frozenset(
    {
        ActionKind.HIDE,
        ActionKind.UNHIDE,
        ActionKind.REMOVE,
        ActionKind.BLOCK,
        ActionKind.MUTE,
        ActionKind.REPORT,
    }
)
_OPPOSITE = {ActionKind.HIDE: ActionKind.UNHIDE, ActionKind.UNHIDE: ActionKind.HIDE}
_STANDING = (ActionStatus.PENDING.value, ActionStatus.RUNNING.value, ActionStatus.DONE.value)


def action_under_way(session: Session, case: t.Case, kind: ActionKind) -> t.ActionRequest | None:
    """The pending, running or done ``kind`` on ``case`` that still stands, if there is one."""
    if kind not in ONCE_PER_CASE:
        return None
    kinds = [kind.value] + ([_OPPOSITE[kind].value] if kind in _OPPOSITE else [])
    latest = session.scalars(
        select(t.ActionRequest)
        .where(
            t.ActionRequest.case_id == case.id,
            t.ActionRequest.kind.in_(kinds),
            t.ActionRequest.status.in_(_STANDING),
        )
        .order_by(t.ActionRequest.id.desc())
        .limit(1)
    ).first()
    return latest if latest is not None and latest.kind == kind.value else None


def under_way_text(request: t.ActionRequest, directory: Directory | None = None) -> str:
    """``hide is already queued (request 7, asked by Carol Jones at 10:02 UTC)``, and the like."""
    person = directory.person(request.requested_by) if directory is not None else None
    who = person.name if person is not None else request.requested_by
    when = request.requested_at.strftime("%d %b %H:%M UTC")
    status = {
        ActionStatus.PENDING.value: "already queued for the worker",
        ActionStatus.RUNNING.value: "already being carried out",
        ActionStatus.DONE.value: "already done",
    }.get(request.status, request.status)
    detail = request.result.get("detail") if request.status == ActionStatus.DONE.value else None
    return (
        f"{request.kind} is {status}{f' ({detail})' if detail else ''}: request {request.id}, "
        f"asked by {who} at {when}"
    )


def _check_permitted(
    session: Session,
    case: t.Case,
    kind: ActionKind,
    *,
    actor: Actor,
    now: datetime,
    directory: Directory,
) -> None:
    """Raise ActionRefused (logged on the case) unless ``actor`` may ``kind`` this case."""
    school_key = school_key_of(session, case)
    person = directory.person(actor.key)
    # R6: while no DSL or deputy is in post, whoever is alerted in their place acts as they would
    stand_in = (
        may_see_content(
            directory,
            person,
            school_key=school_key,
            category=case.case_category,
            restricted=case.restricted,
        ).access
        is ContentAccess.STAND_IN
    )
    why = refusal(
        actor.roles,
        kind,
        category=case.case_category,
        restricted=case.restricted,
        state=case.case_state,
        serves_school=actor.serves(school_key),
        police_step=case.police_step,
        stand_in=stand_in,
    )
    if why:
        cases.log_event(
            session,
            case,
            "action.refused",
            actor=actor.key,
            now=now,
            reason=why,
            details={"action": kind.value},
        )
        raise ActionRefused(why)


def request_action(
    session: Session,
    case: t.Case,
    kind: ActionKind,
    *,
    actor: Actor,
    now: datetime,
    directory: Directory,
    reason: str | None = None,
    params: dict[str, Any] | None = None,
    dry_run: bool = False,
    idempotency_key: str | None = None,
) -> t.ActionRequest:
    """Check, record and (for case-only actions) carry out an action; platform actions queue."""
    params = dict(params or {})
    key = idempotency_key or f"case:{case.id}:{kind.value}:{actor.key}:{now.isoformat()}"
    existing = session.scalars(
        select(t.ActionRequest).where(t.ActionRequest.idempotency_key == key)
    ).one_or_none()
    if existing is not None:
        return existing
    if not actor.is_policy:
        _check_permitted(session, case, kind, actor=actor, now=now, directory=directory)
    if kind in PLATFORM_ACTIONS and case.item_id is None:
        raise ActionRefused(f"case {case.id} has no platform item to {kind.value}")
    if kind in ONCE_PER_CASE and not dry_run:
        # one request at a time per case: a concurrent second one waits here, then sees the first
        session.execute(select(t.Case.id).where(t.Case.id == case.id).with_for_update())
        standing = action_under_way(session, case, kind)
        if standing is not None:
            message = under_way_text(standing, directory)
            cases.log_event(
                session,
                case,
                "action.already_under_way",
                actor=actor.key,
                now=now,
                reason=reason,
                details={"action": kind.value, "request": standing.id},
            )
            raise ActionUnderWay(message, standing)
    if kind is ActionKind.REPLY:
        params["text"] = _reply_text(session, case, params)
    if kind is ActionKind.ASSIGN and not params.get("staff"):
        raise ActionRefused("assign needs the staff id to assign to")
    if kind is ActionKind.ASSIGN:
        why = _assignee_refusal(session, case, str(params["staff"]), directory=directory, now=now)
        if why:
            cases.log_event(
                session,
                case,
                "action.refused",
                actor=actor.key,
                now=now,
                reason=why,
                details={"action": kind.value, "to": params["staff"]},
            )
            raise ActionRefused(why)
    request = t.ActionRequest(
        idempotency_key=key,
        case_id=case.id,
        item_id=case.item_id,
        account_id=case.account_id,
        kind=kind.value,
        params=params,
        requested_by=actor.key,
        requested_at=now,
        reason=reason,
        status=ActionStatus.PENDING.value,
        attempts=0,
        next_attempt_at=now,
        result={},
    )
    session.add(request)
    session.flush()
    cases.log_event(
        session,
        case,
        "action.requested",
        actor=actor.key,
        now=now,
        reason=reason,
        details={"action": kind.value, "request": request.id, "dry_run": dry_run},
    )
    if dry_run:
        request.status = ActionStatus.DRY_RUN.value
        request.done_at = now
        request.result = {"note": f"dry run: would {kind.value}"}
        cases.log_event(
            session,
            case,
            "action.dry_run",
            actor=actor.key,
            now=now,
            details={"action": kind.value},
        )
    elif kind not in PLATFORM_ACTIONS:
        _apply_case_action(
            session, case, request, kind, actor=actor, now=now, directory=directory, reason=reason
        )
    return request


def _apply_case_action(
    session: Session,
    case: t.Case,
    request: t.ActionRequest,
    kind: ActionKind,
    *,
    actor: Actor,
    now: datetime,
    directory: Directory,
    reason: str | None,
) -> None:
    if kind in POLICE_OUTCOMES:
        case.police_step = POLICE_OUTCOMES[kind]
        cases.log_event(
            session,
            case,
            "case.police_step",
            actor=actor.key,
            now=now,
            reason=reason,
            details={"outcome": case.police_step},
        )
    if kind is ActionKind.ASSIGN:
        staff = session.scalars(
            select(t.Staff).where(t.Staff.key == request.params["staff"])
        ).one_or_none()
        if staff is None:
            raise ActionRefused(f"unknown staff id {request.params['staff']!r}")
        cases.assign(session, case, staff, actor=actor.key, now=now, reason=reason)
    target = STATE_AFTER[kind]
    if kind is ActionKind.MARK_RESPONDED:
        # stops the clock; only a query or media enquiry becomes "responded" (cases.record_response)
        cases.record_response(session, case, at=now, actor=actor.key, now=now, reason=reason)
    elif target is not None:
        cases.change_state(session, case, target, actor=actor.key, now=now, reason=reason)
    if kind is ActionKind.ESCALATE:
        cases.notify(
            session,
            case,
            directory,
            kind=AlertKind.ESCALATED.about(request.id),
            now=now,
            escalation=True,
        )
    request.status = ActionStatus.DONE.value
    request.done_at = now
    request.result = {"state": case.state}
    cases.log_event(
        session,
        case,
        "action.done",
        actor=actor.key,
        now=now,
        details={"action": kind.value, "request": request.id},
    )


def _assignee_refusal(
    session: Session, case: t.Case, key: str, *, directory: Directory, now: datetime
) -> str | None:
    """Why ``case`` may not go to the member of staff ``key``; None when it may."""
    staff = session.scalars(
        select(t.Staff).where(t.Staff.key == key, t.Staff.archived_at.is_(None))
    ).one_or_none()
    if staff is None:
        return f"unknown staff id {key!r}"
    school = school_of(session, case)
    person = directory.person(key)
    roles = directory.effective_roles(person) if person else frozenset(Role(r) for r in staff.roles)
    return assignee_refusal(
        key,
        roles=roles,
        in_post=staff_in_post(staff, today=local_today(now, school.timezone if school else None)),
        # staff linked to no school serve the whole trust
        serves_school=not staff.schools or school is None or school.key in staff.schools,
        safeguarding=is_safeguarding(category=case.case_category, restricted=case.restricted),
    )


def _reply_text(session: Session, case: t.Case, params: dict[str, Any]) -> str:
    if params.get("text"):
        return str(params["text"])
    template = str(params.get("template", "acknowledge"))
    if template not in REPLY_TEMPLATES:
        raise ActionRefused(
            f"unknown reply template {template!r}; known: {', '.join(sorted(REPLY_TEMPLATES))}"
        )
    school = school_of(session, case)
    return REPLY_TEMPLATES[template].format(school=school.name if school else "the school")
