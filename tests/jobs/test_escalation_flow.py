"""Escalation end to end on the database: cases, alerts, actions (evidence first), verification."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Item
from monitor import audit, evidence
from monitor.actions import POLICY, ActionRefused, Actor, request_action
from monitor.config_models import Config, UnknownSchool
from monitor.constants import ActionKind, ActionStatus, CaseState, Category, Role, Severity
from monitor.directory import load_directory
from monitor.jobs.actions import run_pending_actions
from monitor.jobs.assess import assess_pending
from monitor.jobs.compliance import ComplianceReport, sweep_response_clocks
from monitor.jobs.poll import poll_account
from monitor.jobs.verify import run_removal_checks
from monitor.policy import item_policy
from monitor.rules.platform_actions import EVIDENCE_FIRST
from monitor.storage import tables as t
from monitor.storage.db import transaction

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
    """Categories from a keyword in the text: 'ABUSE', 'HELPME', 'QUESTION', 'THREAT'."""

    WORDS: ClassVar[dict[str, Category]] = {
        "ABUSE": Category.ABUSIVE,
        "HELPME": Category.SAFEGUARDING,
        "QUESTION": Category.NEEDS_RESPONSE,
        "THREAT": Category.THREAT,
    }

    def assess(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Verdict]:
        return [Verdict(frozenset(c for w, c in self.WORDS.items() if w in text)) for text in texts]


def assess(sessions: sessionmaker[Session], config: Config, now: datetime) -> Any:
    return assess_pending(
        sessions,
        KeywordAssessor(),
        policy_for=lambda key: item_policy(config, key),
        directory=lambda s, at: load_directory(s, config.routing, now=at),
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
        directory = load_directory(session, config.routing, now=now)
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
        sessions, pool, now=later, directory=lambda s, at: load_directory(s, config.routing, now=at)
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
        directory=lambda s, at: load_directory(s, config.routing, now=at),
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
            directory=load_directory(session, config.routing, now=now),
        )
    [outcome] = run_pending_actions(
        sessions, pool, now=now, directory=lambda s, at: load_directory(s, config.routing, now=at)
    )
    assert "cannot hide" in outcome.detail
    assert [c[0] for c in platform.calls] == ["report", "block"]
    with sessions() as session:
        case = the_case(session, Category.ABUSIVE)
        assert case.cannot_hide and session.scalars(select(t.Evidence)).one()
        # told with the outcome of the report and block, in the same pass as its state change
        # (one thread reply), not a second message a day later
        told_now = session.scalars(
            select(t.Alert).where(t.Alert.case_id == case.id, t.Alert.kind == "still_public")
        ).all()
        assert told_now and {a.created_at for a in told_now} == {now}
        assert "still public" in case.details["still_public_note"]
    # still visible at the 24-hour target: said once, in words, who can remove it; no alarm
    run_removal_checks(
        sessions,
        pool,
        now=now + timedelta(hours=1),
        directory=lambda s, at: load_directory(s, config.routing, now=at),
    )
    run_removal_checks(
        sessions,
        pool,
        now=now + timedelta(hours=24),
        directory=lambda s, at: load_directory(s, config.routing, now=at),
    )
    with sessions() as session:
        case = the_case(session, Category.ABUSIVE)
        assert case.state == CaseState.ACTIONED.value and case.handled_at == now
        assert not session.scalars(
            select(t.Case).where(t.Case.category == Category.REMOVAL_OVERDUE.value)
        ).all()
        note = case.details["still_public_note"]
        assert "still public" in note and "reported it and blocked the author" in note
        assert "moderation" in note
        told = session.scalars(
            select(t.Alert).where(t.Alert.case_id == case.id, t.Alert.kind == "still_public")
        ).all()
        assert told and not any(a.urgent for a in told)
        assert {a.id for a in told} == {a.id for a in told_now}  # the check added nothing


def test_permissions_are_enforced_and_refusals_audited(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "HELPME", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with transaction(sessions) as session:
        case = the_case(session, Category.SAFEGUARDING)
        directory = load_directory(session, config.routing, now=now)
        comms = Actor.of(directory.person("fali"), directory)  # type: ignore[arg-type]
        with pytest.raises(ActionRefused, match="safeguarding"):
            request_action(
                session, case, ActionKind.HIDE, actor=comms, now=now, directory=directory
            )
    with transaction(sessions) as session:
        case = the_case(session, Category.SAFEGUARDING)
        directory = load_directory(session, config.routing, now=now)
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
                raise UnknownSchool(school_key)
            return super().assess(texts)

    report = assess_pending(
        sessions,
        StrictAssessor(),
        policy_for=lambda key: item_policy(config, key),
        directory=lambda s, at: load_directory(s, config.routing, now=at),
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


# ---------------------------------------------------------------- every action, one path


def staff_actor(session: Session, config: Config, key: str, now: datetime) -> Actor:
    directory = load_directory(session, config.routing, now=now)
    person = directory.person(key)
    assert person is not None
    return Actor.of(person, directory)


def act(
    sessions: sessionmaker[Session],
    config: Config,
    category: Category,
    kind: ActionKind,
    now: datetime,
    *,
    staff: str = "cjones",
    params: dict[str, Any] | None = None,
    reason: str | None = None,
) -> int:
    """Request ``kind`` on the case of ``category`` as ``staff``; returns the request id."""
    with transaction(sessions) as session:
        request = request_action(
            session,
            the_case(session, category),
            kind,
            actor=staff_actor(session, config, staff, now),
            now=now,
            directory=load_directory(session, config.routing, now=now),
            reason=reason,
            params=params,
        )
        return request.id


A = ActionKind
S = CaseState
ACTIONS = [
    # text, action, params -> platform calls, case state after, evidence records, re-checks
    ("you are ABUSE", A.HIDE, {}, ["hide"], S.ACTIONED, 1, 2),
    ("you are ABUSE", A.UNHIDE, {}, ["unhide"], S.NEW, 0, 0),
    ("you are ABUSE", A.REMOVE, {}, ["remove"], S.ACTIONED, 1, 2),
    ("you are ABUSE", A.BLOCK, {}, ["block"], S.ACTIONED, 1, 0),
    ("you are ABUSE", A.MUTE, {}, ["mute"], S.ACTIONED, 1, 0),
    ("you are ABUSE", A.REPORT, {}, ["report"], S.ACTIONED, 1, 2),
    ("QUESTION: is it a non-uniform day?", A.REPLY, {"template": "acknowledge"}, ["reply"],
     S.RESPONDED, 0, 0),
    ("you are ABUSE", A.ACKNOWLEDGE, {}, [], S.ACKNOWLEDGED, 0, 0),
    ("you are ABUSE", A.DISMISS, {}, [], S.DISMISSED, 0, 0),
    ("you are ABUSE", A.ASSIGN, {"staff": "fali"}, [], S.NEW, 0, 0),
    ("you are ABUSE", A.ESCALATE, {}, [], S.ESCALATED, 0, 0),
    ("QUESTION: trip money?", A.MARK_RESPONDED, {}, [], S.RESPONDED, 0, 0),
    ("you are ABUSE", A.CLOSE, {}, [], S.CLOSED, 0, 0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "kind", "params", "calls", "state", "records", "checks"),
    ACTIONS,
    ids=[row[1].value for row in ACTIONS],
)
def test_every_action_is_requested_then_carried_out(
    world: Any,
    config: Config,
    now: datetime,
    text: str,
    kind: ActionKind,
    params: dict[str, Any],
    calls: list[str],
    state: CaseState,
    records: int,
    checks: int,
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, text, now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with sessions() as session:
        category = Category(session.scalars(select(t.Case.category)).one())
    later = now + timedelta(minutes=5)
    request_id = act(sessions, config, category, kind, later, params=params, reason="policy")
    run_pending_actions(
        sessions, pool, now=later, directory=lambda s, at: load_directory(s, config.routing, now=at)
    )
    assert [c[0] for c in platform.calls] == calls
    with sessions() as session:
        case = the_case(session, category)
        request = session.get(t.ActionRequest, request_id)
        assert request is not None and request.status == ActionStatus.DONE.value
        assert (request.requested_by, request.reason) == ("cjones", "policy")
        assert case.state == state.value
        assert len(session.scalars(select(t.Evidence)).all()) == records
        assert len(session.scalars(select(t.RemovalCheck)).all()) == checks
        events = session.scalars(
            select(t.AuditEvent.action).where(t.AuditEvent.case_id == case.id)
        ).all()
        assert "action.requested" in events and "action.done" in events
        if kind is A.ASSIGN:
            assignee = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
            assert assignee is not None and assignee.key == "fali"
        if kind is A.REPLY:
            assert "Oakfield Primary School" in request.params["text"]  # the template, filled in
        if state is S.RESPONDED:
            assert case.responded_at == later
        assert audit.verify_chain(session)[1] == []


@pytest.mark.parametrize("kind", sorted(EVIDENCE_FIRST))
def test_evidence_is_committed_before_the_platform_is_touched(
    world: Any, config: Config, now: datetime, kind: ActionKind
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    seen: list[int] = []

    def evidence_in_the_database(action: str) -> None:
        # a separate session sees only what is committed: what survives a crash right now
        with sessions() as probe:
            seen.append(len(probe.scalars(select(t.Evidence.id)).all()))

    platform.before_action = evidence_in_the_database
    later = now + timedelta(minutes=7)
    act(sessions, config, Category.ABUSIVE, kind, now)
    [outcome] = run_pending_actions(
        sessions, pool, now=later, directory=lambda s, at: load_directory(s, config.routing, now=at)
    )
    assert outcome.status is ActionStatus.DONE
    assert seen == [1]  # the platform acted once, with the evidence already stored
    with sessions() as session:
        record = session.scalars(select(t.Evidence)).one()
        item = session.scalars(select(t.Item)).one()
        snap = record.snapshot
        # R7: text, author, address, platform ids, posted and captured times, scores, rules
        assert (snap["text"], snap["author_handle"], snap["author_id"]) == (
            "you are ABUSE",
            "parent.test",
            "did:example:parent",
        )
        assert (snap["url"], snap["platform"], snap["platform_id"]) == (
            item.url,
            "bluesky",
            f"{HANDLE}/1",
        )
        assert datetime.fromisoformat(snap["posted_at"]) == item.created_at
        assert datetime.fromisoformat(snap["captured_at"]) == later == record.captured_at
        assert snap["scores"] == {"toxicity": 0.97}
        assert snap["rules"] == ["test.abusive"]
        assert record.sha256 == hashlib.sha256(evidence.canonical(snap)).hexdigest()
        assert evidence.intact(record)
        record.snapshot = {**snap, "text": "edited"}
        assert not evidence.intact(record)


FALLBACKS = [
    # what the platform lacks -> calls made, steps recorded
    ({"hide"}, ["report", "block"], {"reported": True, "block": True}),
    ({"hide", "block"}, ["report", "mute"], {"reported": True, "block": False, "mute": True}),
    ({"hide", "report"}, ["block"], {"reported": False, "block": True}),
    ({"hide", "remove"}, ["report", "block"], {"reported": True, "block": True}),
]


@pytest.mark.parametrize(("unsupported", "calls", "steps"), FALLBACKS)
@pytest.mark.parametrize("kind", [ActionKind.HIDE, ActionKind.REMOVE])
def test_the_fallback_where_the_platform_cannot_hide(
    world: Any,
    config: Config,
    now: datetime,
    kind: ActionKind,
    unsupported: set[str],
    calls: list[str],
    steps: dict[str, bool],
) -> None:
    sessions, platform, pool = world
    platform.unsupported = {*unsupported, "remove"} if kind is ActionKind.REMOVE else unsupported
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    request_id = act(sessions, config, Category.ABUSIVE, kind, now)
    [outcome] = run_pending_actions(
        sessions, pool, now=now, directory=lambda s, at: load_directory(s, config.routing, now=at)
    )
    assert [c[0] for c in platform.calls] == calls
    with sessions() as session:
        case = the_case(session, Category.ABUSIVE)
        request = session.get(t.ActionRequest, request_id)
        assert request is not None and request.result["cannot_hide"] is True
        assert {k: request.result[k] for k in steps} == steps
        assert case.cannot_hide and case.state == CaseState.ACTIONED.value
        assert session.scalars(select(t.Evidence)).one()
        assert "cannot hide" in outcome.detail


# ---------------------------------------------------------------- threats (R9)


def test_a_threat_reaches_dsl_and_slt_with_a_police_step(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "THREAT: I will be waiting at the gate", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with sessions() as session:
        case = the_case(session, Category.THREAT)
        assert case.police_step == "pending" and not case.restricted
        events = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.case_id == case.id).order_by(t.AuditEvent.seq)
        ).all()
        # R7: a threat's evidence is recorded as the case opens
        assert [e.action for e in events] == [
            "case.opened",
            "case.police_step",
            "evidence.captured",
        ]
        assert "police" in (events[1].reason or "")
        direct = {
            a.target for a in session.scalars(select(t.Alert).where(t.Alert.case_id == case.id))
        }
        # DSL, deputy and the principal (SLT) directly; a comms-only member of staff is not told
        assert {
            "b.patel@oakfield.example.sch.uk",
            "d.murphy@oakfield.example.sch.uk",
            "a.okafor@oakfield.example.sch.uk",
        } <= direct
        assert "c.jones@oakfield.example.sch.uk" not in direct
    with pytest.raises(ActionRefused, match="needs one of these roles"):
        act(sessions, config, Category.THREAT, ActionKind.POLICE_REPORTED, now, staff="cjones")
    act(
        sessions,
        config,
        Category.THREAT,
        ActionKind.POLICE_REPORTED,
        now,
        staff="aokafor",
        reason="reported online, ref 12345",
    )
    with sessions() as session:
        case = the_case(session, Category.THREAT)
        assert case.police_step == "reported" and case.state == CaseState.NEW.value
        step = session.scalars(
            select(t.AuditEvent)
            .where(t.AuditEvent.case_id == case.id, t.AuditEvent.action == "case.police_step")
            .order_by(t.AuditEvent.seq.desc())
        ).first()
        assert step is not None and step.actor == "aokafor"
        assert (step.reason, step.details) == (
            "reported online, ref 12345",
            {"outcome": "reported"},
        )


def test_only_a_case_with_a_police_step_records_one(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you are ABUSE", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with pytest.raises(ActionRefused, match="no police report step"):
        act(sessions, config, Category.ABUSIVE, ActionKind.POLICE_NOT_NEEDED, now, staff="aokafor")


# ---------------------------------------------------------------- the response clock (R2)


def test_a_reply_stored_before_the_question_still_stops_the_clock(
    world: Any, config: Config, now: datetime
) -> None:
    """The school's reply reached the database first (another stream, or the model was down)."""
    sessions, platform, pool = world
    question = platform.add(HANDLE, "QUESTION: when is sports day?", now)
    reply = platform.add(HANDLE, "Next Friday!", now + timedelta(minutes=30))
    own = Item(**{**reply.__dict__, "is_own": True, "parent_id": question.platform_id})
    platform.items[HANDLE] = [own, question]  # the reply is stored (and assessed) first
    poll_account(sessions, "oakfield-bluesky", pool, now + timedelta(hours=1))
    report = assess(sessions, config, now + timedelta(hours=1))
    with sessions() as session:
        case = the_case(session, Category.NEEDS_RESPONSE)
        assert report.responses_recorded == [case.id]
        assert case.state == CaseState.RESPONDED.value and case.responded_at == own.created_at


def test_answering_a_question_does_not_settle_the_abuse_in_it(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    question = platform.add(HANDLE, "ABUSE and a QUESTION: why is the head so useless?", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    reply = platform.add(HANDLE, "Please contact the office.", now + timedelta(hours=1))
    platform.items[HANDLE][-1] = Item(
        **{**reply.__dict__, "is_own": True, "parent_id": question.platform_id}
    )
    poll_account(sessions, "oakfield-bluesky", pool, now + timedelta(hours=1))
    assess(sessions, config, now + timedelta(hours=1))
    with transaction(sessions) as session:
        case = the_case(session, Category.ABUSIVE)
        assert case.due_at is not None and case.responded_at == reply.created_at
        assert case.state == CaseState.NEW.value  # still in the moderators' queue
        report = ComplianceReport()
        sweep_response_clocks(
            session,
            load_directory(session, config.routing, now=now),
            now=case.due_at + timedelta(hours=1),
            report=report,
        )
        assert report.breaches == [] and report.reminders == []  # the clock has stopped
        events = session.scalars(
            select(t.AuditEvent.action).where(t.AuditEvent.case_id == case.id)
        ).all()
        assert "clock.stopped" in events


def test_a_moderator_marking_it_responded_stops_the_clock(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "QUESTION: is the trip still on?", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    answered = now + timedelta(hours=3)
    act(sessions, config, Category.NEEDS_RESPONSE, ActionKind.MARK_RESPONDED, answered,
        reason="phoned the parent")  # fmt: skip
    with transaction(sessions) as session:
        case = the_case(session, Category.NEEDS_RESPONSE)
        assert case.state == CaseState.RESPONDED.value and case.responded_at == answered
        report = ComplianceReport()
        sweep_response_clocks(
            session, load_directory(session, config.routing, now=now), now=now + timedelta(days=2),
            report=report,
        )  # fmt: skip
        assert report.breaches == [] and case.breached_at is None


# ---------------------------------------------------------------- one school's staff


def test_staff_of_another_school_cannot_act_on_a_case(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "HELPME", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    # ewright is Riverside's DSL: an Oakfield disclosure is not theirs to see or handle
    with pytest.raises(ActionRefused, match="school you do not serve"):
        act(sessions, config, Category.SAFEGUARDING, ActionKind.ACKNOWLEDGE, now, staff="ewright")
    act(sessions, config, Category.SAFEGUARDING, ActionKind.ACKNOWLEDGE, now, staff="bpatel")
    with sessions() as session:
        case = the_case(session, Category.SAFEGUARDING)
        assert case.state == CaseState.ACKNOWLEDGED.value
        alerted = {a.target for a in session.scalars(select(t.Alert))}
        assert "e.wright@riverside.example.sch.uk" not in alerted


# ---------------------------------------------------------------- re-assessment


@dataclass
class ModelComesBack:
    """Rules alone first (the model is down: a question only); then the model finds abuse."""

    loaded: bool = False

    def assess(self, texts: Sequence[str], *, school_key: str | None = None) -> list[Verdict]:
        if not self.loaded:
            return [Verdict(frozenset({Category.NEEDS_RESPONSE}), model=None) for _ in texts]
        return [
            Verdict(frozenset({Category.NEEDS_RESPONSE, Category.ABUSIVE}), Severity.HIGH)
            for _ in texts
        ]


def rescore_runner(sessions: Any, model: ModelComesBack, config: Config) -> Any:
    """A rescoring assessment pass at a given time, with ``model``."""

    def run(at: datetime) -> Any:
        return assess_pending(
            sessions,
            model,
            policy_for=lambda key: item_policy(config, key),
            directory=lambda s, at: load_directory(s, config.routing, now=at),
            now=at,
            rescore=True,
        )

    return run


def test_a_rescore_that_finds_abuse_reroutes_the_open_case(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you useless lot, when is the trip?", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    model = ModelComesBack()

    run = rescore_runner(sessions, model, config)

    first = run(now)
    assert len(first.cases_opened) == 1 and first.unscored == 1
    with sessions() as session:
        case = the_case(session, Category.NEEDS_RESPONSE)
        due = case.due_at
        assert alerts_of(session, case.id) == {("case_opened", "slack", "#oakfield-comms", "full")}
    model.loaded = True
    later = now + timedelta(minutes=10)
    second = run(later)
    assert second.cases_opened == [] and second.cases_reclassified == [case.id]
    assert run(later + timedelta(minutes=10)).assessed == 0  # scored by the model: done
    with sessions() as session:
        case = the_case(session, Category.ABUSIVE)  # the same case, now the moderators'
        assert case.severity == Severity.HIGH.value and case.due_at == due
        assert case.details["categories"] == ["abusive", "needs_response"]
        assert ("case_opened", "slack", "#oakfield-moderation", "full") in alerts_of(
            session, case.id
        )
        event = session.scalars(
            select(t.AuditEvent).where(
                t.AuditEvent.case_id == case.id, t.AuditEvent.action == "case.reclassified"
            )
        ).one()
        assert event.details["added"] == ["abusive"] and event.details["to"] == "abusive"
        assert audit.verify_chain(session)[1] == []


def test_a_dismissed_case_keeps_the_persons_judgement_on_rescore(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    platform.add(HANDLE, "you useless lot, when is the trip?", now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    model = ModelComesBack()

    run = rescore_runner(sessions, model, config)

    run(now)
    act(sessions, config, Category.NEEDS_RESPONSE, ActionKind.DISMISS, now, reason="banter")
    model.loaded = True
    assert run(now + timedelta(minutes=10)).cases_reclassified == []
    with sessions() as session:
        case = session.scalars(select(t.Case)).one()
        assert (case.category, case.state) == ("needs_response", "dismissed")
