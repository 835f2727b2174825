"""R6 with no DSL in post, end to end: poll, assess, outbox, the local Slack and SMTP."""

from __future__ import annotations

import email
from collections.abc import Iterator
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor import cases
from monitor.cli import app
from monitor.config import load_config
from monitor.config_models import Config, StaffMember
from monitor.constants import CaseState, Category
from monitor.directory import load_directory
from monitor.jobs.buttons import button_handler
from monitor.jobs.deliver import may_show_content
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.notify.buttons import ButtonListener
from monitor.notify.case_view import NO_DSL_NEXT_STEP
from monitor.notify.email import EmailSender
from monitor.notify.slack import make_web_client
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.fake_platform import FakeConnector, FakePlatform
from tests.jobs.test_escalation_flow import HANDLE, assess
from tests.notify import outbox_world
from tests.notify.outbox_world import config_for_slack
from tests.notify.test_email_delivery import Mailbox
from tests.servers.slack_server import APP_TOKEN, BOT_TOKEN, DEFAULT_USERS, SlackServer

pytestmark = pytest.mark.peer
runner = CliRunner()
HEAD_SLACK, HEAD_EMAIL = "U0ADA", "a.okafor@oakfield.example.sch.uk"
SLT_SLACK, SLT_EMAIL = "U0HAN", "h.singh@northfield.example.org.uk"
DISCLOSURE = "HELPME my uncle hurts me, please help"
NOTICE = "No DSL or deputy DSL is in post for Oakfield Primary School"


@pytest.fixture
def slack_with_leaders(now: datetime) -> Iterator[SlackServer]:
    """A local Slack on the tests' clock that also knows the principal and an SLT member."""
    server = SlackServer(
        ts_base=now.timestamp(), users=(*DEFAULT_USERS, "U0GEO", HEAD_SLACK, SLT_SLACK)
    ).start()
    try:
        yield server
    finally:
        server.stop()


def without_a_dsl(now: datetime, *, principal_left: bool = False) -> Config:
    """Oakfield's DSL left yesterday and it has no deputy; quiet hours all day."""
    cfg = config_for_slack()
    yesterday = now.date() - timedelta(days=1)
    changes: dict[str, dict[str, Any]] = {
        "bpatel": {"leaving_date": yesterday},
        "dmurphy": {"roles": ["comms", "moderator"]},  # no longer the deputy DSL
        "aokafor": {"slack_user_id": HEAD_SLACK}
        | ({"leaving_date": yesterday} if principal_left else {}),
    }
    staff = [s.model_copy(update=changes.get(s.id, {})) for s in cfg.staff]
    staff.append(
        StaffMember(
            id="hsingh",
            name="Hana Singh",
            email=SLT_EMAIL,
            slack_user_id=SLT_SLACK,
            roles=["slt"],
        )
    )
    # urgent alerts never wait for the end of quiet hours
    routing = cfg.routing.model_copy(update={"quiet_hours": (time(0, 0), time(23, 59))})
    return cfg.model_copy(update={"staff": staff, "routing": routing})


def disclosed(sessions: sessionmaker[Session], cfg: Config, now: datetime) -> int:
    """A pupil's disclosure on Oakfield's account: polled, assessed, its case's alerts queued."""
    with transaction(sessions) as session:
        apply_config(session, cfg, now=now)
    platform = FakePlatform()
    platform.add(HANDLE, DISCLOSURE, now)
    pool = ConnectorPool(environ={}, classes=lambda _p: FakeConnector.bind(platform))
    poll_account(sessions, "oakfield-bluesky", pool, now)
    assess(sessions, cfg, now)
    with sessions() as session:
        case = session.scalars(
            select(t.Case).where(t.Case.category == Category.SAFEGUARDING.value)
        ).one()
        assert case.restricted
        return case.id


def delivered(
    sessions: sessionmaker[Session],
    cfg: Config,
    slack: SlackServer,
    mail: EmailSender,
    now: datetime,
) -> dict[str, str]:
    """One delivery pass; what each Slack conversation received."""
    results = outbox_world.deliver(sessions, cfg, slack.base_url, mail, now)
    assert results and all(r.status == "sent" for r in results), results
    return {m.channel: repr(m.blocks) + (m.text or "") for m in slack.messages}


def emails(box: Mailbox) -> dict[str, tuple[str, str]]:
    """Recipient -> (subject, body) of every email received."""
    got = {}
    for received in box.received:
        parsed = email.message_from_bytes(received.content)
        payload = parsed.get_payload(decode=True)
        assert isinstance(payload, bytes)
        for rcpt in received.rcpt_tos:
            got[rcpt] = (str(parsed["Subject"]), payload.decode())
    return got


@pytest.mark.parametrize(
    ("principal_left", "slack_id", "address"),
    [
        (False, HEAD_SLACK, HEAD_EMAIL),  # the principal, in the DSL's place
        (True, SLT_SLACK, SLT_EMAIL),  # no principal in post either: SLT
    ],
)
def test_with_no_dsl_in_post_the_principal_or_slt_gets_the_concern(
    sessions: sessionmaker[Session],
    slack_with_leaders: SlackServer,
    smtp_mailbox: Any,
    now: datetime,
    principal_left: bool,
    slack_id: str,
    address: str,
) -> None:
    box, mail = smtp_mailbox
    cfg = without_a_dsl(now, principal_left=principal_left)
    disclosed(sessions, cfg, now)
    by_channel = delivered(sessions, cfg, slack_with_leaders, mail, now)
    # the school's channel: only that the DSL has it, nothing of the content, nor why
    shared = by_channel.pop("C0SAFE")
    assert "Escalated to the DSL" in shared
    for secret in ("hurts me", "troll", "bsky", "case:hide", "No DSL"):
        assert secret not in shared
    # the stand-in, by DM: the content, and first of all that no DSL is in post
    assert set(by_channel) == {slack_with_leaders.dm_channel(slack_id)}
    [dm] = by_channel.values()
    assert "hurts me" in dm and NOTICE in dm
    assert dm.index(NOTICE) < dm.index("hurts me")
    for button in ("case:hide", "case:acknowledge", "case:escalate"):
        assert button in dm  # the DSL's buttons: they may act on it in the DSL's place
    # and by email, to them alone; the DSL who left and other schools' staff get nothing
    [(subject, body)] = emails(box).values()
    assert set(emails(box)) == {address}
    assert subject.endswith("no DSL in post")
    # content-free by default, like the DSL's own email (routing.dsl_email_text)
    assert body.startswith(NOTICE) and "hurts me" not in body and NO_DSL_NEXT_STEP in body
    assert "Act on it: monitor case " in body  # and how, though only a DSL may be assigned it


def no_dsl_config_file(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch, *, os_user: str | None = None
) -> Config:
    """The example, its DSL gone and no deputy, as the CLI's configuration."""
    # the CLI reads the real clock: the DSL's leaving date is long past
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    if os_user is not None:  # the principal's login on the server (staff[].os_user)
        old = "    slack_user_id: U01ADAOKAF\n"
        assert text.count(old) == 1
        text = text.replace(old, f"{old}    os_user: {os_user}\n")
    for old, new in (
        ("    roles: [dsl]\n", "    roles: [dsl]\n    leaving_date: 2025-10-31\n"),
        ("roles: [comms, moderator, deputy_dsl]", "roles: [comms, moderator]"),
    ):
        assert text.count(old) == 1
        text = text.replace(old, new)
    path = cli_env / "monitor.yaml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("MONITOR_CONFIG", str(path))
    return load_config(path, environ={}).config


def test_a_stand_in_sees_it_from_the_cli_and_nobody_else_does(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = no_dsl_config_file(cli_env, monkeypatch, os_user="aokafor")
    case_id = disclosed(sessions, config, now)
    # the principal's own login on the server (staff[].os_user)
    monkeypatch.setattr("monitor.commands.cases.current_os_user", lambda: "aokafor")
    wide = {"COLUMNS": "200"}
    head = runner.invoke(app, ["case", str(case_id), "--as", "aokafor"], env=wide)
    assert head.exit_code == 0 and "hurts me" in head.output, head.output
    for other in ("cjones", "fali", "dmurphy", "ewright"):  # ewright: Riverside's head and DSL
        shown = runner.invoke(app, ["case", str(case_id), "--as", other], env=wide)
        assert "hurts me" not in shown.output


def test_a_stand_in_acts_on_it_from_the_cli_and_nobody_else_does(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id = disclosed(sessions, no_dsl_config_file(cli_env, monkeypatch), now)
    for other in ("cjones", "fali", "dmurphy", "ewright"):  # not the DSL's line of escalation
        refused = runner.invoke(app, ["case", str(case_id), "--do", "acknowledge", "--as", other])
        assert refused.exit_code == 1 and "Refused" in refused.output, refused.output
    done = runner.invoke(app, ["case", str(case_id), "--do", "acknowledge", "--as", "aokafor"])
    assert done.exit_code == 0, done.output
    assert f"acknowledge requested by Ada Okafor on case {case_id}: done" in done.output
    with sessions() as session:
        case = session.get(t.Case, case_id)
        assert case is not None and case.state == CaseState.ACKNOWLEDGED.value
        refusals = session.scalars(
            select(t.AuditEvent.actor).where(
                t.AuditEvent.case_id == case_id, t.AuditEvent.action == "action.refused"
            )
        ).all()
        assert sorted(refusals) == ["cjones", "dmurphy", "ewright", "fali"]  # each audited


def test_the_stand_in_hides_it_with_the_button_in_their_dm(
    sessions: sessionmaker[Session],
    slack_with_leaders: SlackServer,
    smtp_mailbox: Any,
    now: datetime,
) -> None:
    _box, mail = smtp_mailbox
    cfg = without_a_dsl(now)
    case_id = disclosed(sessions, cfg, now)
    delivered(sessions, cfg, slack_with_leaders, mail, now)
    [dm] = [
        m
        for m in slack_with_leaders.messages
        if m.channel == slack_with_leaders.dm_channel(HEAD_SLACK)
    ]
    handler = button_handler(
        sessions, lambda s, at: load_directory(s, cfg.routing, now=at), lambda: now
    )
    listener = ButtonListener(
        app_token=APP_TOKEN,
        web_client=make_web_client(BOT_TOKEN, base_url=slack_with_leaders.base_url, timeout=5),
        handler=handler,
        concurrency=1,
    )

    def answers() -> list[str | None]:
        return [m.text for m in slack_with_leaders.replies(dm.channel, dm.ts)]

    with listener:
        assert slack_with_leaders.wait_for(
            lambda: slack_with_leaders.connected_sessions == 1, timeout=10
        )
        # SLT is not the stand-in while the principal is in post
        slack_with_leaders.click(dm, "case:hide", user_id=SLT_SLACK)
        assert slack_with_leaders.wait_for(lambda: len(answers()) == 1, timeout=10)
        slack_with_leaders.click(
            dm, "case:hide", user_id=HEAD_SLACK
        )  # the principal, in the DSL's place
        assert slack_with_leaders.wait_for(lambda: len(answers()) == 2, timeout=10)
    refused, hidden = answers()
    assert refused is not None
    assert refused.startswith("Hana Singh cannot do that: this is a safeguarding case"), refused
    assert hidden == "Hide requested by Ada Okafor."
    with sessions() as session:
        requests = session.scalars(
            select(t.ActionRequest).where(t.ActionRequest.case_id == case_id)
        ).all()
        assert [(r.kind, r.requested_by, r.status) for r in requests] == [
            ("hide", "aokafor", "pending")  # for the worker, evidence first (R7)
        ]


@pytest.mark.parametrize(
    ("channel", "target", "audience", "shown"),
    [
        ("slack", HEAD_SLACK, "full", True),  # the principal, in the DSL's place
        ("email", HEAD_EMAIL.upper(), "full", True),
        ("slack", SLT_SLACK, "full", False),  # SLT only when no principal is in post either
        ("slack", "U0DSL", "full", False),  # the DSL who left yesterday
        ("email", "b.patel@oakfield.example.sch.uk", "full", False),
        ("slack", "U0DAN", "full", False),  # a moderator, no longer a deputy
        ("slack", "C0SAFE", "full", False),  # a shared channel, never
        ("slack", HEAD_SLACK, "restricted_note", False),
    ],
)
def test_who_may_see_a_safeguarding_case_when_no_dsl_is_in_post(
    sessions: sessionmaker[Session],
    now: datetime,
    channel: str,
    target: str,
    audience: str,
    shown: bool,
) -> None:
    cfg = without_a_dsl(now)
    case_id = disclosed(sessions, cfg, now)
    with sessions() as session:
        case = session.get(t.Case, case_id)
        alert = t.Alert(channel=channel, target=target, payload={"audience": audience})
        directory = load_directory(session, cfg.routing, now=now)
        assert may_show_content(alert, case, directory, school_key="oakfield") is shown


def test_an_edited_message_keeps_saying_no_dsl_is_in_post(
    sessions: sessionmaker[Session],
    slack_with_leaders: SlackServer,
    smtp_mailbox: Any,
    now: datetime,
) -> None:
    _box, mail = smtp_mailbox
    cfg = without_a_dsl(now)
    case_id = disclosed(sessions, cfg, now)
    delivered(sessions, cfg, slack_with_leaders, mail, now)
    with transaction(sessions) as session:
        case = session.get(t.Case, case_id)
        assert case is not None
        cases.change_state(session, case, CaseState.ESCALATED, actor="policy", now=now)
    delivered(sessions, cfg, slack_with_leaders, mail, now + timedelta(minutes=1))
    [dm] = [
        m
        for m in slack_with_leaders.messages
        if m.channel == slack_with_leaders.dm_channel(HEAD_SLACK) and m.thread_ts is None
    ]
    assert len(dm.edits) == 1
    text = repr(dm.blocks) + (dm.text or "")
    assert NOTICE in text and "hurts me" in text and "Escalated" in text
