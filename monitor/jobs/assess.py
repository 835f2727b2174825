"""Assessing stored items, opening the cases the policy asks for, and stopping response clocks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session, sessionmaker

from monitor import cases, evidence
from monitor.classify import ModelStatus
from monitor.config_models import UnknownSchool
from monitor.constants import OPEN_CASE_STATES, ActionKind, AlertKind, Category, ItemKind, Severity
from monitor.directory import Directory, DirectoryFor
from monitor.jobs.triage import Triage
from monitor.rules.engine import ItemFacts, ItemPolicy, decide_for_item
from monitor.rules.evidence_on_open import evidence_on_open
from monitor.rules.routing import case_holder
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.repo import insert_statement

log = logging.getLogger(__name__)
BATCH = 128  # items scored per transaction (a few seconds of model time)
URGENT_BATCH = 32  # items the rules flagged, scored ahead of the queue


class AssessmentLike(Protocol):
    """What the classifier returns per text (monitor.classify.assessment.Assessment)."""

    @property
    def scores(self) -> Mapping[str, float]: ...
    @property
    def categories(self) -> frozenset[Category]: ...
    @property
    def severity(self) -> Severity: ...
    @property
    def model(self) -> str | None: ...
    def to_json(self) -> dict[str, Any]: ...


class Assessor(Protocol):
    """The classifier pipeline as the job uses it."""

    def assess(
        self, texts: Sequence[str], *, school_key: str | None = None
    ) -> Sequence[AssessmentLike]: ...


@runtime_checkable
class ReportsModelStatus(Protocol):
    """An assessor with a toxicity model whose state it reports (the classifier pipeline)."""

    @property
    def model_status(self) -> ModelStatus: ...


@dataclass
class AssessReport:
    """What one run did."""

    assessed: int = 0
    unscored: int = 0
    cases_opened: list[int] = field(default_factory=list)
    cases_reclassified: list[int] = field(default_factory=list)
    responses_recorded: list[int] = field(default_factory=list)
    auto_actions: list[int] = field(default_factory=list)
    more: bool = False  # items may still be waiting (a full batch, or an urgent one)


ActionRequester = Callable[[Session, t.Case, ActionKind, datetime, bool], int | None]


def _pending(
    session: Session, limit: int, *, rescore: bool, only: Sequence[int] | None = None
) -> list[tuple[t.Item, str, int]]:
    query = (
        select(t.Item, t.School.key, t.School.id)
        .join(t.Account, t.Account.id == t.Item.account_id)
        .join(t.School, t.School.id == t.Account.school_id)
        .outerjoin(t.Assessment, t.Assessment.item_id == t.Item.id)
    )
    condition: ColumnElement[bool] = t.Assessment.id.is_(None)
    if rescore:
        condition = or_(condition, t.Assessment.needs_rescore.is_(True))
    if only is not None:
        condition = condition & t.Item.id.in_(list(only))
    rows = session.execute(query.where(condition).order_by(t.Item.id).limit(limit)).all()
    return [(row[0], row[1], row[2]) for row in rows]


def assess_pending(
    sessions: sessionmaker[Session],
    assessor: Assessor,
    *,
    policy_for: Callable[[str], ItemPolicy],
    directory: DirectoryFor,
    now: datetime,
    rescore: bool = False,
    request_action: ActionRequester | None = None,
    limit: int = BATCH,
    triage: Triage | None = None,
    only: Sequence[int] | None = None,
) -> AssessReport:
    """Assess items with no assessment yet (and, with ``rescore``, rules-only ones).

    With ``triage``, the items its rules flagged as urgent go first, in a small batch.
    With ``only``, just those of these items still waiting (a batch of the scaled mode).
    """
    report = AssessReport()
    with sessions() as session:
        if only is not None:
            pending = _pending(session, len(only), rescore=rescore, only=only)
        else:
            pending = _urgent_pending(session, triage, rescore=rescore)
            report.more = bool(pending)
            if not pending:
                pending = _pending(session, limit, rescore=rescore)
                report.more = len(pending) >= limit
                if pending and triage is not None and not rescore:
                    triage.discard_below(pending[0][0].id)  # assessed by another process
    return _assess_rows(
        sessions,
        assessor,
        pending,
        policy_for,
        directory,
        now=now,
        report=report,
        request_action=request_action,
        triage=triage,
    )


def _assess_rows(
    sessions: sessionmaker[Session],
    assessor: Assessor,
    pending: list[tuple[t.Item, str, int]],
    policy_for: Callable[[str], ItemPolicy],
    directory: DirectoryFor,
    *,
    now: datetime,
    report: AssessReport,
    request_action: ActionRequester | None,
    triage: Triage | None,
) -> AssessReport:
    """Score ``pending`` school by school; store each school's results in one transaction."""
    by_school: dict[str, list[tuple[t.Item, int]]] = {}
    for item, school_key, school_id in pending:
        by_school.setdefault(school_key, []).append((item, school_id))
    for school_key, rows in by_school.items():
        texts = [item.text for item, _ in rows]
        try:
            if triage is not None:
                triaged = [triage.take(item.id) for item, _ in rows]
                results = triage.assessor.assess(texts, school_key=school_key, triaged=triaged)
            else:
                results = assessor.assess(texts, school_key=school_key)
        except UnknownSchool:
            # a school no longer in the configuration (archived): its items still get the trust's rules
            log.warning(
                "school %s is not configured; assessing its items with the trust-wide rules",
                school_key,
            )
            results = assessor.assess(texts, school_key=None)
        policy = policy_for(school_key)
        with transaction(sessions) as session:
            people = directory(session, now)
            for (item, school_id), result in zip(rows, results, strict=True):
                _store(session, item, result, now)
                report.assessed += 1
                report.unscored += result.model is None
                _apply_policy(
                    session,
                    item,
                    school_id,
                    result,
                    policy,
                    directory=people,
                    now=now,
                    report=report,
                    request_action=request_action,
                )
    return report


def _urgent_pending(
    session: Session, triage: Triage | None, *, rescore: bool
) -> list[tuple[t.Item, str, int]]:
    """The gravest items triage flagged as urgent still waiting, oldest first among equals.

    Items it holds that are no longer waiting (assessed by another process) are forgotten.
    """
    if triage is None:
        return []
    wanted = triage.urgent(URGENT_BATCH * 4)
    if not wanted:
        return []
    rows = _pending(session, len(wanted), rescore=rescore, only=wanted)
    found = {row[0].id: row for row in rows}
    triage.discard(i for i in wanted if i not in found)
    return [found[i] for i in wanted if i in found][:URGENT_BATCH]


def _store(session: Session, item: t.Item, result: AssessmentLike, now: datetime) -> None:
    data = result.to_json()
    values = {
        "model": result.model,
        "scores": dict(result.scores),
        "categories": sorted(c.value for c in result.categories),
        "severity": result.severity.value,
        "matches": list(data.get("matches", [])),
        "assessed_at": now,
        "needs_rescore": result.model is None,
    }
    statement = insert_statement(session, t.Assessment).values(item_id=item.id, **values)
    session.execute(statement.on_conflict_do_update(index_elements=["item_id"], set_=values))


def _apply_policy(
    session: Session,
    item: t.Item,
    school_id: int,
    result: AssessmentLike,
    policy: ItemPolicy,
    *,
    directory: Directory,
    now: datetime,
    report: AssessReport,
    request_action: ActionRequester | None,
) -> None:
    account = session.get(t.Account, item.account_id)
    assert account is not None
    if item.is_own and item.parent_id:
        report.responses_recorded += _record_response(session, item, now)
    facts = ItemFacts(
        item_id=item.id,
        account_key=account.key,
        kind=ItemKind(item.kind),
        stream=item.stream,
        is_own=item.is_own,
        posted_at=item.created_at,
        seen_at=item.seen_at,
        categories=frozenset(result.categories),
        severity=result.severity,
        scores=dict(result.scores),
        rule_ids=frozenset(str(m.rule_id) for m in getattr(result, "matches", ())),
        text=item.text,
    )
    decision = decide_for_item(facts, policy)
    if decision is None:
        return
    stored = session.get(t.Item, item.id)
    assert stored is not None
    stored.flagged = True
    case, created = cases.open_from_decision(
        session, decision, item=stored, school_id=school_id, now=now, scores=dict(result.scores)
    )
    if not created:
        # re-scored with the model: new categories reach the people they are routed to
        # (alerts are idempotent per recipient, so those already told are not told again)
        if not cases.reclassify(session, case, decision, now=now, scores=dict(result.scores)):
            return
        report.cases_reclassified.append(case.id)
    else:
        report.cases_opened.append(case.id)
        _give_to_holder(session, case, decision.category, directory, now)
        if case.due_at is not None:
            # the school may have answered before this item was assessed (the reply was
            # stored or assessed first, or the item waited for the model): no clock runs
            report.responses_recorded += _answered_already(session, stored, case, now)
    if evidence_on_open(decision.categories):
        _capture_evidence(session, case, stored, account.key, now)
    cases.notify(session, case, directory, kind=AlertKind.CASE_OPENED, now=now)
    if (
        decision.auto_action is not None
        and request_action is not None
        and not _already_requested(session, case, decision.auto_action)
    ):
        action_id = request_action(
            session, case, decision.auto_action, now, decision.auto_action_dry_run
        )
        if action_id is not None:
            report.auto_actions.append(action_id)


def _give_to_holder(
    session: Session, case: t.Case, category: Category, directory: Directory, now: datetime
) -> None:
    """R11: a media enquiry goes to the principal at once, not to the general queue."""
    school = session.get(t.School, case.school_id) if case.school_id else None
    holder = case_holder(directory, category, school.key if school else None)
    if holder is None:
        return
    staff = session.scalars(select(t.Staff).where(t.Staff.key == holder.key)).one_or_none()
    if staff is not None:
        cases.assign(
            session,
            case,
            staff,
            actor="policy",
            now=now,
            reason=f"{category.value}: theirs to hold",
        )


def _capture_evidence(
    session: Session, case: t.Case, item: t.Item, account_key: str, now: datetime
) -> None:
    """Record the item as it is now, once per case (R7: before anyone acts, or it is deleted)."""
    taken = session.scalars(
        select(t.Evidence.id).where(t.Evidence.item_id == item.id, t.Evidence.case_id == case.id)
    ).first()
    if taken is not None:
        return
    record = evidence.capture(
        session, item=item, case_id=case.id, account_key=account_key, captured_by="policy", now=now
    )
    cases.log_event(
        session,
        case,
        "evidence.captured",
        actor="policy",
        now=now,
        reason="captured as the case opened",
        details={"evidence": record.id, "sha256": record.sha256},
    )


def _already_requested(session: Session, case: t.Case, kind: ActionKind) -> bool:
    """True when ``kind`` was already asked for on ``case`` (a re-assessment asks only once)."""
    return (
        session.scalars(
            select(t.ActionRequest.id)
            .where(t.ActionRequest.case_id == case.id, t.ActionRequest.kind == kind.value)
            .limit(1)
        ).first()
        is not None
    )


def _answered_already(session: Session, item: t.Item, case: t.Case, now: datetime) -> list[int]:
    """Stop a new case's clock when the school's account has already replied to its item."""
    reply = session.scalars(
        select(t.Item)
        .where(
            t.Item.account_id == item.account_id,
            t.Item.platform == item.platform,
            t.Item.parent_id == item.platform_id,
            t.Item.is_own.is_(True),
        )
        .order_by(t.Item.created_at)
        .limit(1)
    ).first()
    if reply is None:
        return []
    stopped = cases.record_response(
        session,
        case,
        at=max(reply.created_at, item.created_at),
        actor="school-account",
        now=now,
        reason=f"the school's account had already replied ({reply.url})",
    )
    return [case.id] if stopped else []


def _record_response(session: Session, own_item: t.Item, now: datetime) -> list[int]:
    """A reply from the school's account answers the item it replies to (R2 clock stops)."""
    parent = session.scalars(
        select(t.Item).where(
            t.Item.platform == own_item.platform, t.Item.platform_id == own_item.parent_id
        )
    ).one_or_none()
    if parent is None:
        return []
    answered = []
    for case in session.scalars(
        select(t.Case).where(
            t.Case.item_id == parent.id,
            t.Case.due_at.is_not(None),
            t.Case.responded_at.is_(None),
            t.Case.state.in_([s.value for s in OPEN_CASE_STATES]),
        )
    ):
        # when it was really answered (a reply cannot come before the item it answers)
        if cases.record_response(
            session,
            case,
            at=max(own_item.created_at, parent.created_at),
            actor="school-account",
            now=now,
            reason=f"the school's account replied ({own_item.url})",
        ):
            answered.append(case.id)
    return answered
