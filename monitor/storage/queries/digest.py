"""Digest: the aggregate queries over one week behind the weekly digest's figures.

Each function builds and runs one SELECT and returns rows or a scalar; ``monitor.digest.figures``
turns them into figures. ``school_id`` limits a query to one school's cases (None: the trust).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select
from sqlalchemy.orm import Session

from monitor.constants import CONTENT_CATEGORIES, OPEN_CASE_STATES, AlertStatus, Category
from monitor.storage import tables as t

_OPEN_STATES = sorted(s.value for s in OPEN_CASE_STATES)
_CONTENT = sorted(c.value for c in CONTENT_CATEGORIES)


# ------------------------------------------------------------- expressions


def _in_school(query: Any, school_id: int | None) -> Any:
    """``query`` limited to one school's cases (unchanged for the trust)."""
    if school_id is None:
        return query
    return query.where(t.Case.school_id == school_id)


def _bucket(column: Any, bounds: Sequence[datetime]) -> Any:
    """Which of the ``len(bounds) - 1`` consecutive ranges ``column`` falls in (0-based)."""
    whens = [(column < upper, literal(i)) for i, upper in enumerate(bounds[1:-1])]
    return case(*whens, else_=literal(len(bounds) - 2))


def was_open(as_of: datetime) -> ColumnElement[bool]:
    """Open at ``as_of``: opened before, and not yet handled, responded to or closed by then."""
    return and_(
        t.Case.opened_at < as_of,
        # R8: abuse hidden, removed, or reported and blocked is handled, not open
        or_(t.Case.handled_at.is_(None), t.Case.handled_at >= as_of),
        or_(
            # reopened cases keep their old timestamps: a case open now counts as open
            t.Case.state.in_(_OPEN_STATES),
            and_(
                or_(t.Case.responded_at.is_(None), t.Case.responded_at >= as_of),
                or_(t.Case.closed_at.is_(None), t.Case.closed_at >= as_of),
            ),
        ),
    )


def outcome(now: datetime) -> Any:
    """The R2 outcome of a case with a due time, as a SQL expression
    (the same rule as ``monitor.digest.figures.classify_outcome``)."""
    return case(
        (
            and_(t.Case.responded_at.is_not(None), t.Case.responded_at <= t.Case.due_at),
            literal("met"),
        ),
        (
            and_(
                t.Case.responded_at.is_(None),
                t.Case.state.not_in(_OPEN_STATES),
                t.Case.closed_at.is_not(None),
                t.Case.closed_at <= t.Case.due_at,
                t.Case.breached_at.is_(None),
            ),
            literal("not_needed"),
        ),
        (t.Case.due_at > now, literal("pending")),
        else_=literal("missed"),
    )


# ------------------------------------------------------------- scope


def school_by_key(session: Session, key: str) -> t.School | None:
    """The school with ``key`` (None if there is none)."""
    return session.scalars(select(t.School).where(t.School.key == key)).first()


def accounts_in_scope(session: Session, school_id: int | None) -> list[tuple[t.Account, str]]:
    """(account, school key) of every account, or one school's (archived ones included)."""
    query = select(t.Account, t.School.key).join(t.School, t.School.id == t.Account.school_id)
    if school_id is not None:
        query = query.where(t.Account.school_id == school_id)
    return [(row, school_key) for row, school_key in session.execute(query)]


# ------------------------------------------------------------- items and cases


def items_per_account(
    session: Session, ids: Sequence[int], start: datetime, end: datetime
) -> Sequence[Any]:
    """(account, items, assessed, rules-only) from one GROUP BY over the week's items."""
    return session.execute(
        select(
            t.Item.account_id,
            func.count(t.Item.id),
            func.count(t.Assessment.id),
            func.sum(
                case((and_(t.Assessment.id.is_not(None), t.Assessment.model.is_(None)), 1), else_=0)
            ),
        )
        .select_from(t.Item)
        .outerjoin(t.Assessment, t.Assessment.item_id == t.Item.id)
        # account_id first: the (account_id, seen_at) index serves the range per account
        .where(t.Item.account_id.in_(ids), t.Item.seen_at >= start, t.Item.seen_at < end)
        .group_by(t.Item.account_id)
    ).all()


def cases_opened(
    session: Session, school_id: int | None, start: datetime, end: datetime
) -> list[Any]:
    """(account, category, count) of cases opened in the week."""
    query = (
        select(t.Case.account_id, t.Case.category, func.count(t.Case.id))
        .where(t.Case.opened_at >= start, t.Case.opened_at < end)
        .group_by(t.Case.account_id, t.Case.category)
    )
    return list(session.execute(_in_school(query, school_id)))


def hidden_items(
    session: Session, ids: Sequence[int], start: datetime, end: datetime
) -> Sequence[Any]:
    """(created, hidden) of the items hidden or removed in the week."""
    return session.execute(
        select(t.Item.created_at, t.Item.hidden_at).where(
            t.Item.account_id.in_(ids), t.Item.hidden_at >= start, t.Item.hidden_at < end
        )
    ).all()


def cases_due(session: Session, school_id: int | None, start: datetime, end: datetime) -> list[Any]:
    """(due, responded, closed, breached, state, opened, item posted, item seen) of the cases
    due in the week."""
    query = (
        select(
            t.Case.due_at,
            t.Case.responded_at,
            t.Case.closed_at,
            t.Case.breached_at,
            t.Case.state,
            t.Case.opened_at,
            t.Item.created_at,
            t.Item.seen_at,
        )
        .outerjoin(t.Item, t.Item.id == t.Case.item_id)
        .where(t.Case.due_at >= start, t.Case.due_at < end)
    )
    return list(session.execute(_in_school(query, school_id)))


def breaches(session: Session, school_id: int | None, start: datetime, end: datetime) -> int:
    """Escalations for a missed target made during the week."""
    count = session.scalar(
        _in_school(
            select(func.count(t.Case.id)).where(
                t.Case.breached_at >= start, t.Case.breached_at < end
            ),
            school_id,
        )
    )
    return int(count or 0)


def open_by_category(session: Session, school_id: int | None, as_of: datetime) -> Sequence[Any]:
    """(category, open, overdue) of the cases open at ``as_of``."""
    overdue = case((and_(t.Case.due_at.is_not(None), t.Case.due_at <= as_of), 1), else_=0)
    query = (
        select(t.Case.category, func.count(t.Case.id), func.sum(overdue))
        .where(was_open(as_of))
        .group_by(t.Case.category)
    )
    return session.execute(_in_school(query, school_id)).all()


def count_open(session: Session, school_id: int | None, category: Category, as_of: datetime) -> int:
    """How many cases of ``category`` were open at ``as_of``."""
    query = select(func.count(t.Case.id)).where(t.Case.category == category.value, was_open(as_of))
    return int(session.scalar(_in_school(query, school_id)) or 0)


def decision_cases(
    session: Session,
    school_id: int | None,
    as_of: datetime,
    *,
    categories: Sequence[str] = (),
    overdue: bool = False,
    police_pending: str | None = None,
) -> list[Any]:
    """(case, handle, platform, school key) of the open cases of ``categories`` at ``as_of``
    (past due when ``overdue``), or of the threats whose police step is ``police_pending``."""
    query = (
        select(t.Case, t.Account.handle, t.Account.platform, t.School.key)
        .outerjoin(t.Account, t.Account.id == t.Case.account_id)
        .outerjoin(t.School, t.School.id == t.Case.school_id)
        .order_by(t.Case.opened_at, t.Case.id)
    )
    if police_pending is not None:
        query = query.where(
            t.Case.police_step == police_pending,
            t.Case.opened_at < as_of,
            t.Case.state != "dismissed",
        )
    else:
        query = query.where(t.Case.category.in_(list(categories)), was_open(as_of))
        if overdue:
            query = query.where(t.Case.due_at.is_not(None), t.Case.due_at < as_of)
    return list(session.execute(_in_school(query, school_id)))


def two_admin_cases(session: Session, school_id: int | None, as_of: datetime) -> list[Any]:
    """(opened, details, account key, handle, platform, school key) of the open R3 cases."""
    query = (
        select(
            t.Case.opened_at,
            t.Case.details,
            t.Account.key,
            t.Account.handle,
            t.Account.platform,
            t.School.key,
        )
        .outerjoin(t.Account, t.Account.id == t.Case.account_id)
        .outerjoin(t.School, t.School.id == t.Account.school_id)
        .where(t.Case.category == Category.TWO_ADMINS.value, was_open(as_of))
        .order_by(t.Case.opened_at, t.Case.id)
    )
    return list(session.execute(_in_school(query, school_id)))


def gap_cases(
    session: Session, school_id: int | None, start: datetime, as_of: datetime
) -> list[Any]:
    """(opened, closed, details, account key) of the monitoring gaps overlapping the week."""
    query = (
        select(t.Case.opened_at, t.Case.closed_at, t.Case.details, t.Account.key)
        .outerjoin(t.Account, t.Account.id == t.Case.account_id)
        .where(
            t.Case.category == Category.MONITORING_GAP.value,
            t.Case.opened_at < as_of,
            or_(t.Case.closed_at.is_(None), t.Case.closed_at >= start),
        )
    )
    return list(session.execute(_in_school(query, school_id)))


def classifier_down(
    session: Session, start: datetime, end: datetime, as_of: datetime
) -> tuple[int, int]:
    """(opened in the week, open at ``as_of``) of classifier outages, in every school."""
    down = t.Case.category == Category.CLASSIFIER_DOWN.value
    opened = session.scalar(
        select(func.count(t.Case.id)).where(down, t.Case.opened_at >= start, t.Case.opened_at < end)
    )
    still = session.scalar(select(func.count(t.Case.id)).where(down, was_open(as_of)))
    return int(opened or 0), int(still or 0)


# ------------------------------------------------------------- accounts' health


def first_success(session: Session, ids: Sequence[int]) -> datetime | None:
    """The first successful poll of any of the accounts ``ids``."""
    return session.scalar(
        select(func.min(t.AccountHealth.first_success_at)).where(
            t.AccountHealth.account_id.in_(sorted(ids))
        )
    )


def first_successes(session: Session, ids: Sequence[int]) -> dict[int, datetime | None]:
    """Each account's first successful poll, by account id (accounts never polled absent)."""
    return dict(
        session.execute(
            select(t.AccountHealth.account_id, t.AccountHealth.first_success_at).where(
                t.AccountHealth.account_id.in_(sorted(ids))
            )
        ).all()
    )


# ------------------------------------------------------------- staff


def staff_names(session: Session) -> Sequence[Any]:
    """(id, key, name) of every member of staff."""
    return session.execute(select(t.Staff.id, t.Staff.key, t.Staff.name)).all()


def all_staff(session: Session) -> Sequence[t.Staff]:
    """Every member of staff."""
    return session.scalars(select(t.Staff)).all()


def leaving_by(session: Session, horizon: date) -> Sequence[t.Staff]:
    """Staff leaving on or before ``horizon`` who have not left yet, soonest first."""
    return session.scalars(
        select(t.Staff)
        .where(
            t.Staff.leaving_on.is_not(None),
            t.Staff.leaving_on <= horizon,
            t.Staff.left_at.is_(None),
            t.Staff.archived_at.is_(None),
        )
        .order_by(t.Staff.leaving_on, t.Staff.key)
    ).all()


def audit_events(
    session: Session, subjects: Sequence[str], action: str, start: datetime, end: datetime
) -> Sequence[t.AuditEvent]:
    """The audit events ``action`` about ``subjects`` during the week, in order."""
    return session.scalars(
        select(t.AuditEvent)
        # the subject index narrows the audit log to these people's events
        .where(
            t.AuditEvent.subject.in_(sorted(subjects)),
            t.AuditEvent.action == action,
            t.AuditEvent.at >= start,
            t.AuditEvent.at < end,
        )
        .order_by(t.AuditEvent.seq)
    ).all()


# ------------------------------------------------------------- alerts and posts


def undelivered_alerts(session: Session, as_of: datetime) -> tuple[int, datetime | None]:
    """(count, oldest creation) of alerts queued by ``as_of`` and not delivered by then."""
    waiting = or_(
        t.Alert.status.in_([AlertStatus.PENDING.value, AlertStatus.SENDING.value]),
        and_(t.Alert.status == AlertStatus.SENT.value, t.Alert.sent_at > as_of),
    )
    count, oldest = session.execute(
        select(func.count(t.Alert.id), func.min(t.Alert.created_at)).where(
            t.Alert.created_at <= as_of, waiting
        )
    ).one()
    return int(count or 0), oldest


def publications_published(
    session: Session, ids: Sequence[int], start: datetime, end: datetime
) -> int:
    """Publications on the accounts ``ids`` that went out in the week."""
    return (
        session.scalar(
            select(func.count())
            .select_from(t.Publication)
            .where(
                t.Publication.account_id.in_(ids),
                t.Publication.published_at >= start,
                t.Publication.published_at < end,
            )
        )
        or 0
    )


def publications_blocked(
    session: Session, ids: Sequence[int], start: datetime, end: datetime
) -> int:
    """Publications on the accounts ``ids`` due in the week and blocked by the last checks."""
    return (
        session.scalar(
            select(func.count())
            .select_from(t.Publication)
            .where(
                t.Publication.account_id.in_(ids),
                t.Publication.state == "blocked",
                t.Publication.due_at >= start,
                t.Publication.due_at < end,
            )
        )
        or 0
    )


def approvals_decided(
    session: Session, ids: Sequence[int], start: datetime, end: datetime
) -> Sequence[t.PostApproval]:
    """Approval decisions made in the week on drafts published to the accounts ``ids``."""
    drafts = select(t.Publication.draft_id).where(t.Publication.account_id.in_(ids))
    return session.scalars(
        select(t.PostApproval).where(
            t.PostApproval.draft_id.in_(drafts),
            t.PostApproval.decided_at >= start,
            t.PostApproval.decided_at < end,
        )
    ).all()


# ------------------------------------------------------------- the trend


def trend_items(
    session: Session, ids: Sequence[int], bounds: Sequence[datetime]
) -> list[tuple[int, int]]:
    """(bucket, items seen) per range of ``bounds``, on the accounts ``ids``."""
    inner = (
        select(_bucket(t.Item.seen_at, bounds).label("bucket"))
        .where(t.Item.account_id.in_(ids), t.Item.seen_at >= bounds[0], t.Item.seen_at < bounds[-1])
        .subquery()
    )
    return [
        (int(bucket), int(count))
        for bucket, count in session.execute(
            select(inner.c.bucket, func.count()).group_by(inner.c.bucket)
        )
    ]


def trend_flagged(
    session: Session, school_id: int | None, bounds: Sequence[datetime]
) -> list[tuple[int, int]]:
    """(bucket, content cases opened) per range of ``bounds``."""
    inner = _in_school(
        select(_bucket(t.Case.opened_at, bounds).label("bucket")).where(
            t.Case.category.in_(_CONTENT),
            t.Case.opened_at >= bounds[0],
            t.Case.opened_at < bounds[-1],
        ),
        school_id,
    ).subquery()
    return [
        (int(bucket), int(count))
        for bucket, count in session.execute(
            select(inner.c.bucket, func.count()).group_by(inner.c.bucket)
        )
    ]


def trend_outcomes(
    session: Session, school_id: int | None, bounds: Sequence[datetime], now: datetime
) -> list[tuple[int, str, int]]:
    """(bucket, R2 outcome, cases) per range of ``bounds``, by due time."""
    inner = _in_school(
        select(_bucket(t.Case.due_at, bounds).label("bucket"), outcome(now).label("outcome")).where(
            t.Case.due_at >= bounds[0], t.Case.due_at < bounds[-1]
        ),
        school_id,
    ).subquery()
    return [
        (int(bucket), str(result), int(count))
        for bucket, result, count in session.execute(
            select(inner.c.bucket, inner.c.outcome, func.count()).group_by(
                inner.c.bucket, inner.c.outcome
            )
        )
    ]
