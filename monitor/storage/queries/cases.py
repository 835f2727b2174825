"""Cases: the facts about a case that many parts of the monitor read (its school)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from monitor.storage import tables as t


def school_of(session: Session, case: t.Case | None) -> t.School | None:
    """The case's school (None for a case without one, or without a case)."""
    if case is None or case.school_id is None:
        return None
    return session.get(t.School, case.school_id)


def school_key_of(session: Session, case: t.Case | None) -> str | None:
    """The key of the case's school (None: no school, the trust as a whole)."""
    school = school_of(session, case)
    return school.key if school else None
