"""R6's standing check: every watched school has a DSL or deputy DSL in post, on the database."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.actions import ActionRefused, Actor, request_action
from monitor.config import load_config
from monitor.config_models import Config, StaffMember
from monitor.constants import ActionKind, CaseState, Category, Severity
from monitor.directory import load_directory
from monitor.jobs.compliance import ComplianceReport, check_after_change, run_compliance
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG

HEAD_SLACK, HEAD_EMAIL = "U01ADAOKAF", "a.okafor@oakfield.example.sch.uk"
NO_DEPUTY: dict[str, Any] = {"roles": ["comms", "moderator"]}


def example(
    *, disabled: tuple[str, ...] = (), extra: tuple[StaffMember, ...] = (), **staff: dict[str, Any]
) -> Config:
    """config/example.yaml with staff changed (by id), staff added and accounts disabled."""
    config = load_config(EXAMPLE_CONFIG, environ={}).config
    people = [s.model_copy(update=staff.get(s.id, {})) for s in config.staff] + list(extra)
    accounts = [
        a.model_copy(update={"enabled": False}) if a.key in disabled else a for a in config.accounts
    ]
    return config.model_copy(update={"staff": people, "accounts": accounts})


def comply(sessions: sessionmaker[Session], config: Config, now: datetime) -> ComplianceReport:
    with transaction(sessions) as session:
        return run_compliance(session, load_directory(session, config.routing, now=now), now=now)


def changed(sessions: sessionmaker[Session], config: Config, now: datetime) -> ComplianceReport:
    """What `monitor sync` does: apply the configuration, then re-check at once."""
    with transaction(sessions) as session:
        assert apply_config(session, config, now=now)
        return check_after_change(
            session, load_directory(session, config.routing, now=now), now=now
        )


def without_dsl(session: Session) -> list[t.Case]:
    return list(
        session.scalars(
            select(t.Case)
            .where(t.Case.category == Category.SCHOOL_WITHOUT_DSL.value)
            .order_by(t.Case.id)
        )
    )


def yesterday(now: datetime) -> dict[str, Any]:
    return {"leaving_date": now.date() - timedelta(days=1)}


TRUST_DEPUTY = StaffMember(id="tdeputy", name="Tia Deputy", roles=["deputy_dsl"])

CONFIGS = [
    # Oakfield's DSL (bpatel) and deputy (dmurphy); Riverside's DSL is its head (ewright)
    ("the example", {}, False),
    ("DSL left yesterday, deputy in post", {"bpatel": "left"}, False),
    ("DSL left yesterday, no deputy", {"bpatel": "left", "dmurphy": "no deputy"}, True),
    ("DSL's last day is today", {"bpatel": "today", "dmurphy": "no deputy"}, False),
    ("DSL inactive, no deputy", {"bpatel": "inactive", "dmurphy": "no deputy"}, True),
    (
        "no DSL, but a trust-wide deputy",
        {"bpatel": "inactive", "dmurphy": "no deputy", "+": 1},
        False,
    ),
    # nothing of Oakfield is watched (its Mastodon account is disabled in the example)
    ("no DSL, account disabled", {"bpatel": "left", "dmurphy": "no deputy", "off": 1}, False),
]


@pytest.mark.parametrize(("name", "how", "opened"), CONFIGS, ids=[c[0] for c in CONFIGS])
def test_a_watched_school_without_a_dsl_in_post_opens_a_case(
    sessions: sessionmaker[Session], now: datetime, name: str, how: dict[str, Any], opened: bool
) -> None:
    edits = {
        "left": yesterday(now),
        "today": {"leaving_date": now.date()},
        "inactive": {"active": False},
        "no deputy": NO_DEPUTY,
    }
    staff = {key: edits[what] for key, what in how.items() if key in ("bpatel", "dmurphy")}
    config = example(
        disabled=("oakfield-bluesky",) if "off" in how else (),
        extra=(TRUST_DEPUTY,) if "+" in how else (),
        **staff,
    )
    with transaction(sessions) as session:
        apply_config(session, config, now=now)
    comply(sessions, config, now)
    with sessions() as session:
        found = [(c.dedupe_key.split(":")[1], c.state) for c in without_dsl(session)]
    assert found == ([("oakfield", CaseState.NEW.value)] if opened else [])


def test_the_case_tells_leaders_stays_open_and_closes_when_a_dsl_is_in_post(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    broken = example(bpatel=yesterday(now), dmurphy=NO_DEPUTY)
    with transaction(sessions) as session:
        apply_config(session, broken, now=now)
    first = comply(sessions, broken, now)
    again = comply(sessions, broken, now + timedelta(days=1))
    with sessions() as session:
        [case] = without_dsl(session)
        assert case.id in first.opened and case.id not in again.opened  # one per school
        assert case.severity == Severity.HIGH.value and not case.restricted
        school = session.get(t.School, case.school_id)
        assert school is not None and school.key == "oakfield" and case.account_id is None
        assert case.title == (
            "Oakfield Primary School has no DSL or deputy DSL in post: its safeguarding "
            "alerts go to the principal (or SLT) instead (bpatel left 2026-11-22)"
        )
        told = session.scalars(select(t.Alert).where(t.Alert.case_id == case.id)).all()
        # Oakfield's principal (SLT and principal of the school), by DM and email; no channel
        assert {(a.channel, a.target) for a in told} == {
            ("slack", HEAD_SLACK),
            ("email", HEAD_EMAIL),
        }
        directory = load_directory(session, broken.routing, now=now)
        head = directory.person("aokafor")
        assert head is not None
        for action in (ActionKind.CLOSE, ActionKind.DISMISS):
            with pytest.raises(ActionRefused, match="closes itself"):
                request_action(
                    session,
                    case,
                    action,
                    actor=Actor.of(head, directory),
                    now=now,
                    directory=directory,
                )
    # a deputy DSL is named again: the configuration change closes it at once
    later = now + timedelta(days=2)
    fixed = changed(sessions, example(bpatel=yesterday(now)), later)
    with sessions() as session:
        [case] = without_dsl(session)
        assert case.state == CaseState.CLOSED.value and fixed.closed == [case.id]
        reasons = session.scalars(
            select(t.AuditEvent.reason).where(
                t.AuditEvent.case_id == case.id, t.AuditEvent.action == "case.state"
            )
        ).all()
        assert reasons == ["a DSL or deputy DSL is in post: dmurphy"]


def test_a_configuration_change_is_checked_at_once_and_an_unwatched_school_closes_it(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    with transaction(sessions) as session:
        apply_config(session, example(), now=now)
    report = changed(sessions, example(bpatel={"active": False}, dmurphy=NO_DEPUTY), now)
    with sessions() as session:
        [case] = without_dsl(session)
        assert report.opened == [case.id] and "(bpatel inactive)" in case.title
    # Oakfield's only polled account is switched off: nothing is watched, nothing to route
    off = example(bpatel={"active": False}, dmurphy=NO_DEPUTY, disabled=("oakfield-bluesky",))
    report = changed(sessions, off, now + timedelta(hours=1))
    with sessions() as session:
        [case] = without_dsl(session)
        assert case.state == CaseState.CLOSED.value and report.closed == [case.id]
