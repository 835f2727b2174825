"""Web: the queries behind the queue and case pages (``monitor.web.views`` assembles the pages
and asks the policy; these only read)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, Select, bindparam, literal, or_, select, union_all
from sqlalchemy.orm import Session

from monitor.constants import SEVERITY_ORDER
from monitor.storage import tables as t

# ------------------------------------------------------------- the filter form


def active_schools(session: Session) -> Sequence[Any]:
    """(key, name) of the schools not archived, by name."""
    return session.execute(
        select(t.School.key, t.School.name)
        .where(t.School.archived_at.is_(None))
        .order_by(t.School.name)
    ).all()


def active_accounts(session: Session) -> Sequence[Any]:
    """(account key, school key) of the accounts not archived, by key."""
    return session.execute(
        select(t.Account.key, t.School.key)
        .join(t.School, t.School.id == t.Account.school_id)
        .where(t.Account.archived_at.is_(None))
        .order_by(t.Account.key)
    ).all()


def active_staff(session: Session) -> Sequence[Any]:
    """(key, name) of the staff not archived, by name."""
    return session.execute(
        select(t.Staff.key, t.Staff.name)
        .where(t.Staff.archived_at.is_(None))
        .order_by(t.Staff.name)
    ).all()


# ------------------------------------------------------------- the queue


def _keys_in(column: Any, table: Any, name: str) -> Any:
    """``column IN (SELECT id FROM table WHERE key IN :name)``: a subquery, not a round trip."""
    return column.in_(
        select(table.id).where(table.key.in_(bindparam(name, expanding=True))).scalar_subquery()
    )


_FILTER_CONDITIONS: dict[str, Callable[[], Any]] = {
    "served": lambda: or_(
        _keys_in(t.Case.school_id, t.School, "served"), t.Case.school_id.is_(None)
    ),
    "school": lambda: _keys_in(t.Case.school_id, t.School, "school"),
    "account": lambda: _keys_in(t.Case.account_id, t.Account, "account"),
    "platform": lambda: t.Case.account_id.in_(
        select(t.Account.id).where(t.Account.platform == bindparam("platform")).scalar_subquery()
    ),
    "category": lambda: t.Case.category == bindparam("category"),
    "assignee": lambda: _keys_in(t.Case.assignee_id, t.Staff, "assignee"),
}


@functools.lru_cache(maxsize=256)
def _queue_statement(states: tuple[str, ...], filters: frozenset[str]) -> Select[Any]:
    """The queue as one statement, for these states and filters (values are parameters).

    Gravest first, then most overdue (due time, undated last), then oldest. Sorting every
    open case by a computed rank reads them all, which at 100,000 cases takes longer than the
    page may; instead each (severity, state) is one scan of ``ix_cases_queue`` in index order
    (due time ascending with the undated last, then opened), cut at the limit, and the
    database merges those few hundred rows. Only the columns shown are read, with the school,
    account and assignee joined in. Built once per shape: building it is most of the cost.
    """
    conditions = [_FILTER_CONDITIONS[name]() for name in sorted(filters)]
    order = (t.Case.due_at.asc().nulls_last(), t.Case.opened_at, t.Case.id)
    branches = []
    for severity, rank in SEVERITY_ORDER.items():
        for state in states:
            limited = (
                select(
                    t.Case.id,
                    t.Case.school_id,
                    t.Case.account_id,
                    t.Case.assignee_id,
                    t.Case.category,
                    t.Case.severity,
                    t.Case.state,
                    t.Case.restricted,
                    t.Case.title,
                    t.Case.police_step,
                    t.Case.due_at,
                    t.Case.opened_at,
                    literal(-rank, Integer).label("rank"),
                )
                .where(t.Case.severity == severity.value, t.Case.state == state, *conditions)
                .order_by(*order)
                .limit(bindparam("limit", type_=Integer))
                .subquery()
            )
            branches.append(select(*limited.c))  # SQLite: a LIMIT inside a compound needs this
    merged = union_all(*branches).subquery("queued")
    q = merged.c
    return (
        select(
            q.id,
            t.School.key,
            t.Account.key,
            t.Account.platform,
            q.category,
            q.severity,
            q.state,
            q.restricted,
            q.title,
            t.Staff.key,
            t.Staff.name,
            q.police_step,
            q.due_at,
        )
        .select_from(merged)
        .outerjoin(t.School, t.School.id == q.school_id)
        .outerjoin(t.Account, t.Account.id == q.account_id)
        .outerjoin(t.Staff, t.Staff.id == q.assignee_id)
        .order_by(q.rank, q.due_at.asc().nulls_last(), q.opened_at, q.id)
        .limit(bindparam("limit", type_=Integer))
    )


def queue_rows(session: Session, states: tuple[str, ...], params: Mapping[str, Any]) -> list[Any]:
    """The queue's rows in order, in one statement: (id, school key, account key, platform,
    category, severity, state, restricted, title, assignee key, assignee name, police step,
    due). ``params`` holds ``limit`` and the value of each filter in use ("served", "school",
    "account", "platform", "category", "assignee"); the statement is built once per shape."""
    statement = _queue_statement(states, frozenset(params) - {"limit"})
    return list(session.execute(statement, dict(params)))


# ------------------------------------------------------------- the case page


def case_events(session: Session, case_id: int) -> Sequence[t.AuditEvent]:
    """The case's audit events, in order."""
    return session.scalars(
        select(t.AuditEvent).where(t.AuditEvent.case_id == case_id).order_by(t.AuditEvent.seq)
    ).all()


def action_requests(session: Session, case_id: int) -> Sequence[t.ActionRequest]:
    """The actions requested on the case, in order."""
    return session.scalars(
        select(t.ActionRequest)
        .where(t.ActionRequest.case_id == case_id)
        .order_by(t.ActionRequest.id)
    ).all()


def cases_of_items(session: Session, item_ids: Sequence[int]) -> Sequence[Any]:
    """(item, category, restricted, state, police step, school key) of the cases about
    ``item_ids``, in one statement."""
    return session.execute(
        select(
            t.Case.item_id,
            t.Case.category,
            t.Case.restricted,
            t.Case.state,
            t.Case.police_step,
            t.School.key,
        )
        .outerjoin(t.School, t.School.id == t.Case.school_id)
        .where(t.Case.item_id.in_(list(item_ids)))
    ).all()


def assessment_of(session: Session, item_id: int) -> t.Assessment | None:
    """The item's assessment (None before it is assessed)."""
    return session.scalars(
        select(t.Assessment).where(t.Assessment.item_id == item_id)
    ).one_or_none()


def parent_of(session: Session, item: t.Item) -> t.Item | None:
    """The post ``item`` replies to, when it is stored."""
    return session.scalars(
        select(t.Item).where(t.Item.platform == item.platform, t.Item.platform_id == item.parent_id)
    ).one_or_none()


def siblings_of(session: Session, item: t.Item, *, limit: int) -> Sequence[t.Item]:
    """The other replies to ``item``'s parent, oldest first, at most ``limit``."""
    return session.scalars(
        select(t.Item)
        .where(
            t.Item.platform == item.platform,
            t.Item.parent_id == item.parent_id,
            t.Item.id != item.id,
        )
        .order_by(t.Item.created_at)
        .limit(limit)
    ).all()


def evidence_of(session: Session, case_id: int) -> Sequence[t.Evidence]:
    """The case's evidence records, in order."""
    return session.scalars(
        select(t.Evidence).where(t.Evidence.case_id == case_id).order_by(t.Evidence.id)
    ).all()
