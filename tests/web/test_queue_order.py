"""The queue's order and filters, read straight from ``views.queue_lines`` (merged per
severity and state, so each is one index scan at 100,000 cases)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event
from starlette.testclient import TestClient

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


def _statements_per_page(trust: Trust, client: TestClient, path: str) -> int:
    engine = trust.sessions.kw["bind"]
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        response = client.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.text[:300]
    return len(seen)


def _open_many(trust: Trust, n: int) -> None:
    """``n`` more open cases spread over every severity, open state, school and assignee."""
    severities = list(Severity)
    states = [CaseState.NEW, CaseState.ACKNOWLEDGED, CaseState.ACTIONED, CaseState.ESCALATED]
    with transaction(trust.sessions) as session:
        accounts = session.query(t.Account).order_by(t.Account.id).all()
        staff = session.query(t.Staff).order_by(t.Staff.id).all()
        for i in range(n):
            account = accounts[i % len(accounts)]
            case, _ = cases.open_case(
                session,
                dedupe_key=f"many:{i}",
                category=list(Category)[i % len(Category)],
                severity=severities[i % len(severities)],
                title=f"case {i}",
                now=START - timedelta(minutes=i),
                account_id=account.id,
                school_id=account.school_id,
                due_at=None if i % 3 == 0 else START + timedelta(hours=i % 7 - 3),
            )
            case.state = states[i % len(states)].value
            case.assignee_id = staff[i % len(staff)].id if i % 2 else None


@pytest.mark.parametrize(
    "path", ["/queue", "/queue/rows", "/queue?school=oak&category=abusive&mine=1"]
)
def test_the_queue_costs_a_few_statements_whatever_the_number_of_cases(
    trust: Trust, client_for: Callable[[str], TestClient], path: str
) -> None:
    # the sign-in, the directory, one statement for the cases (school, account and assignee
    # joined in) and the filter choices; never a statement per case, severity or state
    client = client_for("dana")
    client.get(path)  # first request: nothing cached counts
    few = _statements_per_page(trust, client, path)
    _open_many(trust, 120)
    many = _statements_per_page(trust, client, path)
    assert many == few
    assert few <= 7
    assert len(client.get(path).text) > 0


def test_the_case_page_costs_the_same_statements_however_long_the_thread(
    trust: Trust, client_for: Callable[[str], TestClient]
) -> None:
    # each sibling reply may be part of a safeguarding case the reader may not see: that is
    # one statement for the whole thread, not one per sibling
    client = client_for("dana")
    path = f"/cases/{trust.ids['abusive_case']}"
    client.get(path)
    short = _statements_per_page(trust, client, path)
    with transaction(trust.sessions) as session:
        oak = session.query(t.Account).filter_by(key="oak-bsky").one()
        for i in range(8):
            session.add(
                t.Item(
                    platform=oak.platform,
                    platform_id=f"more{i}",
                    account_id=oak.id,
                    stream="replies",
                    kind="reply",
                    url=f"https://bsky.app/post/more{i}",
                    author_id=f"did:more{i}",
                    author_handle="more.bsky.social",
                    text=f"another reply {i}",
                    parent_id="post1",
                    root_id="post1",
                    created_at=START,
                    seen_at=START,
                )
            )
    long = _statements_per_page(trust, client, path)
    assert "another reply 7" in client.get(path).text
    assert long == short
