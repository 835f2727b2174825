"""The retention purge: exactly what goes and what stays, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit, cases
from monitor.config_models import Retention
from monitor.constants import CaseState
from monitor.evidence import intact
from monitor.retention import AUDIT_ACTION, SCRUBBED_TITLE, cutoffs, purge
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.records.seed_records import (
    add_action,
    add_alert,
    add_case,
    add_case_without_history,
    add_item,
    add_removal_check,
    capture,
    ids,
    sync_example,
)

POLICY = Retention(
    unflagged_items_days=30,
    flagged_items_days=100,
    evidence_days=200,
    closed_cases_days=300,
    alerts_days=50,
)


@pytest.mark.parametrize(
    ("field", "days"),
    [
        ("unflagged_items", 30),
        ("flagged_items", 100),
        ("evidence", 200),
        ("closed_cases", 300),
        ("alerts", 50),
    ],
)
def test_cutoffs_are_whole_days_before_now(field: str, days: int) -> None:
    now = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)  # a clock-change day: UTC arithmetic
    assert getattr(cutoffs(POLICY, now), field) == now - timedelta(days=days)


def test_cutoffs_use_the_defaults_and_refuse_naive_times() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    limits = cutoffs(Retention(), now)
    assert limits.unflagged_items == now - timedelta(days=90)
    assert limits.evidence == limits.closed_cases == now - timedelta(days=2555)
    with pytest.raises(ValueError, match="naive"):
        cutoffs(Retention(), datetime(2026, 11, 23))


@dataclass
class World:
    """Ids of every seeded row, named by what the purge must do with it."""

    items_gone: set[int] = field(default_factory=set)
    items_kept: set[int] = field(default_factory=set)
    evidence_gone: set[int] = field(default_factory=set)
    evidence_kept: set[int] = field(default_factory=set)
    cases_scrubbed: set[int] = field(default_factory=set)
    cases_deleted: set[int] = field(default_factory=set)
    cases_untouched: set[int] = field(default_factory=set)
    actions_gone: set[int] = field(default_factory=set)
    actions_kept: set[int] = field(default_factory=set)
    checks_gone: set[int] = field(default_factory=set)
    checks_kept: set[int] = field(default_factory=set)
    alerts_gone: set[int] = field(default_factory=set)
    alerts_kept: set[int] = field(default_factory=set)
    assessments_gone: int = 0


def seed(session: Session, now: datetime) -> World:
    account = sync_example(session, now - timedelta(days=1000))

    def ago(days: int) -> datetime:
        return now - timedelta(days=days)

    w = World()
    # -- unflagged items
    old = add_item(session, account, seen_at=ago(31))
    w.items_gone.add(old.id)
    w.items_kept.add(add_item(session, account, seen_at=ago(29)).id)
    busy = add_item(session, account, seen_at=ago(31))  # a hide still waiting to run
    w.actions_kept.add(add_action(session, item=busy, case=None, at=ago(31), status="pending").id)
    w.items_kept.add(busy.id)
    unchecked = add_item(session, account, seen_at=ago(31), assessed=False)
    w.checks_kept.add(
        add_removal_check(
            session, item=unchecked, case=None, action=None, due_at=ago(1), checked=False
        ).id
    )
    w.items_kept.add(unchecked.id)
    # -- flagged items
    settled_long_ago = add_item(session, account, seen_at=ago(150), flagged=True)
    case_a = add_case(
        session, opened_at=ago(150), item=settled_long_ago, state=CaseState.CLOSED,
        closed_at=ago(120),
    )  # fmt: skip
    w.items_gone.add(settled_long_ago.id)
    w.cases_untouched.add(case_a.id)
    settled_recently = add_item(session, account, seen_at=ago(150), flagged=True)
    case_b = add_case(
        session, opened_at=ago(150), item=settled_recently, state=CaseState.DISMISSED,
        closed_at=ago(10),
    )  # fmt: skip
    w.items_kept.add(settled_recently.id)
    w.cases_untouched.add(case_b.id)
    open_item = add_item(session, account, seen_at=ago(400), flagged=True)
    case_open = add_case(session, opened_at=ago(400), item=open_item)
    w.evidence_kept.add(capture(session, open_item, case_open, ago(400)).id)
    w.items_kept.add(open_item.id)
    w.cases_untouched.add(case_open.id)
    responded_item = add_item(session, account, seen_at=ago(400), flagged=True)
    # dismissed, then escalated and responded to: closed_at stays set, but the case is live
    case_responded = add_case(
        session, opened_at=ago(400), item=responded_item, state=CaseState.DISMISSED,
        closed_at=ago(399),
    )  # fmt: skip
    for state, days in ((CaseState.ESCALATED, 398), (CaseState.RESPONDED, 397)):
        cases.change_state(session, case_responded, state, actor="test", now=ago(days))
    assert case_responded.closed_at == ago(399)
    w.evidence_kept.add(capture(session, responded_item, case_responded, ago(400)).id)
    w.items_kept.add(responded_item.id)
    w.cases_untouched.add(case_responded.id)
    w.items_gone.add(add_item(session, account, seen_at=ago(150), flagged=True).id)
    # an unflagged item whose only link is evidence held by another, open case
    witness = add_item(session, account, seen_at=ago(400))
    w.evidence_kept.add(capture(session, witness, case_open, ago(399)).id)
    w.items_kept.add(witness.id)
    # -- a case settled before the case window: children go, row is scrubbed
    expired_item = add_item(session, account, seen_at=ago(400), flagged=True)
    case_old = add_case(
        session, opened_at=ago(400), item=expired_item, state=CaseState.CLOSED,
        closed_at=ago(350), title="Abuse from @troll",
    )  # fmt: skip
    w.evidence_gone.add(capture(session, expired_item, case_old, ago(400)).id)
    hide = add_action(session, item=expired_item, case=case_old, at=ago(400))
    w.actions_gone.add(hide.id)
    w.checks_gone.add(
        add_removal_check(
            session, item=expired_item, case=case_old, action=hide, due_at=ago(399)
        ).id
    )
    w.alerts_gone.add(add_alert(session, at=ago(400), case=case_old).id)
    w.items_gone.add(expired_item.id)
    w.cases_scrubbed.add(case_old.id)
    # an old settled case that still has a pending action waits for it
    case_waiting = add_case(session, opened_at=ago(400), state=CaseState.CLOSED, closed_at=ago(350))
    w.actions_kept.add(
        add_action(session, item=None, case=case_waiting, at=ago(1), status="pending").id
    )
    w.cases_untouched.add(case_waiting.id)
    # a settled case no audit event, evidence or alert refers to is deleted outright
    w.cases_deleted.add(
        add_case_without_history(
            session, opened_at=ago(400), closed_at=ago(350), state=CaseState.DISMISSED
        ).id
    )
    # -- evidence
    recent_case_item = add_item(session, account, seen_at=ago(400), flagged=True)
    case_c = add_case(
        session, opened_at=ago(400), item=recent_case_item, state=CaseState.CLOSED,
        closed_at=ago(150),
    )  # fmt: skip
    w.evidence_kept.add(capture(session, recent_case_item, case_c, ago(400)).id)
    w.items_gone.add(recent_case_item.id)  # the case settled > 100 days ago
    w.cases_untouched.add(case_c.id)
    loose = add_item(session, account, seen_at=ago(20))
    w.evidence_gone.add(capture(session, loose, None, ago(250)).id)
    w.evidence_kept.add(capture(session, loose, None, ago(100)).id)
    w.items_kept.add(loose.id)  # referenced by evidence: flagged window, 20 days old
    # -- alerts
    w.alerts_gone.add(add_alert(session, at=ago(60)).id)
    w.alerts_kept.add(add_alert(session, at=ago(40)).id)
    w.alerts_kept.add(add_alert(session, at=ago(400), status="pending").id)
    w.alerts_kept.add(add_alert(session, at=ago(400), status="failed").id)
    w.alerts_gone.add(add_alert(session, at=ago(400), status="cancelled").id)  # by a person
    w.alerts_kept.add(add_alert(session, at=ago(400), case=case_open).id)
    w.assessments_gone = len(w.items_gone)  # each of those has one assessment
    session.flush()
    return w


def snapshot_state(session: Session) -> dict[str, object]:
    return {
        "items": ids(session, t.Item),
        "assessments": ids(session, t.Assessment),
        "evidence": ids(session, t.Evidence),
        "cases": {(c.id, c.title, c.item_id) for c in session.scalars(select(t.Case))},
        "actions": ids(session, t.ActionRequest),
        "checks": ids(session, t.RemovalCheck),
        "alerts": ids(session, t.Alert),
        "audit": ids(session, t.AuditEvent),
    }


@pytest.mark.parametrize("batch_size", [1, 1000])
def test_purge_removes_exactly_what_the_policy_says(
    sessions: sessionmaker[Session], now: datetime, batch_size: int
) -> None:
    with transaction(sessions) as session:
        w = seed(session, now)
        events_before = ids(session, t.AuditEvent)
    with sessions() as session:
        report = purge(session, POLICY, now=now, batch_size=batch_size, commit_batches=True)
    assert report.counts() == {
        "items": len(w.items_gone),
        "assessments": w.assessments_gone,
        "evidence": len(w.evidence_gone),
        "cases_deleted": 1,
        "cases_scrubbed": 1,
        "action_requests": 1,
        "removal_checks": 1,
        "alerts": len(w.alerts_gone),
        "quarantined_items": 0,
    }
    with sessions() as session:
        items = ids(session, t.Item)
        assert items & w.items_gone == set() and w.items_kept <= items
        evidence = ids(session, t.Evidence)
        assert evidence & w.evidence_gone == set() and w.evidence_kept <= evidence
        assert all(intact(e) for e in session.scalars(select(t.Evidence)))
        actions = ids(session, t.ActionRequest)
        assert actions & w.actions_gone == set() and w.actions_kept <= actions
        checks = ids(session, t.RemovalCheck)
        assert checks & w.checks_gone == set() and w.checks_kept <= checks
        alerts = ids(session, t.Alert)
        assert alerts & w.alerts_gone == set() and w.alerts_kept <= alerts
        case_rows = {c.id: c for c in session.scalars(select(t.Case))}
        assert set(case_rows) == w.cases_untouched | w.cases_scrubbed
        for cid in w.cases_scrubbed:
            scrubbed = case_rows[cid]
            assert (scrubbed.title, scrubbed.details, scrubbed.item_id) == (
                SCRUBBED_TITLE,
                {},
                None,
            )
            assert scrubbed.state == "closed"  # the record that a case existed stays
        for cid in w.cases_untouched:
            assert case_rows[cid].title != SCRUBBED_TITLE
        # every earlier audit event is still there, and the chain still verifies
        events = {e.id: e for e in session.scalars(select(t.AuditEvent))}
        assert events_before < set(events)
        count, breaks = audit.verify_chain(session)
        assert breaks == [] and count == len(events)
        summary = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == AUDIT_ACTION)
        ).one()
        assert summary.details["counts"] == report.counts()
        assert set(summary.details) == {"counts", "cutoffs"}  # figures only, no content
    # a second run finds nothing more (scrubbed cases are not counted again)
    with sessions() as session:
        again = purge(session, POLICY, now=now, commit_batches=True)
    assert set(again.counts().values()) == {0}


def test_dry_run_counts_exactly_and_changes_nothing(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    with transaction(sessions) as session:
        seed(session, now)
    with sessions() as session:
        before = snapshot_state(session)
    with transaction(sessions) as session:
        dry = purge(session, POLICY, now=now, dry_run=True)
    with sessions() as session:
        assert snapshot_state(session) == before
    with transaction(sessions) as session:
        real = purge(session, POLICY, now=now)
    assert dry.dry_run and not real.dry_run
    assert dry.counts() == real.counts() and sum(real.counts().values()) > 0


def test_evidence_of_an_open_case_is_never_deleted(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    ancient = now - timedelta(days=5000)
    with transaction(sessions) as session:
        account = sync_example(session, ancient)
        item = add_item(session, account, seen_at=ancient, flagged=True)
        case = add_case(session, opened_at=ancient, item=item, state=CaseState.ESCALATED)
        record = capture(session, item, case, ancient)
        record_id, item_id = record.id, item.id
    tightest = Retention(
        unflagged_items_days=1,
        flagged_items_days=1,
        evidence_days=1,
        closed_cases_days=1,
        alerts_days=1,
    )
    with transaction(sessions) as session:
        report = purge(session, tightest, now=now)
    assert report.items == report.evidence == report.cases_scrubbed == 0
    with sessions() as session:
        assert session.get(t.Evidence, record_id) is not None
        assert session.get(t.Item, item_id) is not None
