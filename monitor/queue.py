"""The moderators' queue: open cases, most serious and most urgent first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from monitor.constants import OPEN_CASE_STATES, SEVERITY_ORDER
from monitor.storage import tables as t

OPEN_STATES = [s.value for s in OPEN_CASE_STATES]


@dataclass(frozen=True)
class QueueRow:
    """One line of the queue (no content of restricted cases)."""

    case_id: int
    school_id: int | None
    category: str
    severity: str
    state: str
    title: str
    opened_at: datetime
    due_at: datetime | None
    restricted: bool


def _page(session: Session, base: Select[t.Case], limit: int) -> list[t.Case]:
    """Cases of one severity: those with a due time by due time, then the rest by age."""
    due = list(
        session.scalars(
            base.where(t.Case.due_at.is_not(None))
            .order_by(t.Case.due_at, t.Case.opened_at)
            .limit(limit)
        )
    )
    if len(due) >= limit:
        return due
    undated = session.scalars(
        base.where(t.Case.due_at.is_(None)).order_by(t.Case.opened_at).limit(limit - len(due))
    )
    return due + list(undated)


def moderation_queue(
    session: Session, *, school_key: str | None = None, limit: int = 50
) -> list[QueueRow]:
    """Open cases for one school (or all), by severity, then due time, then age.

    Each (severity, state) pair is one ordered index scan (ix_cases_queue) merged here:
    sorting every open case by a computed rank would read them all.
    """
    school_id = None
    if school_key is not None:
        school_id = session.scalar(select(t.School.id).where(t.School.key == school_key))
        if school_id is None:
            return []
    chosen: list[t.Case] = []
    for severity in sorted(SEVERITY_ORDER, key=SEVERITY_ORDER.__getitem__, reverse=True):
        wanted = limit - len(chosen)
        if wanted <= 0:
            break
        candidates: list[t.Case] = []
        for state in OPEN_STATES:
            base = select(t.Case).where(t.Case.severity == severity.value, t.Case.state == state)
            if school_id is not None:
                base = base.where(t.Case.school_id == school_id)
            candidates += _page(session, base, wanted)
        candidates.sort(key=lambda c: (c.due_at is None, c.due_at or c.opened_at, c.opened_at))
        chosen += candidates[:wanted]
    return [
        QueueRow(
            c.id,
            c.school_id,
            c.category,
            c.severity,
            c.state,
            c.title,
            c.opened_at,
            c.due_at,
            c.restricted,
        )
        for c in chosen
    ]
