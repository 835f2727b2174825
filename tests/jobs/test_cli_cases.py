"""Case and staff commands through the real CLI."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor import cases, evidence
from monitor.cli import app
from monitor.config import load_config
from monitor.constants import CaseState, Category, Severity
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG

runner = CliRunner()


def seed_case(sessions: sessionmaker[Session], now: datetime, *, restricted: bool) -> int:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        item = t.Item(
            platform="bluesky",
            platform_id="at://x/1",
            account_id=account.id,
            stream="replies",
            kind="reply",
            url="https://bsky.app/profile/x/post/1",
            author_id="did:plc:x",
            author_handle="angry.test",
            text="<!channel> [bold]secret disclosure[/bold]",
            created_at=now,
            seen_at=now,
        )
        session.add(item)
        session.flush()
        case, _ = cases.open_case(
            session,
            dedupe_key=f"item:{item.id}",
            category=Category.SAFEGUARDING if restricted else Category.ABUSIVE,
            severity=Severity.HIGH,
            title="Concern on oakfield-bluesky",
            now=now,
            item_id=item.id,
            account_id=account.id,
            school_id=account.school_id,
            restricted=restricted,
        )
        return case.id


def test_cases_list_and_restricted_show(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the DSL's own login on the server (staff[].os_user in the example)
    monkeypatch.setattr("monitor.commands.cases.current_os_user", lambda: "bpatel")
    case_id = seed_case(sessions, now, restricted=True)
    listed = runner.invoke(app, ["cases"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0 and "safeguarding (restricted)" in listed.output
    assert "secret disclosure" not in listed.output
    hidden = runner.invoke(app, ["case", str(case_id)])
    assert (
        hidden.exit_code == 0
        and "secret disclosure" not in hidden.output
        and "only to the DSL" in hidden.output
    )
    as_comms = runner.invoke(app, ["case", str(case_id), "--as", "fali"])
    assert "secret disclosure" not in as_comms.output
    as_dsl = runner.invoke(app, ["case", str(case_id), "--as", "bpatel"], env={"COLUMNS": "200"})
    assert (
        as_dsl.exit_code == 0 and "[bold]secret disclosure[/bold]" in as_dsl.output
    )  # shown literally, no markup


def test_case_do_checks_roles_and_queues_platform_actions(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=False)
    refused = runner.invoke(app, ["case", str(case_id), "--do", "hide", "--as", "gsmith"])
    assert refused.exit_code == 1 and "Refused" in refused.output
    queued = runner.invoke(
        app, ["case", str(case_id), "--do", "hide", "--as", "cjones", "--reason", "abusive"]
    )
    assert queued.exit_code == 0 and "queued for the worker" in queued.output
    acked = runner.invoke(app, ["case", str(case_id), "--do", "acknowledge", "--as", "cjones"])
    assert acked.exit_code == 0 and "done" in acked.output
    no_actor = runner.invoke(app, ["case", str(case_id), "--do", "hide"])
    assert no_actor.exit_code == 2
    with sessions() as session:
        case = session.get(t.Case, case_id)
        assert case is not None and case.state == "acknowledged"
        assert (
            session.scalars(
                select(t.ActionRequest.status).where(t.ActionRequest.kind == "hide")
            ).one()
            == "pending"
        )


def test_staff_leave_refused_then_accepted(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    seed_case(sessions, now, restricted=False)
    refused = runner.invoke(app, ["staff", "leave", "cjones", "--on", "2027-01-31"])
    assert refused.exit_code == 1 and "name a successor" in refused.output
    accepted = runner.invoke(
        app, ["staff", "leave", "cjones", "--on", "2027-01-31", "--successor", "fali"]
    )
    assert accepted.exit_code == 0, accepted.output
    assert "oakfield-bluesky: administrators after handover: dmurphy, fali" in accepted.output
    bad_date = runner.invoke(app, ["staff", "leave", "cjones", "--on", "31/01/2027"])
    assert bad_date.exit_code == 2


def test_cases_filters_by_state_and_school(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    seed_case(sessions, now, restricted=False)
    with transaction(sessions) as session:
        riverside = session.scalars(select(t.School).where(t.School.key == "riverside")).one()
        other, _ = cases.open_case(
            session,
            dedupe_key="riverside:1",
            category=Category.MEDIA_ENQUIRY,
            severity=Severity.LOW,
            title="Press question for Riverside",
            now=now,
            school_id=riverside.id,
        )
        cases.change_state(session, other, CaseState.ACKNOWLEDGED, actor="test", now=now)
    wide = {"COLUMNS": "200"}

    def listed(*args: str) -> str:
        result = runner.invoke(app, ["cases", *args], env=wide)
        assert result.exit_code == 0, result.output
        return result.output

    both = listed()
    assert "Concern on oakfield-bluesky" in both and "Press question for Riverside" in both
    only_oak = listed("--school", "oakfield")
    assert "Concern on" in only_oak and "Press question" not in only_oak
    acknowledged = listed("--state", "acknowledged")
    assert "Press question" in acknowledged and "Concern on" not in acknowledged
    assert "Concern on" in listed("--state", "new", "--state", "closed")
    assert "Press question" not in listed("--state", "acknowledged", "--school", "oakfield")


def test_case_shows_evidence_and_history_with_reasons(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=False)
    with transaction(sessions) as session:
        case = session.get(t.Case, case_id)
        assert case is not None
        item = session.get(t.Item, case.item_id)
        assert item is not None
        record = evidence.capture(
            session, item=item, case_id=case_id, account_key="oakfield-bluesky",
            captured_by="worker", now=now,
        )  # fmt: skip
        sha = record.sha256
    acked = runner.invoke(
        app,
        ["case", str(case_id), "--do", "acknowledge", "--as", "cjones", "--reason", "on it today"],
    )
    assert acked.exit_code == 0, acked.output
    shown = runner.invoke(app, ["case", str(case_id), "--as", "cjones"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert f"sha256 {sha}" in shown.output
    assert "case.opened" in shown.output
    history = [line for line in shown.output.splitlines() if "case.state" in line]
    assert len(history) == 1 and "cjones" in history[0] and "on it today" in history[0]
    with sessions() as session:
        event = session.scalars(
            select(t.AuditEvent).where(
                t.AuditEvent.case_id == case_id, t.AuditEvent.action == "action.requested"
            )
        ).one()
        assert (event.actor, event.reason) == ("cjones", "on it today")


def test_staff_of_another_school_cannot_open_a_case(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=True)
    other_dsl = runner.invoke(app, ["case", str(case_id), "--as", "ewright"])
    assert other_dsl.exit_code == 1 and "school you do not serve" in other_dsl.output
    assert "secret disclosure" not in other_dsl.output
    acting = runner.invoke(app, ["case", str(case_id), "--do", "acknowledge", "--as", "ewright"])
    assert acting.exit_code == 1 and "school you do not serve" in acting.output


def test_audit_verify_reports_a_tampered_case_event(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    case_id = seed_case(sessions, now, restricted=False)
    assert (
        runner.invoke(
            app, ["case", str(case_id), "--do", "acknowledge", "--as", "cjones"]
        ).exit_code
        == 0
    )
    intact = runner.invoke(app, ["audit", "verify"])
    assert intact.exit_code == 0 and "intact" in intact.output
    with transaction(sessions) as session:
        event = session.scalars(
            select(t.AuditEvent).where(
                t.AuditEvent.case_id == case_id, t.AuditEvent.action == "case.state"
            )
        ).one()
        seq = event.seq
        # someone rewrites history: who acknowledged the case
        session.execute(update(t.AuditEvent).where(t.AuditEvent.seq == seq).values(actor="aokafor"))
    broken = runner.invoke(app, ["audit", "verify"])
    assert broken.exit_code == 1
    assert f"BREAK at event {seq}: content does not match its hash" in broken.output
    assert "intact" not in broken.output


def test_sync_checks_two_administrators_at_once(
    cli_env: Path, sessions: sessionmaker[Session]
) -> None:
    assert runner.invoke(app, ["sync"]).exit_code == 0
    broken = cli_env / "broken.yaml"
    broken.write_text(
        EXAMPLE_CONFIG.read_text().replace(
            "admins: [cjones, dmurphy]          # at least", "admins: [cjones]          # at least"
        )
    )
    result = runner.invoke(app, ["sync", str(broken)])
    assert result.exit_code == 0, result.output
    with sessions() as session:
        case = session.scalars(
            select(t.Case).where(t.Case.category == Category.TWO_ADMINS.value)
        ).one()
        assert case.title.startswith("oakfield-bluesky has 1 active administrator")
        assert session.scalars(select(t.Alert).where(t.Alert.case_id == case.id)).first()


def test_staff_leave_is_audited(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    seed_case(sessions, now, restricted=False)
    result = runner.invoke(
        app,
        [
            "staff",
            "leave",
            "cjones",
            "--on",
            "2027-01-31",
            "--successor",
            "fali",
            "--as",
            "aokafor",
        ],
    )
    assert result.exit_code == 0, result.output
    with sessions() as session:
        event = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "staff.leaving_scheduled")
        ).one()
        assert (event.actor, event.subject) == ("aokafor", "staff:cjones")
        assert event.details["successor"] == "fali" and event.details["on"] == "2027-01-31"
        leaver = session.scalars(select(t.Staff).where(t.Staff.key == "cjones")).one()
        assert (leaver.leaving_on, leaver.successor_key) == (date(2027, 1, 31), "fali")
    # the person named by --as must be a real member of staff who may manage staff
    as_moderator = runner.invoke(
        app,
        [
            "staff",
            "leave",
            "cjones",
            "--on",
            "2027-02-28",
            "--successor",
            "fali",
            "--as",
            "dmurphy",
        ],
    )
    assert as_moderator.exit_code == 1 and "Refused" in as_moderator.output
    unknown = runner.invoke(
        app,
        ["staff", "leave", "cjones", "--on", "2027-02-28", "--successor", "fali", "--as", "nobody"],
    )
    assert unknown.exit_code == 2


ASSIGNMENTS = [
    # safeguarding case, by, to -> exit code, output contains
    (False, "cjones", "fali", 0, "done"),  # trust-wide staff serve every school
    (False, "cjones", "dmurphy", 0, "done"),
    (False, "cjones", "ewright", 1, "ewright does not serve this case's school"),
    (False, "cjones", "gsmith", 1, "gsmith is not an active member of staff"),
    (False, "cjones", "nobody", 1, "unknown staff id 'nobody'"),
    (True, "bpatel", "dmurphy", 0, "done"),  # a deputy DSL
    (True, "bpatel", "cjones", 1, "cjones cannot be given a safeguarding case"),
    (True, "bpatel", "aokafor", 1, "needs one of these roles: deputy_dsl, dsl"),
]


@pytest.mark.parametrize(("restricted", "by", "to", "code", "said"), ASSIGNMENTS)
def test_assign_only_to_active_staff_of_the_school_and_safeguarding_to_the_dsl(
    cli_env: Path,
    sessions: sessionmaker[Session],
    now: datetime,
    restricted: bool,
    by: str,
    to: str,
    code: int,
    said: str,
) -> None:
    away = cli_env / "away.yaml"  # gsmith (trust-wide IT) is away
    away.write_text(
        EXAMPLE_CONFIG.read_text().replace("    active: true  ", "    active: false ", 1)
    )
    case_id = seed_case(sessions, now, restricted=restricted)
    result = runner.invoke(
        app,
        ["case", str(case_id), "--do", "assign", "--to", to, "--as", by, "--config", str(away)],
    )
    assert result.exit_code == code, result.output
    assert said in result.output
    with sessions() as session:
        case = session.get(t.Case, case_id)
        assert case is not None
        assignee = session.get(t.Staff, case.assignee_id) if case.assignee_id else None
        requests = session.scalars(
            select(t.ActionRequest).where(t.ActionRequest.kind == "assign")
        ).all()
        refusals = session.scalars(
            select(t.AuditEvent).where(
                t.AuditEvent.case_id == case_id, t.AuditEvent.action == "action.refused"
            )
        ).all()
    if code == 0:
        assert assignee is not None and assignee.key == to
        assert [r.status for r in requests] == ["done"]
    else:
        assert assignee is None and requests == []  # nothing left for the worker either
        [event] = refusals
        assert event.actor == by and event.details == {"action": "assign", "to": to}
        assert said in (event.reason or "")


def test_a_dsls_reason_on_a_safeguarding_case_is_shown_only_to_who_may_see_it(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the DSL's own login on the server (staff[].os_user in the example)
    monkeypatch.setattr("monitor.commands.cases.current_os_user", lambda: "bpatel")
    case_id = seed_case(sessions, now, restricted=True)
    done = runner.invoke(
        app,
        [
            "case",
            str(case_id),
            "--do",
            "acknowledge",
            "--as",
            "bpatel",
            "--reason",
            "her uncle again",
        ],
    )
    assert done.exit_code == 0, done.output
    for viewer in ([], ["--as", "fali"], ["--as", "aokafor"]):
        shown = runner.invoke(app, ["case", str(case_id), *viewer], env={"COLUMNS": "200"})
        assert shown.exit_code == 0 and "her uncle again" not in shown.output
        assert "acknowledge" in shown.output or "case.state" in shown.output
    as_dsl = runner.invoke(app, ["case", str(case_id), "--as", "bpatel"], env={"COLUMNS": "200"})
    assert "her uncle again" in as_dsl.output


def test_case_shows_the_engagement_at_the_last_check(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime
) -> None:
    """R15: the counts the last verification stored are shown with the case."""
    case_id = seed_case(sessions, now, restricted=False)
    with transaction(sessions) as session:
        case = session.get(t.Case, case_id)
        assert case is not None
        item = session.get(t.Item, case.item_id)
        assert item is not None
        item.engagement = {"likes": 12, "reposts": 3, "replies": 1}
        case.details = {**case.details, "engagement_at": now.isoformat()}
    shown = runner.invoke(app, ["case", str(case_id), "--as", "cjones"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "engagement: 12 likes, 3 reposts, 1 reply" in shown.output
