"""Removal verification (R8): re-check hidden or removed items; escalate what is still visible."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import ConnectorError, Visibility
from monitor import cases
from monitor.constants import AlertKind, CaseState, Category, Platform, Severity
from monitor.directory import Directory, DirectoryFor
from monitor.jobs.poll import ConnectorPool
from monitor.rules.engine import VerifyOutcome, time_visible, verify_outcome
from monitor.rules.handling import still_public_note
from monitor.storage import tables as t
from monitor.storage.db import transaction

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    """One re-check."""

    check_id: int
    outcome: VerifyOutcome | None
    detail: str


def run_removal_checks(
    sessions: sessionmaker[Session],
    pool: ConnectorPool,
    *,
    now: datetime,
    directory: DirectoryFor,
    limit: int = 100,
) -> list[CheckResult]:
    """Run every removal check that is due."""
    with sessions() as session:
        due = list(
            session.scalars(
                select(t.RemovalCheck.id)
                .where(t.RemovalCheck.checked_at.is_(None), t.RemovalCheck.due_at <= now)
                .order_by(t.RemovalCheck.due_at)
                .limit(limit)
            )
        )
    return [_check(sessions, pool, check_id, now, directory) for check_id in due]


def _check(
    sessions: sessionmaker[Session],
    pool: ConnectorPool,
    check_id: int,
    now: datetime,
    directory: DirectoryFor,
) -> CheckResult:
    with sessions() as session:
        check = session.get(t.RemovalCheck, check_id)
        assert check is not None
        item = session.get(t.Item, check.item_id)
        assert item is not None
        account = session.get(t.Account, item.account_id)
        assert account is not None
        platform_id, is_final = item.platform_id, check.is_final
    try:
        with pool.using(account) as connector:
            fetched = connector.fetch(platform_id)
    except ConnectorError as exc:
        # a platform error is not a verdict: leave the check due and try on the next sweep
        return CheckResult(check_id, None, f"could not check: {exc}")
    outcome = verify_outcome(fetched.visibility, is_final=is_final)
    with transaction(sessions) as session:
        _record(
            session, check_id, fetched.visibility, outcome, now, directory=directory(session, now)
        )
    return CheckResult(check_id, outcome, fetched.visibility.value)


def _record(
    session: Session,
    check_id: int,
    visibility: Visibility,
    outcome: VerifyOutcome,
    now: datetime,
    *,
    directory: Directory,
) -> None:
    check = session.get(t.RemovalCheck, check_id)
    assert check is not None
    item = session.get(t.Item, check.item_id)
    assert item is not None
    case = session.get(t.Case, check.case_id) if check.case_id else None
    check.checked_at = now
    check.outcome = outcome.value
    item.visibility = visibility.value
    if outcome is VerifyOutcome.CONFIRMED:
        if item.hidden_at is None:
            item.hidden_at = now  # the earliest moment we know it was gone
        # later checks for the same action are no longer needed
        for later in session.scalars(
            select(t.RemovalCheck).where(
                t.RemovalCheck.action_id == check.action_id,
                t.RemovalCheck.checked_at.is_(None),
                t.RemovalCheck.id != check.id,
            )
        ):
            later.checked_at = now
            later.outcome = "not_needed"
    if case is None:
        return
    if outcome is VerifyOutcome.CONFIRMED:
        seconds = time_visible(
            posted_at=item.created_at, hidden_at=item.hidden_at or now
        ).total_seconds()
        case.details = {**case.details, "time_visible_s": seconds, "verified_at": now.isoformat()}
        cases.log_event(
            session,
            case,
            "removal.verified",
            actor="worker",
            now=now,
            details={"visibility": visibility.value, "time_visible_s": seconds},
        )
    elif outcome is VerifyOutcome.PENDING:
        cases.log_event(
            session,
            case,
            "removal.still_visible",
            actor="worker",
            now=now,
            details={"visibility": visibility.value},
        )
    elif case.cannot_hide:
        _still_public(session, case, check, now, directory)
    else:
        cases.log_event(
            session,
            case,
            "removal.overdue",
            actor="worker",
            now=now,
            reason="still visible at the removal target (R8)",
        )
        overdue, created = cases.open_case(
            session,
            dedupe_key=f"removal_overdue:item:{item.id}:{check.action_id}",
            category=Category.REMOVAL_OVERDUE,
            severity=Severity.HIGH,
            title=f"Still visible after removal was requested (case {case.id})",
            now=now,
            item_id=item.id,
            account_id=item.account_id,
            school_id=case.school_id,
            restricted=case.restricted,
            details={"categories": [Category.REMOVAL_OVERDUE.value], "original_case": case.id},
        )
        if created:
            cases.notify(
                session, overdue, directory, kind=AlertKind.CASE_OPENED, now=now, escalation=True
            )
        if case.case_state not in (CaseState.CLOSED, CaseState.ESCALATED):
            try:
                cases.change_state(
                    session,
                    case,
                    CaseState.ESCALATED,
                    actor="worker",
                    now=now,
                    reason="removal not confirmed at target",
                )
            except cases.CaseRefused:
                log.info("case %s not escalated from %s", case.id, case.state)


def _still_public(
    session: Session, case: t.Case, check: t.RemovalCheck, now: datetime, directory: Directory
) -> None:
    """R5, R8: the platform cannot hide it; say once, in words, who can remove it (no alarm)."""
    if case.details.get("still_public_note"):
        return
    account = session.get(t.Account, case.account_id) if case.account_id else None
    request = session.get(t.ActionRequest, check.action_id) if check.action_id else None
    result = request.result if request is not None else {}
    try:
        platform = Platform(account.platform) if account else Platform.MASTODON
    except ValueError:
        platform = Platform.MASTODON
    note = still_public_note(
        platform,
        reported=bool(result.get("reported")),
        blocked=bool(result.get("block") or result.get("mute")),
    )
    case.details = {**case.details, "still_public_note": note}
    cases.log_event(session, case, "removal.still_public", actor="worker", now=now, reason=note)
    cases.notify(session, case, directory, kind=AlertKind.STILL_PUBLIC, now=now)
