"""Scheduled checks (R1-R4, R13) and the staff-leaving handover, on the database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit, cases
from monitor.actions import ActionRefused, Actor, request_action
from monitor.config import load_config
from monitor.config_models import Config
from monitor.constants import ActionKind, CaseState, Category, Severity
from monitor.directory import load_directory
from monitor.handover import HandoverRefused, schedule_leaving
from monitor.jobs.compliance import check_after_change, run_compliance
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries import accounts as account_queries
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG


def example(**changes: Any) -> Config:
    return load_config(EXAMPLE_CONFIG, environ={}).config.model_copy(update=changes)


def synced(sessions: sessionmaker[Session], config: Config, now: datetime) -> None:
    with transaction(sessions) as session:
        apply_config(session, config, now=now)


def comply(sessions: sessionmaker[Session], config: Config, now: datetime) -> Any:
    with transaction(sessions) as session:
        return run_compliance(session, load_directory(session, config.routing, now=now), now=now)


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
            account_queries.mark_success(session, account.id, now, timedelta(minutes=5))


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
        stored = session.get(t.Case, case_id)
        assert (
            stored is not None
            and stored.state == CaseState.ESCALATED.value
            and stored.breached_at == due
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


def open_case_for(
    session: Session, key: str, *, assignee: str, account: str | None, now: datetime
) -> int:
    """An open abusive case on ``account`` assigned to ``assignee``."""
    account_row = (
        session.scalars(select(t.Account).where(t.Account.key == account)).one()
        if account
        else None
    )
    case, _ = cases.open_case(
        session,
        dedupe_key=key,
        category=Category.ABUSIVE,
        severity=Severity.MEDIUM,
        title=key,
        now=now,
        account_id=account_row.id if account_row else None,
        school_id=account_row.school_id if account_row else None,
    )
    staff = session.scalars(select(t.Staff).where(t.Staff.key == assignee)).one()
    cases.assign(session, case, staff, actor="test", now=now)
    return case.id


def assignee_of(session: Session, case_id: int) -> str | None:
    case = session.get(t.Case, case_id)
    assert case is not None
    staff = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
    return staff.key if staff else None


def test_handover_without_a_successor_passes_everything_to_the_other_admins(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    """A leaver with two accounts and open cases, no successor: the other admins take over."""
    config = example()
    staff = [
        s.model_copy(update={"successor": None}) if s.id == "cjones" else s for s in config.staff
    ]
    accounts = [
        config.accounts[0].model_copy(update={"admins": ["cjones", "dmurphy", "fali"]}),
        config.accounts[1].model_copy(update={"admins": ["cjones", "fali", "dmurphy"]}),
    ]
    config = config.model_copy(update={"staff": staff, "accounts": accounts})
    synced(sessions, config, now)
    with transaction(sessions) as session:
        on_account = open_case_for(
            session, "item:a", assignee="cjones", account="oakfield-mastodon", now=now
        )
        trust_wide = open_case_for(session, "item:b", assignee="cjones", account=None, now=now)
        someone_else = open_case_for(
            session, "item:c", assignee="dmurphy", account="oakfield-bluesky", now=now
        )
        schedule_leaving(
            session, "cjones", on=now.date(), successor_key=None, actor="aokafor", now=now
        )
    mark_polled(sessions, now)
    result = comply(sessions, config, now)
    assert result.handovers == ["cjones"]
    with sessions() as session:
        for account in ("oakfield-bluesky", "oakfield-mastodon"):
            assert admins(session, account) == {"dmurphy", "fali"}
        assert assignee_of(session, on_account) in {"dmurphy", "fali"}  # an admin of its account
        assert assignee_of(session, trust_wide) is None  # back in the queue, not lost
        assert assignee_of(session, someone_else) == "dmurphy"
        rotations = session.scalars(
            select(t.Case).where(t.Case.category == Category.CREDENTIAL_ROTATION.value)
        ).all()
        assert sorted(r.dedupe_key for r in rotations) == [
            "credential_rotation:oakfield-bluesky:cjones",
            "credential_rotation:oakfield-mastodon:cjones",
        ]
        it_told = {
            a.target
            for a in session.scalars(
                select(t.Alert).where(t.Alert.case_id.in_([r.id for r in rotations]))
            )
        }
        assert "it@northfield.example.org.uk" in it_told
        # every step is in the (intact) audit log
        actions = session.scalars(select(t.AuditEvent.action).order_by(t.AuditEvent.seq)).all()
        handover = actions[actions.index("staff.leaving_scheduled") :]
        assert handover.count("account.admin_removed") == 2
        assert "account.admin_added" not in handover
        assert handover.count("case.assigned") == 2
        assert handover[-1] == "staff.left"
        assert audit.verify_chain(session)[1] == []
        assert open_keys(session, Category.TWO_ADMINS) == []


def test_a_successor_for_an_account_already_short_takes_over_and_r3_is_rechecked(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    only_leaver = config.accounts[0].model_copy(update={"admins": ["cjones"]})
    staff = [
        s.model_copy(update={"leaving_date": now.date(), "successor": "fali"})
        if s.id == "cjones"
        else s
        for s in config.staff
    ]
    config = config.model_copy(update={"staff": staff, "accounts": [only_leaver]})
    synced(sessions, config, now)
    mark_polled(sessions, now)
    result = comply(sessions, config, now)
    assert result.handovers == ["cjones"]
    with sessions() as session:
        assert admins(session, "oakfield-bluesky") == {"fali"}  # the leaver's access is gone
        [key] = open_keys(session, Category.TWO_ADMINS)
        assert key.startswith("two_admins:oakfield-bluesky:")  # and SLT hear it is still short


def test_a_blocked_handover_goes_ahead_once_fixed_and_its_case_closes(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    staff = [
        s.model_copy(update={"leaving_date": now.date(), "successor": None})
        if s.id == "cjones"
        else s
        for s in config.staff
    ]
    config = config.model_copy(update={"staff": staff, "accounts": config.accounts[:1]})
    synced(sessions, config, now)
    mark_polled(sessions, now)
    blocked = comply(sessions, config, now)
    assert blocked.handovers == [] and len(blocked.opened) == 1
    fixed = config.model_copy(
        update={
            "accounts": [
                config.accounts[0].model_copy(update={"admins": ["cjones", "dmurphy", "fali"]})
            ]
        }
    )
    later = now + timedelta(hours=1)
    synced(sessions, fixed, later)
    mark_polled(sessions, later)
    done = comply(sessions, fixed, later)
    assert done.handovers == ["cjones"] and blocked.opened[0] in done.closed
    with sessions() as session:
        assert open_keys(session, Category.TWO_ADMINS) == []
        assert admins(session, "oakfield-bluesky") == {"dmurphy", "fali"}


def test_standing_cases_of_an_account_that_is_gone_are_closed(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    short = config.accounts[0].model_copy(
        update={"admins": ["cjones"], "approved_by": None, "linked_email": None}
    )
    broken = config.model_copy(update={"accounts": [short, *config.accounts[1:]]})
    synced(sessions, broken, now)
    comply(sessions, broken, now + timedelta(hours=1))  # never polled: a gap as well
    with sessions() as session:
        for category in (Category.TWO_ADMINS, Category.ACCOUNT_REGISTER, Category.MONITORING_GAP):
            assert len(open_keys(session, category)) == 1, category
    removed = config.model_copy(update={"accounts": config.accounts[1:]})
    synced(sessions, removed, now + timedelta(hours=2))  # oakfield-bluesky is archived
    mark_polled(sessions, now + timedelta(hours=2))
    comply(sessions, removed, now + timedelta(hours=2))
    with sessions() as session:
        for category in (Category.TWO_ADMINS, Category.ACCOUNT_REGISTER, Category.MONITORING_GAP):
            assert open_keys(session, category) == [], category


def test_two_admin_violation_cannot_be_closed_by_hand(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    one_admin = config.accounts[0].model_copy(update={"admins": ["cjones"]})
    broken = config.model_copy(update={"accounts": [one_admin, *config.accounts[1:]]})
    synced(sessions, broken, now)
    mark_polled(sessions, now)
    comply(sessions, broken, now)
    with transaction(sessions) as session:
        case = session.scalars(
            select(t.Case).where(t.Case.category == Category.TWO_ADMINS.value)
        ).one()
        directory = load_directory(session, broken.routing, now=now)
        head = directory.person("aokafor")
        assert head is not None
        with pytest.raises(ActionRefused, match="closes itself"):
            request_action(
                session,
                case,
                ActionKind.CLOSE,
                actor=Actor.of(head, directory),
                now=now,
                directory=directory,
            )
    with sessions() as session:
        assert len(open_keys(session, Category.TWO_ADMINS)) == 1


def test_a_configuration_change_is_checked_at_once(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    synced(sessions, config, now)
    one_admin = config.accounts[0].model_copy(update={"admins": ["cjones"]})
    broken = config.model_copy(update={"accounts": [one_admin, *config.accounts[1:]]})
    with transaction(sessions) as session:
        apply_config(session, broken, now=now)
        report = check_after_change(
            session, load_directory(session, broken.routing, now=now), now=now
        )
    assert len(report.opened) == 1
    with sessions() as session:
        [key] = open_keys(session, Category.TWO_ADMINS)
        assert key.startswith("two_admins:oakfield-bluesky:")


def test_an_answered_case_closes_after_two_weeks_without_a_follow_up(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example()
    synced(sessions, config, now)
    with transaction(sessions) as session:
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        ids = []
        for key in ("answered", "still-open"):
            case, _ = cases.open_case(
                session,
                dedupe_key=f"item:{key}",
                category=Category.NEEDS_RESPONSE,
                severity=Severity.LOW,
                title=key,
                now=now,
                account_id=account.id,
                school_id=account.school_id,
                due_at=now + timedelta(hours=24),
                details={"categories": ["needs_response"]},
            )
            ids.append(case.id)
        answered = session.get(t.Case, ids[0])
        assert answered is not None
        cases.change_state(
            session,
            answered,
            CaseState.RESPONDED,
            actor="school-account",
            now=now,
            reason="replied",
        )
    later = now + timedelta(days=14)
    mark_polled(sessions, later - timedelta(hours=1))
    assert ids[0] not in comply(sessions, config, later - timedelta(hours=1)).closed
    mark_polled(sessions, later)
    report = comply(sessions, config, later)
    assert ids[0] in report.closed and ids[1] not in report.closed
    with sessions() as session:
        closed = session.get(t.Case, ids[0])
        assert closed is not None and closed.state == CaseState.CLOSED.value
        assert closed.closed_at == later  # now the retention policy can count it
        events = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.case_id == ids[0]).order_by(t.AuditEvent.seq)
        ).all()
        assert events[-1].actor == "policy" and "no follow-up" in (events[-1].reason or "")


def leaving_without_successor(on: date) -> Config:
    """The example with cjones (admin of both Oakfield accounts) leaving on ``on``, no successor."""
    config = example()
    staff = [
        s.model_copy(update={"leaving_date": on, "successor": None}) if s.id == "cjones" else s
        for s in config.staff
    ]
    return config.model_copy(update={"staff": staff})


def test_a_leaver_whose_handover_is_blocked_stops_counting_the_day_after(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = leaving_without_successor(now.date())
    synced(sessions, config, now)
    mark_polled(sessions, now)
    comply(sessions, config, now)
    with sessions() as session:
        # on their last day they still count: only the blocked handover is reported
        [key] = open_keys(session, Category.TWO_ADMINS)
        assert key.startswith("handover_blocked:cjones:")
    day_after = now + timedelta(days=1)
    mark_polled(sessions, day_after)
    report = comply(sessions, config, day_after)
    with sessions() as session:
        keys = sorted(open_keys(session, Category.TWO_ADMINS))
        assert [":".join(k.split(":")[:2]) for k in keys] == [
            "handover_blocked:cjones",
            "two_admins:oakfield-bluesky",
            "two_admins:oakfield-mastodon",
        ]
        assert "cjones" in admins(session, "oakfield-bluesky")  # still listed, but gone
        case = session.scalars(select(t.Case).where(t.Case.dedupe_key == keys[1])).one()
        assert case.id in report.opened
        assert case.title == (
            "oakfield-bluesky has 1 active administrator; policy needs at least 2"
            " (cjones past their leaving date)"
        )
        assert case.details["admins"] == ["dmurphy"]
        told = {
            a.target for a in session.scalars(select(t.Alert).where(t.Alert.case_id == case.id))
        }
        assert "a.okafor@oakfield.example.sch.uk" in told  # SLT hear of it as usual


@pytest.mark.parametrize(
    ("utc", "violation"),
    [
        (datetime(2026, 7, 22, 22, 59, tzinfo=UTC), False),  # 23:59 BST on the leaving date
        (datetime(2026, 7, 22, 23, 1, tzinfo=UTC), True),  # 00:01 BST the next day
    ],
)
def test_the_leaving_date_is_the_schools_local_date(
    sessions: sessionmaker[Session], utc: datetime, violation: bool
) -> None:
    config = leaving_without_successor(date(2026, 7, 22))
    synced(sessions, config, utc - timedelta(days=30))
    mark_polled(sessions, utc)
    comply(sessions, config, utc)
    with sessions() as session:
        keys = open_keys(session, Category.TWO_ADMINS)
        assert any(k.startswith("two_admins:oakfield-bluesky:") for k in keys) is violation


def test_no_one_is_assigned_a_case_after_their_leaving_date(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = leaving_without_successor(now.date())
    synced(sessions, config, now)
    with transaction(sessions) as session:
        directory = load_directory(session, config.routing, now=now)
        head = directory.person("aokafor")
        assert head is not None

        def assign(key: str, when: datetime) -> int:
            case_id = open_case_for(
                session, key, assignee="dmurphy", account="oakfield-bluesky", now=now
            )
            case = session.get(t.Case, case_id)
            assert case is not None
            request_action(
                session,
                case,
                ActionKind.ASSIGN,
                actor=Actor.of(head, directory),
                now=when,
                directory=directory,
                params={"staff": "cjones"},
            )
            return case_id

        on_last_day = assign("item:1", now)
        assert assignee_of(session, on_last_day) == "cjones"
        with pytest.raises(ActionRefused, match="cjones is not an active member of staff"):
            assign("item:2", now + timedelta(days=1))


def test_a_handover_does_not_count_on_someone_past_their_leaving_date(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = leaving_without_successor(now.date() - timedelta(days=1))  # cjones: blocked, gone
    three = config.accounts[0].model_copy(update={"admins": ["cjones", "dmurphy", "fali"]})
    config = config.model_copy(update={"accounts": [three, config.accounts[1]]})  # Oakfield's
    synced(sessions, config, now)
    for leaver, successor, why in (
        ("fali", None, "oakfield-bluesky would be left with 1 active administrator"),
        ("dmurphy", "cjones", "successor 'cjones' is not an active member of staff"),
    ):
        with pytest.raises(HandoverRefused, match=why), transaction(sessions) as session:
            schedule_leaving(
                session, leaver, on=now.date(), successor_key=successor, actor="aokafor", now=now
            )


@pytest.mark.parametrize(
    ("on", "successor", "refusal"),
    [
        (date(2026, 11, 20), "fali", "in the past"),  # today is 2026-11-23
        (date(2026, 12, 4), "ewright", "does not serve oakfield"),  # Riverside's principal
    ],
)
def test_a_past_leaving_date_or_a_successor_from_another_school_is_refused(
    world: Any, now: datetime, on: date, successor: str, refusal: str
) -> None:
    sessions, _, _ = world
    with transaction(sessions) as session:
        with pytest.raises(HandoverRefused, match=refusal):
            schedule_leaving(
                session, "cjones", on=on, successor_key=successor, actor="aokafor", now=now
            )
        leaver = session.scalars(select(t.Staff).where(t.Staff.key == "cjones")).one()
        assert leaver.leaving_on == date(2027, 7, 22)  # as configured, unchanged
