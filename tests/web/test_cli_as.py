"""`monitor case ID --as STAFF` must be justified for safeguarding content (R6): the OS user
mapped to that staff member, or --break-glass --reason (audited and told to the DSL)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from monitor.cli import app
from monitor.rules.cli_access import cli_content_refusal
from monitor.storage import tables as t
from tests.jobs.test_cli_cases import seed_case

runner = CliRunner()
WIDE = {"COLUMNS": "200"}


@pytest.mark.parametrize(
    ("mapped", "break_glass", "reason", "allowed"),
    [
        (True, False, None, True),
        (False, False, None, False),
        (False, True, None, False),
        (False, True, "  ", False),
        (False, True, "child at risk tonight, DSL unreachable", True),
    ],
)
def test_cli_content_refusal(
    mapped: bool, break_glass: bool, reason: str | None, allowed: bool
) -> None:
    refused = cli_content_refusal(mapped=mapped, break_glass=break_glass, reason=reason)
    assert (refused is None) is allowed


def test_typing_a_dsls_id_is_not_enough(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.commands.cases.current_os_user", lambda: "someone")
    case_id = seed_case(sessions, now, restricted=True)
    shown = runner.invoke(app, ["case", str(case_id), "--as", "bpatel"], env=WIDE)
    assert shown.exit_code == 0 and "secret disclosure" not in shown.output
    assert "staff[].os_user" in shown.output
    with sessions() as session:
        viewed = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "cli.case_viewed")
        ).one()
        assert viewed.details == {
            "as": "bpatel",
            "os_user": "someone",
            "content_shown": False,
            "break_glass": False,
        }


def test_the_mapped_os_user_sees_it_and_the_view_is_audited(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.commands.cases.current_os_user", lambda: "bpatel")
    case_id = seed_case(sessions, now, restricted=True)
    shown = runner.invoke(app, ["case", str(case_id), "--as", "bpatel"], env=WIDE)
    assert "secret disclosure" in shown.output
    with sessions() as session:
        viewed = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "cli.case_viewed")
        ).one()
        assert viewed.actor == "bpatel" and viewed.details["content_shown"] is True
        assert session.scalars(select(t.Alert).where(t.Alert.kind == "break_glass")).all() == []


def test_break_glass_shows_it_audits_the_reason_and_tells_the_dsl(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.commands.cases.current_os_user", lambda: "itadmin")
    case_id = seed_case(sessions, now, restricted=True)
    no_reason = runner.invoke(
        app, ["case", str(case_id), "--as", "bpatel", "--break-glass"], env=WIDE
    )
    assert "secret disclosure" not in no_reason.output and "needs --reason" in no_reason.output
    shown = runner.invoke(
        app,
        ["case", str(case_id), "--as", "bpatel", "--break-glass", "--reason", "DSL unreachable"],
        env=WIDE,
    )
    assert "secret disclosure" in shown.output
    with sessions() as session:
        views = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "cli.case_viewed")
        ).all()
        assert views[-1].details["break_glass"] is True and views[-1].reason == "DSL unreachable"
        alerts = session.scalars(select(t.Alert).where(t.Alert.kind == "break_glass")).all()
        # the DSL and the deputy, by Slack DM and email; who and why, never the content
        assert {(a.channel, a.target) for a in alerts} == {
            ("slack", "U01BILALPT"),
            ("email", "b.patel@oakfield.example.sch.uk"),
            ("slack", "U01DANMRPH"),
            ("email", "d.murphy@oakfield.example.sch.uk"),
        }
        assert all("secret disclosure" not in a.payload["text"] for a in alerts)
        assert all("itadmin" in a.payload["text"] for a in alerts)


def test_actions_record_the_os_user(
    cli_env: Path, sessions: sessionmaker[Session], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("monitor.commands.records.getpass.getuser", lambda: "pat")
    case_id = seed_case(sessions, now, restricted=False)
    done = runner.invoke(app, ["case", str(case_id), "--do", "acknowledge", "--as", "cjones"])
    assert done.exit_code == 0, done.output
    with sessions() as session:
        event = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "cli.action")
        ).one()
        assert event.actor == "cjones" and event.details["os_user"] == "cli:pat"
