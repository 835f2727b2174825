"""Scheduled checks (R1-R4, R13) and the staff-leaving handover, on the database."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit, cases
from monitor.config import load_config
from monitor.config_models import Config
from monitor.constants import CaseState, Category, Severity
from monitor.directory import load_directory
from monitor.handover import HandoverRefused, schedule_leaving
from monitor.jobs.compliance import run_compliance
from monitor.storage import repo
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG


def example(**changes: Any) -> Config:
    return load_config(EXAMPLE_CONFIG, environ={}).config.model_copy(update=changes)


def synced(sessions: sessionmaker[Session], config: Config, now: datetime) -> None:
    with transaction(sessions) as session:
        apply_config(session, config, now=now)


def comply(sessions: sessionmaker[Session], config: Config, now: datetime) -> Any:
    with transaction(sessions) as session:
        return run_compliance(session, load_directory(session, config.routing), now=now)


def open_keys(session: Session, category: Category) -> list[str]:
    rows = session.scalars(
        select(t.Case).where(
            t.Case.category == category.value, t.Case.state != CaseState.CLOSED.value
        )
    )
    return [row.dedupe_key for row in rows]


def admins(session: Session, account: str) -> set[str]:
    return set(
        session.scalars(
            select(t.Staff.key)
            .join(t.AccountAdmin, t.AccountAdmin.staff_id == t.Staff.id)
            .join(t.Account, t.Account.id == t.AccountAdmin.account_id)
            .where(t.Account.key == account, t.AccountAdmin.removed_at.is_(None))
        )
    )


def mark_polled(sessions: sessionmaker[Session], now: datetime) -> None:
    with transaction(sessions) as session:
        for account in session.scalars(select(t.Account)):
            repo.mark_success(session, account.id, now, timedelta(minutes=5))


def test_two_admin_rule_opens_once_and_closes_when_fixed(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    one_admin = config.accounts[0].model_copy(update={"admins": ["cjones"]})
    broken = config.model_copy(update={"accounts": [one_admin, *config.accounts[1:]]})
    synced(sessions, broken, now)
    mark_polled(sessions, now)
    first = comply(sessions, broken, now)
    mark_polled(sessions, now + timedelta(days=1))
    again = comply(sessions, broken, now + timedelta(days=1))
    with sessions() as session:
        [key] = open_keys(session, Category.TWO_ADMINS)
        assert key.startswith("two_admins:oakfield-bluesky:")
        alerted = {
            a.target for a in session.scalars(select(t.Alert).where(t.Alert.kind == "case_opened"))
        }
        assert "a.okafor@oakfield.example.sch.uk" in alerted  # SLT told
    assert len(first.opened) == 1 and again.opened == []
    synced(sessions, config, now + timedelta(days=2))
    mark_polled(sessions, now + timedelta(days=2))
    fixed = comply(sessions, config, now + timedelta(days=2))
    assert len(fixed.closed) == 1
    with sessions() as session:
        assert open_keys(session, Category.TWO_ADMINS) == []


def test_monitoring_gap_opens_for_it_and_closes_on_recovery(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    synced(sessions, config, now)
    mark_polled(sessions, now)
    assert comply(sessions, config, now + timedelta(minutes=29)).opened == []
    gap = comply(sessions, config, now + timedelta(minutes=31))
    with sessions() as session:
        [key] = open_keys(session, Category.MONITORING_GAP)
        assert "oakfield-bluesky" in key
        targets = {
            a.target
            for a in session.scalars(select(t.Alert).where(t.Alert.case_id == gap.opened[0]))
        }
        assert targets == {"#it-alerts", "U01GEORGES", "it@northfield.example.org.uk"}
    mark_polled(sessions, now + timedelta(minutes=40))
    recovered = comply(sessions, config, now + timedelta(minutes=41))
    assert recovered.closed == gap.opened


def test_register_gaps_are_reported(sessions: sessionmaker[Session], now: datetime) -> None:
    config = example()
    no_approver = config.accounts[0].model_copy(update={"approved_by": None, "linked_email": None})
    config = config.model_copy(update={"accounts": [no_approver]})
    synced(sessions, config, now)
    mark_polled(sessions, now)
    comply(sessions, config, now)
    with sessions() as session:
        case = session.scalars(
            select(t.Case).where(t.Case.category == Category.ACCOUNT_REGISTER.value)
        ).one()
        assert "no approving senior leader" in case.title and "no linked school email" in case.title


def test_response_clock_reminds_then_escalates_once(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    synced(sessions, config, now)
    mark_polled(sessions, now)
    due = now + timedelta(hours=24)
    with transaction(sessions) as session:
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        case, _ = cases.open_case(
            session,
            dedupe_key="item:query",
            category=Category.NEEDS_RESPONSE,
            severity=Severity.LOW,
            title="Query",
            now=now,
            account_id=account.id,
            school_id=account.school_id,
            due_at=due,
            remind_at=due - timedelta(hours=4),
            details={"categories": ["needs_response"]},
        )
        case_id = case.id
    assert comply(sessions, config, due - timedelta(hours=5)).reminders == []
    mark_polled(sessions, due - timedelta(hours=3))
    assert comply(sessions, config, due - timedelta(hours=3)).reminders == [case_id]
    assert comply(sessions, config, due - timedelta(hours=2)).reminders == []
    mark_polled(sessions, due)
    assert comply(sessions, config, due).breaches == [case_id]
    assert comply(sessions, config, due + timedelta(hours=1)).breaches == []
    with sessions() as session:
        case = session.get(t.Case, case_id)
        assert (
            case is not None and case.state == CaseState.ESCALATED.value and case.breached_at == due
        )
        kinds = sorted(
            {a.kind for a in session.scalars(select(t.Alert).where(t.Alert.case_id == case_id))}
        )
        assert kinds == ["breach", "reminder"]
        breach_targets = {
            a.target for a in session.scalars(select(t.Alert).where(t.Alert.kind == "breach"))
        }
        assert "a.okafor@oakfield.example.sch.uk" in breach_targets  # escalated to SLT


def test_handover_with_a_successor(sessions: sessionmaker[Session], now: datetime) -> None:
    """A leaver with two accounts and an open case: roles and the case pass to the successor."""
    config = example()
    two_accounts = [
        a.model_copy(update={"admins": ["cjones", "dmurphy"]}) if a.key == "riverside-reddit" else a
        for a in config.accounts
    ]
    config = config.model_copy(update={"accounts": two_accounts})
    synced(sessions, config, now)
    mark_polled(sessions, now)
    with transaction(sessions) as session:
        leaver = session.scalars(select(t.Staff).where(t.Staff.key == "cjones")).one()
        case, _ = cases.open_case(
            session,
            dedupe_key="item:1",
            category=Category.ABUSIVE,
            severity=Severity.MEDIUM,
            title="x",
            now=now,
        )
        cases.assign(session, case, leaver, actor="test", now=now)
        case_id = case.id
        schedule_leaving(
            session, "cjones", on=date(2026, 12, 4), successor_key="fali", actor="aokafor", now=now
        )
    warned = comply(
        sessions, config, datetime(2026, 11, 20, 9, 0, tzinfo=now.tzinfo)
    )  # 14 days before
    assert warned.warnings == ["cjones:14"]
    day = datetime(2026, 12, 4, 8, 0, tzinfo=now.tzinfo)
    mark_polled(sessions, day)
    result = comply(sessions, config, day)
    assert result.handovers == ["cjones"]
    with sessions() as session:
        for account in ("oakfield-bluesky", "oakfield-mastodon", "riverside-reddit"):
            assert "cjones" not in admins(session, account)
            assert "fali" in admins(session, account)
        moved = session.get(t.Case, case_id)
        assert (
            moved is not None
            and moved.assignee_id
            == session.scalars(select(t.Staff.id).where(t.Staff.key == "fali")).one()
        )
        rotations = session.scalars(
            select(t.Case.dedupe_key).where(t.Case.category == Category.CREDENTIAL_ROTATION.value)
        ).all()
        assert sorted(rotations) == [
            f"credential_rotation:{a}:cjones"
            for a in ("oakfield-bluesky", "oakfield-mastodon", "riverside-reddit")
        ]
        leaver = session.scalars(select(t.Staff).where(t.Staff.key == "cjones")).one()
        assert not leaver.active and leaver.left_at == day
        assert open_keys(session, Category.TWO_ADMINS) == []
        assert audit.verify_chain(session)[1] == []
    # a later config sync does not bring the leaver back
    synced(sessions, config, day + timedelta(days=1))
    with sessions() as session:
        assert "cjones" not in admins(session, "oakfield-bluesky")
        assert not session.scalars(select(t.Staff).where(t.Staff.key == "cjones")).one().active


def test_handover_without_a_successor_is_refused_when_it_would_leave_one_admin(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    synced(sessions, config, now)
    with (
        pytest.raises(
            HandoverRefused, match="oakfield-bluesky would be left with 1 active administrator"
        ),
        transaction(sessions) as session,
    ):
        schedule_leaving(
            session, "cjones", on=date(2026, 12, 4), successor_key=None, actor="aokafor", now=now
        )
    with sessions() as session:
        leaver = session.scalars(select(t.Staff).where(t.Staff.key == "cjones")).one()
        assert leaver.leaving_on == date(2027, 7, 22)  # from the config; nothing changed


def test_handover_without_a_successor_when_others_remain(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    three = config.accounts[0].model_copy(update={"admins": ["cjones", "dmurphy", "fali"]})
    config = config.model_copy(update={"accounts": [three]})
    synced(sessions, config, now)
    with transaction(sessions) as session:
        schedule_leaving(
            session, "cjones", on=date(2026, 11, 23), successor_key=None, actor="aokafor", now=now
        )
    mark_polled(sessions, now)
    result = comply(sessions, config, now)
    assert result.handovers == ["cjones"]
    with sessions() as session:
        assert admins(session, "oakfield-bluesky") == {"dmurphy", "fali"}


def test_a_blocked_handover_on_the_day_raises_a_case(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    staff = [
        s.model_copy(update={"leaving_date": date(2026, 11, 23), "successor": None})
        if s.id == "cjones"
        else s
        for s in config.staff
    ]
    config = config.model_copy(update={"staff": staff})
    synced(sessions, config, now)
    mark_polled(sessions, now)
    comply(sessions, config, now)
    with sessions() as session:
        [key] = open_keys(session, Category.TWO_ADMINS)
        assert key.startswith("handover_blocked:cjones:")
        assert "cjones" in admins(session, "oakfield-bluesky")
