"""The queue's order and filters, read straight from ``views.queue_lines`` (merged per
severity and state, so each is one index scan at 100,000 cases)."""

from __future__ import annotations

from datetime import timedelta

from monitor import cases
from monitor.constants import CaseState, Category, Severity
from monitor.directory import load_directory
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.web.views import QueueFilters, queue_lines
from tests.web.conftest import START, Trust


def test_gravest_then_most_overdue_then_undated_oldest_across_states(trust: Trust) -> None:
    made: dict[str, int] = {}
    with transaction(trust.sessions) as session:
        oak = session.query(t.Account).filter_by(key="oak-bsky").one()
        for name, severity, state, due, opened in (
            ("high-later", Severity.HIGH, CaseState.ACKNOWLEDGED, 10, 0),
            ("high-sooner", Severity.HIGH, CaseState.NEW, 1, 0),
            ("high-undated-old", Severity.HIGH, CaseState.ESCALATED, None, -5),
            ("high-undated-new", Severity.HIGH, CaseState.NEW, None, -1),
            ("low-overdue", Severity.LOW, CaseState.NEW, -50, 0),
        ):
            case, _ = cases.open_case(
                session,
                dedupe_key=f"order:{name}",
                category=Category.NEEDS_RESPONSE,
                severity=severity,
                title=name,
                now=START + timedelta(hours=opened),
                account_id=oak.id,
                school_id=oak.school_id,
                due_at=None if due is None else START + timedelta(hours=due),
            )
            case.state = state.value
            made[name] = case.id
    with trust.sessions() as session:
        directory = load_directory(session, trust.config.routing, now=START)
        dana = directory.person("dana")
        assert dana is not None
        order = [
            line.title
            for line in queue_lines(session, directory, dana, QueueFilters(), now=START)
            if line.case_id in made.values()
        ]
        assert order == [
            "high-sooner",
            "high-later",
            "high-undated-old",
            "high-undated-new",
            "low-overdue",
        ]
        # the limit keeps the gravest
        top = queue_lines(session, directory, dana, QueueFilters(), now=START, limit=2)
        assert [line.severity for line in top] == ["critical", "high"]
        # filters: a state, an unknown account, "mine" with somebody else as assignee
        only_new = queue_lines(session, directory, dana, QueueFilters(state="new"), now=START)
        assert {line.state for line in only_new} == {"new"}
        assert queue_lines(session, directory, dana, QueueFilters(account="nope"), now=START) == []
        assert (
            queue_lines(
                session, directory, dana, QueueFilters(assignee="morgan", mine=True), now=START
            )
            == []
        )
