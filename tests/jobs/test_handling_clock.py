"""R8: abuse is handled by acting on it, and abuse nobody acts on is escalated like a missed reply."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from monitor.actions import POLICY, request_action
from monitor.config_models import Config
from monitor.constants import ActionKind, CaseState, Category
from monitor.digest.figures import compute
from monitor.directory import load_directory
from monitor.jobs.actions import run_pending_actions
from monitor.jobs.compliance import ComplianceReport, sweep_handling_clocks, sweep_response_clocks
from monitor.jobs.poll import poll_account
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.jobs.test_escalation_flow import HANDLE, assess, the_case


def sweep(sessions: Any, config: Config, at: datetime) -> ComplianceReport:
    report = ComplianceReport()
    with transaction(sessions) as session:
        directory = load_directory(session, config.routing, now=at)
        sweep_response_clocks(session, directory, now=at, report=report)
        sweep_handling_clocks(session, directory, now=at, report=report)
    return report


def alert_kinds(sessions: Any, case_id: int) -> set[str]:
    with sessions() as session:
        return {a.kind for a in session.scalars(select(t.Alert).where(t.Alert.case_id == case_id))}


def hide(sessions: Any, pool: Any, config: Config, at: datetime) -> None:
    with transaction(sessions) as session:
        request_action(
            session,
            the_case(session, Category.ABUSIVE),
            ActionKind.HIDE,
            actor=POLICY,
            now=at,
            directory=load_directory(session, config.routing, now=at),
        )
    run_pending_actions(
        sessions, pool, now=at, directory=lambda s, w: load_directory(s, config.routing, now=w)
    )


def test_hiding_an_abusive_question_stops_its_response_clock(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE, answer my QUESTION", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    hide(sessions, pool, config, now + timedelta(minutes=20))
    report = sweep(sessions, config, now + timedelta(days=3))
    with sessions() as session:
        case = the_case(session, Category.ABUSIVE)
        assert case.due_at is not None  # the question inside it had a response clock
        assert case.handled_at == now + timedelta(minutes=20)
        assert case.breached_at is None and case.state == CaseState.ACTIONED.value
    assert report.breaches == [] and report.reminders == []
    assert not alert_kinds(sessions, case.id) & {"breach", "reminder", "handling_missed"}


def test_abuse_nobody_acts_on_is_reminded_then_escalated(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with sessions() as session:
        case_id = the_case(session, Category.ABUSIVE).id
    assert sweep(sessions, config, now + timedelta(minutes=80)).reminders == []
    assert sweep(sessions, config, now + timedelta(minutes=95)).reminders == [case_id]
    assert sweep(sessions, config, now + timedelta(minutes=100)).reminders == []
    assert sweep(sessions, config, now + timedelta(hours=2)).breaches == [case_id]
    with sessions() as session:
        assert the_case(session, Category.ABUSIVE).state == CaseState.ESCALATED.value
    assert sweep(sessions, config, now + timedelta(hours=3)).breaches == []
    assert sweep(sessions, config, now + timedelta(hours=24)).breaches == []  # told once
    assert sweep(sessions, config, now + timedelta(days=20)).breaches == []
    kinds = alert_kinds(sessions, case_id)
    assert {"handling_reminder", "handling_missed"} <= kinds and "removal_missed" not in kinds
    with sessions() as session:
        escalated = {
            a.target
            for a in session.scalars(
                select(t.Alert).where(t.Alert.case_id == case_id, t.Alert.kind == "handling_missed")
            )
        }
    assert "a.okafor@oakfield.example.sch.uk" in escalated  # the principal hears of it


def test_abuse_hidden_in_time_raises_nothing(world: Any, config: Config, now: datetime) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    hide(sessions, pool, config, now + timedelta(minutes=30))
    for hours in (1, 2, 3, 24, 48):
        report = sweep(sessions, config, now + timedelta(hours=hours))
        assert report.breaches == [] and report.reminders == []


def test_the_digest_counts_hidden_abuse_as_handled_not_open(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    hide(sessions, pool, config, now + timedelta(minutes=30))
    with sessions() as session:
        figures = compute(session, week="2026-W48", scope="trust", now=now + timedelta(days=2))
    assert figures.open_cases.open == 0


def test_abuse_acknowledged_but_left_public_is_escalated_at_the_removal_target(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with transaction(sessions) as session:
        case = the_case(session, Category.ABUSIVE)
        request_action(
            session,
            case,
            ActionKind.ACKNOWLEDGE,
            actor=POLICY,
            now=now + timedelta(minutes=10),
            directory=load_directory(session, config.routing, now=now),
        )
        case_id = case.id
    for hours in (1, 2, 3, 23):
        assert sweep(sessions, config, now + timedelta(hours=hours)).breaches == []
    assert sweep(sessions, config, now + timedelta(hours=24)).breaches == [case_id]
    assert "removal_missed" in alert_kinds(sessions, case_id)


def test_a_safeguarding_or_threat_case_records_evidence_as_it_opens(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "HELPME please", now)
    platform.add(HANDLE, "a THREAT to you", now)
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    assess(sessions, config, now)  # a second pass records nothing twice
    with sessions() as session:
        captured = {
            session.get(t.Case, e.case_id).category for e in session.scalars(select(t.Evidence))
        }
        assert len(session.scalars(select(t.Evidence)).all()) == 2
    assert captured == {Category.SAFEGUARDING.value, Category.THREAT.value}
