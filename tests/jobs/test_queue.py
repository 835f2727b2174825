"""The moderators' queue: open cases only, most serious first, then by due time, then by age."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor import cases
from monitor.config import load_config
from monitor.constants import CaseState, Category, Severity
from monitor.queue import moderation_queue
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG


def test_queue_order_and_filters(sessions: sessionmaker[Session], now: datetime) -> None:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
        from sqlalchemy import select

        from monitor.storage import tables as t

        oak = session.scalars(select(t.School.id).where(t.School.key == "oakfield")).one()
        river = session.scalars(select(t.School.id).where(t.School.key == "riverside")).one()
        rows = [
            ("low-late", Severity.LOW, now + timedelta(hours=1), oak, CaseState.NEW),
            ("high-nodue-old", Severity.HIGH, None, oak, CaseState.ACKNOWLEDGED),
            ("high-due-late", Severity.HIGH, now + timedelta(hours=5), oak, CaseState.NEW),
            ("high-due-soon", Severity.HIGH, now + timedelta(hours=2), river, CaseState.ESCALATED),
            ("critical", Severity.CRITICAL, None, oak, CaseState.NEW),
            ("closed-critical", Severity.CRITICAL, now, oak, CaseState.CLOSED),
        ]
        for n, (title, severity, due, school_id, state) in enumerate(rows):
            case, _ = cases.open_case(
                session,
                dedupe_key=title,
                category=Category.ABUSIVE,
                severity=severity,
                title=title,
                now=now + timedelta(minutes=n),
                due_at=due,
                school_id=school_id,
            )
            case.state = state.value
    with sessions() as session:
        assert [r.title for r in moderation_queue(session)] == [
            "critical",
            "high-due-soon",
            "high-due-late",
            "high-nodue-old",
            "low-late",
        ]
        assert [r.title for r in moderation_queue(session, school_key="oakfield", limit=3)] == [
            "critical",
            "high-due-late",
            "high-nodue-old",
        ]
        assert moderation_queue(session, school_key="nowhere") == []
