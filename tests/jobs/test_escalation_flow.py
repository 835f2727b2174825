"""Escalation end to end on the database: cases, alerts, actions (evidence first), verification."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import audit, evidence
from monitor.actions import POLICY, ActionRefused, Actor, request_action
from monitor.config import load_config
from monitor.config_models import Config
from monitor.constants import ActionKind, ActionStatus, CaseState, Category, Role, Severity
from monitor.directory import load_directory
from monitor.jobs.actions import run_pending_actions
from monitor.jobs.assess import assess_pending
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.jobs.verify import run_removal_checks
from monitor.policy import item_policy
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.fake_platform import FakeConnector, FakePlatform

HANDLE = "oakfieldprimary.bsky.social"


@dataclass(frozen=True)
class Verdict:
    """A fixed assessment, so these tests exercise the policy, not the classifier."""

    categories: frozenset[Category]
    severity: Severity = Severity.MEDIUM
    scores: Mapping[str, float] = field(default_factory=lambda: {"toxicity": 0.97})
    model: str | None = "test"

    def to_json(self) -> dict[str, Any]:
        return {"matches": [{"rule_id": f"test.{c.value}"} for c in sorted(self.categories)]}


class KeywordAssessor:
    """Categories from a keyword in the text: 'ABUSE', 'HELPME', 'QUESTION'."""

    WORDS: ClassVar[dict[str, Category]] = {
        "ABUSE": Category.ABUSIVE,
        "HELPME": Category.SAFEGUARDING,
        "QUESTION": Category.NEEDS_RESPONSE,
    }

    def assess(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Verdict]:
        return [Verdict(frozenset(c for w, c in self.WORDS.items() if w in text)) for text in texts]


@pytest.fixture
def config() -> Config:
    return load_config(EXAMPLE_CONFIG, environ={}).config


@pytest.fixture
def world(
    sessions: sessionmaker[Session], config: Config, now: datetime
) -> tuple[sessionmaker[Session], FakePlatform, ConnectorPool]:
    with transaction(sessions) as session:
        apply_config(session, config, now=now)
    platform = FakePlatform()
    bound = FakeConnector.bind(platform)
    return sessions, platform, ConnectorPool(environ={}, classes=lambda _p: bound)


def assess(sessions: sessionmaker[Session], config: Config, now: datetime) -> Any:
    return assess_pending(
        sessions,
        KeywordAssessor(),
        policy_for=lambda key: item_policy(config, key),
        directory=lambda s: load_directory(s, config.routing),
        now=now,
    )


def the_case(session: Session, category: Category) -> t.Case:
    return session.scalars(select(t.Case).where(t.Case.category == category.value)).one()


def alerts_of(session: Session, case_id: int) -> set[tuple[str, str, str, str]]:
    rows = session.scalars(select(t.Alert).where(t.Alert.case_id == case_id)).all()
    return {(a.kind, a.channel, a.target, a.payload["audience"]) for a in rows}


def test_poll_assess_open_cases_and_alerts(world: Any, config: Config, now: datetime) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    platform.add(HANDLE, "HELPME please, someone at home hurts me", now)
    platform.add(HANDLE, "lovely photos!", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    report = assess(sessions, config, now)
    assert report.assessed == 3 and len(report.cases_opened) == 2
    assert assess(sessions, config, now).assessed == 0  # nothing assessed twice
    with sessions() as session:
        abusive = the_case(session, Category.ABUSIVE)
        safeguarding = the_case(session, Category.SAFEGUARDING)
        assert safeguarding.restricted and not abusive.restricted
        assert alerts_of(session, abusive.id) == {
            ("case_opened", "slack", "#oakfield-moderation", "full")
        }
        # DSL (bpatel) and deputy (dmurphy) hear directly; the shared channel sees only a note
        assert alerts_of(session, safeguarding.id) == {
            ("case_opened", "slack", "#oakfield-comms", "restricted_note"),
            ("case_opened", "slack", "U01BILALPT", "full"),
            ("case_opened", "email", "b.patel@oakfield.example.sch.uk", "full"),
            ("case_opened", "slack", "U01DANMRPH", "full"),
            ("case_opened", "email", "d.murphy@oakfield.example.sch.uk", "full"),
        }
        assert all(
            a.urgent
            for a in session.scalars(select(t.Alert).where(t.Alert.case_id == safeguarding.id))
        )
        events = session.scalars(
            select(t.AuditEvent.action).where(t.AuditEvent.case_id == abusive.id)
        ).all()
        assert events == ["case.opened"]


def test_hide_captures_evidence_first_then_verifies(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with transaction(sessions) as session:
        case = the_case(session, Category.ABUSIVE)
        directory = load_directory(session, config.routing)
        moderator = Actor.of(directory.person("cjones"), directory)  # type: ignore[arg-type]
        request_action(
            session,
            case,
            ActionKind.HIDE,
            actor=moderator,
            now=now,
            directory=directory,
            reason="abuse of staff",
        )
    later = now + timedelta(minutes=2)
    [outcome] = run_pending_actions(
        sessions, pool, now=later, directory=lambda s: load_directory(s, config.routing)
    )
    assert outcome.status is ActionStatus.DONE
    assert platform.calls == [("hide", f"{HANDLE}/1")]
    with sessions() as session:
        case = the_case(session, Category.ABUSIVE)
        assert case.state == CaseState.ACTIONED.value
        [record] = session.scalars(select(t.Evidence)).all()
        assert evidence.intact(record) and record.snapshot["text"] == "you are ABUSE"
        events = session.scalars(
            select(t.AuditEvent.action)
            .where(t.AuditEvent.case_id == case.id)
            .order_by(t.AuditEvent.seq)
        ).all()
        assert events.index("evidence.captured") < events.index("action.done")
        item = session.get(t.Item, case.item_id)
        assert item is not None and item.visibility == "hidden" and item.hidden_at == later
        checks = session.scalars(select(t.RemovalCheck).order_by(t.RemovalCheck.due_at)).all()
        assert [(c.due_at - later, c.is_final) for c in checks] == [
            (timedelta(hours=1), False),
            (timedelta(hours=24), True),
        ]
    results = run_removal_checks(
        sessions,
        pool,
        now=later + timedelta(hours=1),
        directory=lambda s: load_directory(s, config.routing),
    )
    assert [r.outcome.value for r in results if r.outcome] == ["confirmed"]
    with sessions() as session:
        case = the_case(session, Category.ABUSIVE)
        assert case.details["time_visible_s"] == pytest.approx(
            120 - 0
        )  # posted at now, hidden 2 minutes later
        assert all(c.checked_at is not None for c in session.scalars(select(t.RemovalCheck)))
        assert audit.verify_chain(session)[1] == []


def test_where_hiding_is_impossible_it_reports_and_blocks(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.can_hide = False
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with transaction(sessions) as session:
        case = the_case(session, Category.ABUSIVE)
        request_action(
            session,
            case,
            ActionKind.HIDE,
            actor=POLICY,
            now=now,
            directory=load_directory(session, config.routing),
        )
    [outcome] = run_pending_actions(
        sessions, pool, now=now, directory=lambda s: load_directory(s, config.routing)
    )
    assert "cannot hide" in outcome.detail
    assert [c[0] for c in platform.calls] == ["report", "block"]
    with sessions() as session:
        case = the_case(session, Category.ABUSIVE)
        assert case.cannot_hide and session.scalars(select(t.Evidence)).one()
    # still visible at the 24-hour target: escalated
    run_removal_checks(
        sessions,
        pool,
        now=now + timedelta(hours=1),
        directory=lambda s: load_directory(s, config.routing),
    )
    run_removal_checks(
        sessions,
        pool,
        now=now + timedelta(hours=24),
        directory=lambda s: load_directory(s, config.routing),
    )
    with sessions() as session:
        assert the_case(session, Category.ABUSIVE).state == CaseState.ESCALATED.value
        overdue = the_case(session, Category.REMOVAL_OVERDUE)
        assert overdue.details["original_case"] == the_case(session, Category.ABUSIVE).id


def test_permissions_are_enforced_and_refusals_audited(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "HELPME", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with transaction(sessions) as session:
        case = the_case(session, Category.SAFEGUARDING)
        directory = load_directory(session, config.routing)
        comms = Actor.of(directory.person("fali"), directory)  # type: ignore[arg-type]
        with pytest.raises(ActionRefused, match="safeguarding"):
            request_action(
                session, case, ActionKind.HIDE, actor=comms, now=now, directory=directory
            )
    with transaction(sessions) as session:
        case = the_case(session, Category.SAFEGUARDING)
        directory = load_directory(session, config.routing)
        dsl = Actor.of(directory.person("bpatel"), directory)  # type: ignore[arg-type]
        request_action(
            session, case, ActionKind.ACKNOWLEDGE, actor=dsl, now=now, directory=directory
        )
        assert case.state == CaseState.ACKNOWLEDGED.value
        request_action(
            session,
            case,
            ActionKind.ESCALATE,
            actor=dsl,
            now=now + timedelta(seconds=1),
            directory=directory,
            reason="police",
        )
        assert case.state == CaseState.ESCALATED.value
    with sessions() as session:
        actions = session.scalars(
            select(t.AuditEvent.action)
            .where(t.AuditEvent.case_id == case.id)
            .order_by(t.AuditEvent.seq)
        ).all()
        assert "action.refused" in actions
        escalated = {
            a.target
            for a in session.scalars(select(t.Alert).where(t.Alert.kind.startswith("escalated")))
        }
        assert escalated  # SLT told on escalation; restricted content only to those who may see it
        assert "a.okafor@oakfield.example.sch.uk" not in escalated  # the principal is not a DSL


def test_a_reply_from_the_school_stops_the_clock(world: Any, config: Config, now: datetime) -> None:
    sessions, platform, pool = world
    question = platform.add(HANDLE, "QUESTION: when is the trip?", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with sessions() as session:
        case = the_case(session, Category.NEEDS_RESPONSE)
        assert case.due_at == now + timedelta(hours=24)
    from connectors.base import Item

    reply = platform.add(HANDLE, "It is on Friday!", now + timedelta(hours=2))
    own = Item(**{**reply.__dict__, "is_own": True, "parent_id": question.platform_id})
    platform.items[HANDLE][-1] = own
    poll_account(sessions, "oakfield-bluesky", pool, now + timedelta(hours=2))
    report = assess(sessions, config, now + timedelta(hours=2))
    assert report.responses_recorded == [case.id]
    with sessions() as session:
        case = the_case(session, Category.NEEDS_RESPONSE)
        assert case.state == CaseState.RESPONDED.value and case.responded_at == own.created_at


def test_role_enum_covers_config_roles() -> None:
    assert {r.value for r in Role} >= {"dsl", "deputy_dsl", "slt"}


def test_items_of_a_school_no_longer_configured_are_still_assessed(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)

    class StrictAssessor(KeywordAssessor):
        def assess(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Verdict]:
            if school_key is not None:
                raise KeyError(f"unknown school {school_key!r}")
            return super().assess(texts)

    report = assess_pending(
        sessions,
        StrictAssessor(),
        policy_for=lambda key: item_policy(config, key),
        directory=lambda s: load_directory(s, config.routing),
        now=now,
    )
    assert report.assessed == 1 and len(report.cases_opened) == 1


def test_auth_failure_alerts_it_once_and_recovery_closes_it(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    from monitor.worker import Worker
    from tests.jobs.fake_platform import ERRORS

    worker = Worker(sessions, config, KeywordAssessor(), pool=pool)
    for minutes in (0, 61, 122):  # the account stays paused for an hour between tries
        platform.fail(HANDLE, ERRORS["auth"])
        assert (
            worker.poll("oakfield-bluesky", now + timedelta(minutes=minutes)).error_kind == "auth"
        )
    with sessions() as session:
        [case] = session.scalars(
            select(t.Case).where(t.Case.category == Category.CONNECTOR_AUTH.value)
        ).all()
        targets = {
            a.target for a in session.scalars(select(t.Alert).where(t.Alert.case_id == case.id))
        }
        assert (
            "it@northfield.example.org.uk" in targets and len(targets) == 3
        )  # IT channel, DM and email: once
    assert worker.poll("oakfield-bluesky", now + timedelta(minutes=183)).ok
    with sessions() as session:
        assert (
            session.scalars(
                select(t.Case.state).where(t.Case.category == Category.CONNECTOR_AUTH.value)
            ).one()
            == "closed"
        )


@pytest.mark.parametrize(
    ("dry_run", "status", "calls"), [(True, "dry_run", []), (False, "done", ["hide"])]
)
def test_auto_hide_above_the_threshold(
    world: Any, config: Config, now: datetime, dry_run: bool, status: str, calls: list[str]
) -> None:
    sessions, platform, pool = world
    from monitor.config_models import AutoHide
    from monitor.worker import Worker

    classifier = config.classifier.model_copy(
        update={
            "auto_hide": AutoHide(
                enabled=True, dry_run=dry_run, thresholds={Category.ABUSIVE: 0.95}
            )
        }
    )
    worker = Worker(
        sessions, config.model_copy(update={"classifier": classifier}), KeywordAssessor(), pool=pool
    )
    platform.add(HANDLE, "you are ABUSE", now)
    worker.poll("oakfield-bluesky", now)
    report = worker.assess(now)
    assert len(report.auto_actions) == 1
    worker.run_actions(now)
    with sessions() as session:
        request = session.scalars(select(t.ActionRequest)).one()
        assert (request.kind, request.requested_by, request.status) == ("hide", "policy", status)
    assert [c[0] for c in platform.calls] == calls
