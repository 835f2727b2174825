"""Staff past their leaving date: no alerts, no actions; a leaving DSL's cases go to a DSL."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor import cases
from monitor.actions import ActionRefused, Actor, request_action
from monitor.cli import app
from monitor.config import load_config
from monitor.config_models import Config
from monitor.constants import ActionKind, CaseState, Category, Role, Severity
from monitor.directory import load_directory
from monitor.handover import schedule_leaving
from monitor.jobs.buttons import button_handler
from monitor.jobs.compliance import run_compliance
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.notify.buttons import ButtonClick
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.fake_platform import FakeConnector, FakePlatform
from tests.jobs.test_escalation_flow import HANDLE, alerts_of, assess, the_case

runner = CliRunner()
DSL_SLACK, DSL_EMAIL = "U01BILALPT", "b.patel@oakfield.example.sch.uk"
DEPUTY_SLACK, DEPUTY_EMAIL = "U01DANMRPH", "d.murphy@oakfield.example.sch.uk"
HEAD_SLACK, HEAD_EMAIL = "U01ADAOKAF", "a.okafor@oakfield.example.sch.uk"
DISCLOSURE = "HELPME someone at home hurts me"


def example(**staff_changes: dict[str, Any]) -> Config:
    """config/example.yaml with some staff changed (by staff id)."""
    config = load_config(EXAMPLE_CONFIG, environ={}).config
    staff = [s.model_copy(update=staff_changes.get(s.id, {})) for s in config.staff]
    return config.model_copy(update={"staff": staff})


def synced(sessions: sessionmaker[Session], config: Config, now: datetime) -> None:
    with transaction(sessions) as session:
        apply_config(session, config, now=now)


def directory_for(config: Config) -> Any:
    return lambda session, at: load_directory(
        session, config.routing, now=at, timezone=config.organisation.timezone
    )


# ------------------------------------------------------------- alerts and actions


@pytest.mark.parametrize(
    ("leaves_days_ago", "dsl_told"),
    [
        (1, False),  # past their leaving date (their handover has not happened): gone
        (0, True),  # their last day: still in post
    ],
)
def test_a_dsl_past_their_leaving_date_gets_no_safeguarding_alert_the_deputy_does(
    sessions: sessionmaker[Session], now: datetime, leaves_days_ago: int, dsl_told: bool
) -> None:
    last_day = now.date() - timedelta(days=leaves_days_ago)
    config = example(bpatel={"leaving_date": last_day})
    synced(sessions, config, now)
    platform = FakePlatform()
    pool = ConnectorPool(environ={}, classes=lambda _p: FakeConnector.bind(platform))
    platform.add(HANDLE, DISCLOSURE, now)
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, config, now)
    with sessions() as session:
        case = the_case(session, Category.SAFEGUARDING)
        told = alerts_of(session, case.id)
    deputy = {
        ("case_opened", "slack", DEPUTY_SLACK, "full"),
        ("case_opened", "email", DEPUTY_EMAIL, "full"),
    }
    dsl = {
        ("case_opened", "slack", DSL_SLACK, "full"),
        ("case_opened", "email", DSL_EMAIL, "full"),
    }
    channel = {("case_opened", "slack", "#oakfield-comms", "restricted_note")}
    assert told == channel | deputy | (dsl if dsl_told else set())


def test_staff_past_their_leaving_date_cannot_use_the_slack_buttons(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    config = example(bpatel={"leaving_date": now.date() - timedelta(days=1)})
    synced(sessions, config, now)
    with transaction(sessions) as session:
        case_id = safeguarding_case(session, now)
    handle = button_handler(sessions, directory_for(config), lambda: now)
    refused = handle(ButtonClick(DSL_SLACK, "acknowledge", case_id, "C0DM", "1.0"))
    assert "not linked to an active member of staff" in refused
    with sessions() as session:
        assert session.scalars(select(t.ActionRequest)).all() == []
    done = handle(ButtonClick(DEPUTY_SLACK, "acknowledge", case_id, "C0DM", "2.0"))
    assert done == "Acknowledged by Dan Murphy."


def test_staff_past_their_leaving_date_cannot_act_or_export_from_the_cli(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    synced(sessions, example(), now)
    with transaction(sessions) as session:
        case_id = safeguarding_case(session, now)
        # a leaving date recorded with `monitor staff leave`, long past (the CLI reads the clock)
        session.execute(
            update(t.Staff).where(t.Staff.key == "bpatel").values(leaving_on=date(2020, 7, 22))
        )
    acted = runner.invoke(app, ["case", str(case_id), "--do", "acknowledge", "--as", "bpatel"])
    assert acted.exit_code == 2 and "No active member of staff 'bpatel'" in acted.output
    shown = runner.invoke(app, ["case", str(case_id), "--as", "bpatel"])
    assert shown.exit_code == 2 and "hurts me" not in shown.output
    exported = runner.invoke(app, ["export-subject", "@pupil.example", "--as", "bpatel"])
    assert exported.exit_code == 2 and "no active member of staff 'bpatel'" in exported.output
    evidence = runner.invoke(app, ["evidence", "export", str(case_id), "--as", "bpatel"])
    assert evidence.exit_code == 2 and "nothing was exported" in evidence.output
    with sessions() as session:
        case = session.get(t.Case, case_id)
        assert case is not None and case.state == CaseState.NEW.value
    # the deputy, in post, can
    ok = runner.invoke(app, ["case", str(case_id), "--do", "acknowledge", "--as", "dmurphy"])
    assert ok.exit_code == 0, ok.output


def safeguarding_case(
    session: Session,
    now: datetime,
    *,
    category: Category = Category.SAFEGUARDING,
    restricted: bool = True,
    assignee: str | None = None,
    text: str = DISCLOSURE,
) -> int:
    """A case on oakfield-bluesky about a stored reply, optionally assigned."""
    account = session.scalars(select(t.Account).where(t.Account.key == "oakfield-bluesky")).one()
    serial = len(session.scalars(select(t.Item.id)).all()) + 1
    item = t.Item(
        platform="bluesky",
        platform_id=f"at://did:plc:pupil/app.bsky.feed.post/{serial}",
        account_id=account.id,
        stream="replies",
        kind="reply",
        url=f"https://bsky.app/profile/pupil/post/{serial}",
        author_id="did:plc:pupil",
        author_handle="pupil.example",
        text=text,
        created_at=now,
        seen_at=now,
    )
    session.add(item)
    session.flush()
    case, _ = cases.open_case(
        session,
        dedupe_key=f"item:{item.id}",
        category=category,
        severity=Severity.HIGH,
        title=f"{category.value} on oakfield-bluesky",
        now=now,
        item_id=item.id,
        account_id=account.id,
        school_id=account.school_id,
        restricted=restricted,
        details={"categories": [category.value]},
    )
    if assignee is not None:
        staff = session.scalars(select(t.Staff).where(t.Staff.key == assignee)).one()
        cases.assign(session, case, staff, actor="test", now=now)
    return case.id


# ------------------------------------------------------------- a leaving DSL's handover


def leaving_dsl_with_cases(
    sessions: sessionmaker[Session], config: Config, now: datetime, successor: str
) -> dict[str, int]:
    """bpatel (Oakfield's DSL) leaves today with open cases of each kind assigned to them."""
    synced(sessions, config, now)
    with transaction(sessions) as session:
        ids = {
            "safeguarding": safeguarding_case(session, now, assignee="bpatel"),
            # abuse that also raised a safeguarding concern: restricted, so the DSL's too
            "restricted": safeguarding_case(
                session, now, category=Category.ABUSIVE, assignee="bpatel"
            ),
            "abusive": safeguarding_case(
                session,
                now,
                category=Category.ABUSIVE,
                restricted=False,
                assignee="bpatel",
                text="you are ABUSE",
            ),
        }
        schedule_leaving(
            session, "bpatel", on=now.date(), successor_key=successor, actor="aokafor", now=now
        )
    with transaction(sessions) as session:
        report = run_compliance(session, directory_for(config)(session, now), now=now)
    assert report.handovers == ["bpatel"]
    return ids


def owners(session: Session, ids: dict[str, int]) -> dict[str, str | None]:
    found = {}
    for name, case_id in ids.items():
        case = session.get(t.Case, case_id)
        assert case is not None
        staff = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
        found[name] = staff.key if staff else None
    return found


def without_dsl_cases(session: Session) -> list[t.Case]:
    return list(
        session.scalars(select(t.Case).where(t.Case.category == Category.SAFEGUARDING_NO_DSL.value))
    )


@pytest.mark.parametrize(
    ("successor", "abusive_owner"),
    [
        ("fali", "fali"),  # trust-wide comms: takes the ordinary case, never a safeguarding one
        # Riverside's DSL does not serve Oakfield: the account's other administrators instead
        ("ewright", "cjones"),
    ],
)
def test_a_leaving_dsls_safeguarding_cases_go_to_the_deputy_not_the_successor(
    sessions: sessionmaker[Session], now: datetime, successor: str, abusive_owner: str
) -> None:
    ids = leaving_dsl_with_cases(sessions, example(), now, successor)
    with sessions() as session:
        assert owners(session, ids) == {
            "safeguarding": "dmurphy",
            "restricted": "dmurphy",
            "abusive": abusive_owner,
        }
        assert without_dsl_cases(session) == []
        leaver = session.scalars(select(t.Staff).where(t.Staff.key == "bpatel")).one()
        assert leaver.left_at is not None


def test_without_another_dsl_a_safeguarding_case_stays_unassigned_and_slt_are_told(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    no_deputy = example(dmurphy={"roles": [Role.COMMS, Role.MODERATOR]})
    ids = leaving_dsl_with_cases(sessions, no_deputy, now, "fali")
    with sessions() as session:
        assert owners(session, ids) == {
            "safeguarding": None,
            "restricted": None,
            "abusive": "fali",
        }
        alarms = without_dsl_cases(session)
        assert sorted(a.details["case"] for a in alarms) == [ids["safeguarding"], ids["restricted"]]
        for alarm in alarms:
            assert alarm.severity == Severity.HIGH.value and alarm.state == CaseState.NEW.value
            assert not alarm.restricted
            assert f"Safeguarding case {alarm.details['case']} has no DSL" in alarm.title
            assert "hurts me" not in alarm.title  # ids only, never the content
            told = session.scalars(select(t.Alert).where(t.Alert.case_id == alarm.id)).all()
            # Oakfield's principal, at once, by DM and email; not the successor nor the leaver
            assert {(a.channel, a.target) for a in told} == {
                ("slack", HEAD_SLACK),
                ("email", HEAD_EMAIL),
            }
            assert all(a.urgent for a in told)
            assert "hurts me" not in str([a.payload for a in told])
        events = session.scalars(
            select(t.AuditEvent).where(
                t.AuditEvent.case_id == ids["safeguarding"],
                t.AuditEvent.action == "case.assigned",
            )
        ).all()
        assert events[-1].reason is not None and "no DSL or deputy DSL" in events[-1].reason
        head = load_directory(session, no_deputy.routing, now=now).person("aokafor")
        assert head is not None
        # leaders cannot close it by hand: it closes once a DSL has the case
        with pytest.raises(ActionRefused, match="closes itself"):
            request_action(
                session,
                alarms[0],
                ActionKind.CLOSE,
                actor=Actor.of(head, load_directory(session, no_deputy.routing, now=now)),
                now=now,
                directory=load_directory(session, no_deputy.routing, now=now),
            )
    # a deputy DSL is named again and takes the first case; the other is closed by its DSL
    later = now + timedelta(hours=2)
    config = example()
    synced(sessions, config, later)
    with transaction(sessions) as session:
        people = load_directory(session, config.routing, now=later)
        deputy = people.person("dmurphy")
        assert deputy is not None
        request_action(
            session,
            session.get(t.Case, ids["safeguarding"]),  # type: ignore[arg-type]
            ActionKind.ASSIGN,
            actor=Actor.of(deputy, people),
            now=later,
            directory=people,
            params={"staff": "dmurphy"},
        )
        request_action(
            session,
            session.get(t.Case, ids["restricted"]),  # type: ignore[arg-type]
            ActionKind.CLOSE,
            actor=Actor.of(deputy, people),
            now=later,
            directory=people,
        )
    with transaction(sessions) as session:
        report = run_compliance(session, directory_for(config)(session, later), now=later)
    with sessions() as session:
        alarms = without_dsl_cases(session)
        assert {a.state for a in alarms} == {CaseState.CLOSED.value}
        assert {a.id for a in alarms} <= set(report.closed)
