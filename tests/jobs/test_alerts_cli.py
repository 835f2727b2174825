"""Undelivered alerts through the real CLI and /readyz: counted, listed, cancelled (audited);
and `check-config` warns of routes whose channel is not configured."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient
from typer.testing import CliRunner

from monitor.cli import app
from monitor.clock import utcnow
from monitor.config import load_config
from monitor.constants import AlertChannel
from monitor.outbox import enqueue
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.web.app import create_app
from tests.conftest import EXAMPLE_CONFIG

runner = CliRunner()
WIDE = {"COLUMNS": "300"}


def queue_two(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Two undelivered alerts (the CLI reads the real clock): 2h 5m and 3 minutes old."""
    now = utcnow()
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
        for key, age in (("old", timedelta(hours=2, minutes=5)), ("new", timedelta(minutes=3))):
            enqueue(
                session,
                key=f"test:{key}",
                channel=AlertChannel.EMAIL,
                target="b.patel@oakfield.example.sch.uk",
                kind="notice",
                now=now - age,
                urgent=True,
                payload={"subject": "s", "text": "t"},
            )
        ids = session.scalars(select(t.Alert.id).order_by(t.Alert.id)).all()
    return ids[0], ids[1]


def test_status_and_readyz_show_the_undelivered_count_and_oldest_age(
    cli_env: Path, sessions: sessionmaker[Session], migrated_engine: Engine
) -> None:
    shown = runner.invoke(app, ["status"], env=WIDE)
    assert shown.exit_code == 0 and "Undelivered alerts: 0." in shown.output
    queue_two(sessions)
    shown = runner.invoke(app, ["status"], env=WIDE)
    assert shown.exit_code == 0, shown.output
    assert "Undelivered alerts: 2, the oldest waiting 2h 5m" in shown.output
    with TestClient(create_app(migrated_engine)) as client:
        body = client.get("/readyz").json()
    waiting = body["undelivered_alerts"]
    assert waiting["count"] == 2
    assert 125 * 60 <= waiting["oldest_age_s"] < 126 * 60


def test_alerts_list_and_cancel_by_a_person_audited(
    cli_env: Path, sessions: sessionmaker[Session]
) -> None:
    old, _ = queue_two(sessions)
    listed = runner.invoke(app, ["alerts", "list"], env=WIDE)
    assert listed.exit_code == 0, listed.output
    assert "2 undelivered alert(s)" in listed.output and "2h 5m" in listed.output
    # a moderator may not; an unknown id and a missing reason are refused
    refused = runner.invoke(
        app, ["alerts", "cancel", str(old), "--as", "cjones", "--reason", "wrong address"]
    )
    assert refused.exit_code == 1 and "cannot cancel alerts" in refused.output
    assert (
        runner.invoke(app, ["alerts", "cancel", "999", "--as", "gsmith", "--reason", "x"]).exit_code
        == 2
    )
    assert (
        runner.invoke(
            app, ["alerts", "cancel", str(old), "--as", "gsmith", "--reason", " "]
        ).exit_code
        == 2
    )
    done = runner.invoke(
        app, ["alerts", "cancel", str(old), "--as", "gsmith", "--reason", "she read it on paper"]
    )
    assert done.exit_code == 0, done.output
    again = runner.invoke(app, ["alerts", "cancel", str(old), "--as", "gsmith", "--reason", "x"])
    assert again.exit_code == 1 and "cancelled: nothing to cancel" in again.output
    with sessions() as session:
        alert = session.get(t.Alert, old)
        assert alert is not None and alert.status == "cancelled" and alert.next_attempt_at is None
        [event] = session.scalars(
            select(t.AuditEvent).where(t.AuditEvent.action == "alert_cancelled")
        ).all()
        assert (event.actor, event.subject, event.reason) == (
            "gsmith",
            f"alert:{old}",
            "she read it on paper",
        )
    listed = runner.invoke(app, ["alerts", "list"], env=WIDE)
    assert "1 undelivered alert(s)" in listed.output
    shown = runner.invoke(app, ["status"], env=WIDE)
    assert "Undelivered alerts: 1, the oldest waiting 3m" in shown.output
    assert runner.invoke(app, ["audit", "verify"]).exit_code == 0


def warnings_of(output: str) -> list[str]:
    return [
        line.split(": warning: ", 1)[1] for line in output.splitlines() if ": warning: " in line
    ]


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-test")
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_FROM", "monitor@school.example")


def test_check_config_is_quiet_when_every_route_has_its_channel(
    cli_env: Path, configured: None
) -> None:
    result = runner.invoke(app, ["check-config", str(EXAMPLE_CONFIG)])
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output
    assert [w for w in warnings_of(result.output) if "channel" in w or "DSL" in w] == []


def test_check_config_warns_of_a_dsl_with_no_way_to_reach_them(
    cli_env: Path, configured: None
) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    bpatel = next(s for s in data["staff"] if s["id"] == "bpatel")
    del bpatel["email"], bpatel["slack_user_id"]
    path = cli_env / "monitor.yaml"
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["check-config", str(path)])
    assert result.exit_code == 0, result.output
    assert (
        "staff[1]: bpatel is a DSL or deputy DSL with neither a slack_user_id nor an email: "
        "safeguarding alerts cannot reach them"
    ) in warnings_of(result.output)


def test_check_config_warns_when_abuse_goes_only_to_slack_and_slack_is_not_set(
    cli_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SLACK_BOT_TOKEN", raising=False)
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_FROM", "monitor@school.example")
    result = runner.invoke(app, ["check-config", str(EXAMPLE_CONFIG)])
    assert result.exit_code == 0, result.output
    found = warnings_of(result.output)
    assert any(
        w.startswith("routing: Slack channels are routed but SLACK_BOT_TOKEN is not set")
        and "abusive" in w
        for w in found
    ), found
    # the DSL has an email too, so still reachable: no DSL warning
    assert not any("bpatel" in w for w in found)


def test_check_config_warns_when_a_school_has_no_channel_for_abuse(
    cli_env: Path, configured: None
) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["routing"] = {"it": ["gsmith"]}  # no Slack channel anywhere
    path = cli_env / "monitor.yaml"
    path.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["check-config", str(path)])
    found = warnings_of(result.output)
    assert any("no Slack channel for riverside's abusive, needs_response" in w for w in found), (
        found
    )
