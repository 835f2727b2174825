"""Carrying out requested platform actions: evidence first, then the platform, then verification."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import (
    AuthError,
    Connector,
    ConnectorError,
    Gone,
    NotSupported,
    RateLimited,
    TransientError,
)
from connectors.base import Item as PlatformItem
from monitor import cases, evidence
from monitor.constants import ActionKind, ActionStatus, AlertKind, CaseState, Platform
from monitor.directory import Directory, DirectoryFor
from monitor.jobs.poll import ConnectorPool, backoff_after
from monitor.rules.handling import handles, still_public_on_action
from monitor.rules.permissions import STATE_AFTER
from monitor.rules.platform_actions import (
    CHECK_AFTER,
    EVIDENCE_FIRST,
    FALLBACK_AUTHOR_STEPS,
    FALLS_BACK,
    VERIFIED,
)
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.items import to_platform_item

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
REPORT_REASON = "Abusive or inappropriate reply on a school's official account"


@dataclass(frozen=True)
class ActionOutcome:
    """What happened to one request."""

    request_id: int
    status: ActionStatus
    detail: str


def _perform(
    connector: Connector, kind: ActionKind, item: PlatformItem, params: dict[str, Any]
) -> dict[str, Any]:
    """Do one action on the platform; returns facts worth keeping."""
    if kind is ActionKind.HIDE:
        connector.hide(item)
        return {"visibility": "hidden"}
    if kind is ActionKind.UNHIDE:
        connector.unhide(item)
        return {"visibility": "visible"}
    if kind is ActionKind.REMOVE:
        connector.remove(item, spam=bool(params.get("spam", False)))
        return {"visibility": "removed"}
    if kind is ActionKind.BLOCK:
        connector.block(item.author)
        return {}
    if kind is ActionKind.MUTE:
        connector.mute(item.author)
        return {}
    if kind is ActionKind.REPORT:
        return {
            "report_id": connector.report(item, reason=str(params.get("reason") or REPORT_REASON))
        }
    if kind is ActionKind.REPLY:
        posted = connector.reply(item, str(params["text"]))
        return {"reply_id": posted.platform_id, "reply_url": posted.url}
    raise NotSupported(f"{kind.value} is not a platform action")


def _fallback(connector: Connector, item: PlatformItem, params: dict[str, Any]) -> dict[str, Any]:
    """Where hiding is impossible: report to the platform, then block (or mute) the author."""
    steps: dict[str, Any] = {"cannot_hide": True}
    try:
        steps["report_id"] = connector.report(
            item, reason=str(params.get("reason") or REPORT_REASON)
        )
        steps["reported"] = True
    except NotSupported as exc:
        steps["reported"] = False
        steps["report_error"] = str(exc)
    calls = {ActionKind.BLOCK: connector.block, ActionKind.MUTE: connector.mute}
    for kind in FALLBACK_AUTHOR_STEPS:
        try:
            calls[kind](item.author)
            steps[kind.value] = True
            break
        except NotSupported:
            steps[kind.value] = False
    return steps


def run_pending_actions(
    sessions: sessionmaker[Session],
    pool: ConnectorPool,
    *,
    now: datetime,
    directory: DirectoryFor,
    limit: int = 50,
) -> list[ActionOutcome]:
    """Carry out due platform actions, oldest first."""
    with sessions() as session:
        due = list(
            session.scalars(
                select(t.ActionRequest.id)
                .where(
                    t.ActionRequest.status == ActionStatus.PENDING.value,
                    t.ActionRequest.next_attempt_at <= now,
                )
                .order_by(t.ActionRequest.id)
                .limit(limit)
            )
        )
    return [
        run_action(sessions, pool, request_id, now=now, directory=directory) for request_id in due
    ]


def run_action(
    sessions: sessionmaker[Session],
    pool: ConnectorPool,
    request_id: int,
    *,
    now: datetime,
    directory: DirectoryFor,
) -> ActionOutcome:
    """Carry out one request (evidence first), recording every step."""
    kind: ActionKind
    with transaction(sessions) as session:
        request = session.get(t.ActionRequest, request_id)
        assert request is not None
        kind = ActionKind(request.kind)
        request.attempts += 1
        item_row = session.get(t.Item, request.item_id) if request.item_id else None
        account = session.get(t.Account, request.account_id) if request.account_id else None
        case = session.get(t.Case, request.case_id) if request.case_id else None
        if item_row is None or account is None:
            request.status = ActionStatus.FAILED.value
            request.last_error = "the item or account no longer exists"
            return ActionOutcome(request_id, ActionStatus.FAILED, request.last_error)
        if kind in EVIDENCE_FIRST and not _has_evidence(session, case, item_row):
            record = evidence.capture(
                session,
                item=item_row,
                case_id=case.id if case else None,
                account_key=account.key,
                captured_by="worker",
                now=now,
            )
            if case is not None:
                cases.log_event(
                    session,
                    case,
                    "evidence.captured",
                    actor="worker",
                    now=now,
                    details={"evidence": record.id, "sha256": record.sha256},
                )
        platform_item = to_platform_item(item_row)
        params = dict(request.params)
        account_row = account
    # the evidence above is committed before the platform is touched
    try:
        with pool.using(account_row) as connector:
            try:
                result = _perform(connector, kind, platform_item, params)
            except NotSupported:
                if kind not in FALLS_BACK:
                    raise
                result = _fallback(connector, platform_item, params)
    except (RateLimited, TransientError, AuthError) as exc:
        return _retry_later(sessions, request_id, exc, now)
    except Gone as exc:
        result = {"gone": True, "detail": str(exc), "visibility": "deleted"}
    except ConnectorError as exc:
        return _give_up(sessions, request_id, f"{type(exc).__name__}: {exc}", now)
    with transaction(sessions) as session:
        return _record_done(
            session, request_id, kind, result, now=now, directory=directory(session, now)
        )


def _has_evidence(session: Session, case: t.Case | None, item: t.Item) -> bool:
    query = select(t.Evidence.id).where(t.Evidence.item_id == item.id)
    if case is not None:
        query = query.where(t.Evidence.case_id == case.id)
    return session.scalars(query.limit(1)).first() is not None


def _record_done(
    session: Session,
    request_id: int,
    kind: ActionKind,
    result: dict[str, Any],
    *,
    now: datetime,
    directory: Directory,
) -> ActionOutcome:
    request = session.get(t.ActionRequest, request_id)
    assert request is not None
    request.status = ActionStatus.DONE.value
    request.done_at = now
    request.result = result
    request.last_error = None
    item = session.get(t.Item, request.item_id) if request.item_id else None
    case = session.get(t.Case, request.case_id) if request.case_id else None
    visibility = result.get("visibility")
    if item is not None and isinstance(visibility, str):
        item.visibility = visibility
        if visibility in ("hidden", "removed") and item.hidden_at is None:
            item.hidden_at = now
        if visibility == "visible":
            item.hidden_at = None
    if case is not None:
        if result.get("cannot_hide"):
            case.cannot_hide = True
        if (handles(kind) or result.get("gone")) and case.handled_at is None:
            # R8: hidden, removed, or reported and blocked: its response clock stops
            case.handled_at = now
            cases.log_event(
                session,
                case,
                "case.handled",
                actor="worker",
                now=now,
                details={"action": kind.value, "request": request_id},
            )
        cases.log_event(
            session,
            case,
            "action.done",
            actor="worker",
            now=now,
            details={"action": kind.value, "request": request_id, "result": result},
        )
        target = STATE_AFTER[kind]
        if kind is ActionKind.REPLY:
            # the school's reply is the response (R2); it settles only a query or media case
            cases.record_response(
                session, case, at=now, actor="worker", now=now, reason="reply posted"
            )
        elif target is not None and case.case_state not in (
            CaseState.CLOSED,
            CaseState.RESPONDED,
        ):
            try:
                cases.change_state(
                    session, case, target, actor="worker", now=now, reason=f"{kind.value} done"
                )
            except cases.CaseRefused:
                log.info("case %s stays %s after %s", case.id, case.state, kind.value)
        cases.notify(
            session, case, directory, kind=AlertKind.CASE_UPDATED.about(request_id), now=now
        )
        _tell_still_public(session, case, result, now=now, directory=directory)
    if item is not None and (kind in VERIFIED) and not result.get("gone"):
        for n, delay in enumerate(CHECK_AFTER):
            session.add(
                t.RemovalCheck(
                    case_id=case.id if case else None,
                    item_id=item.id,
                    action_id=request_id,
                    due_at=now + delay,
                    is_final=n == len(CHECK_AFTER) - 1,
                )
            )
    return ActionOutcome(
        request_id,
        ActionStatus.DONE,
        "done" if not result.get("cannot_hide") else "cannot hide: reported and blocked",
    )


def _tell_still_public(
    session: Session,
    case: t.Case,
    result: dict[str, Any],
    *,
    now: datetime,
    directory: Directory,
) -> None:
    """R5, R8: report and block stood in for a hide: say now, once, who can remove the reply."""
    if case.details.get("still_public_note"):
        return
    account = session.get(t.Account, case.account_id) if case.account_id else None
    try:
        platform = Platform(account.platform) if account else None
    except ValueError:
        platform = None
    note = still_public_on_action(platform, result) if platform else None
    if note is None:
        return
    case.details = {**case.details, "still_public_note": note}
    cases.log_event(session, case, "removal.still_public", actor="worker", now=now, reason=note)
    cases.notify(session, case, directory, kind=AlertKind.STILL_PUBLIC, now=now)


def _retry_later(
    sessions: sessionmaker[Session], request_id: int, exc: ConnectorError, now: datetime
) -> ActionOutcome:
    with transaction(sessions) as session:
        request = session.get(t.ActionRequest, request_id)
        assert request is not None
        if request.attempts >= MAX_ATTEMPTS:
            return _fail(session, request, f"gave up after {request.attempts} attempts: {exc}", now)
        delay = (
            timedelta(seconds=exc.retry_after)
            if isinstance(exc, RateLimited)
            else backoff_after(request.attempts, 60)
        )
        request.next_attempt_at = now + delay
        request.last_error = f"{type(exc).__name__}: {exc}"
        return ActionOutcome(
            request_id, ActionStatus.PENDING, f"retry at {request.next_attempt_at.isoformat()}"
        )


def _give_up(
    sessions: sessionmaker[Session], request_id: int, message: str, now: datetime
) -> ActionOutcome:
    with transaction(sessions) as session:
        request = session.get(t.ActionRequest, request_id)
        assert request is not None
        return _fail(session, request, message, now)


def _fail(session: Session, request: t.ActionRequest, message: str, now: datetime) -> ActionOutcome:
    request.status = ActionStatus.FAILED.value
    request.last_error = message
    request.done_at = now
    case = session.get(t.Case, request.case_id) if request.case_id else None
    if case is not None:
        cases.log_event(
            session,
            case,
            "action.failed",
            actor="worker",
            now=now,
            reason=message,
            details={"action": request.kind},
        )
    return ActionOutcome(request.id, ActionStatus.FAILED, message)
