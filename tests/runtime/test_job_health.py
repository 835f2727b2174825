"""A scheduled job that keeps failing: not ready (named), in `monitor status`, one IT alert."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient
from typer.testing import CliRunner

from monitor.cli import app
from monitor.config import load_config
from monitor.constants import AlertChannel
from monitor.directory import load_directory
from monitor.jobhealth import JobHealth
from monitor.scheduler import guarded
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.web.app import create_app
from tests.conftest import EXAMPLE_CONFIG

runner = CliRunner()


def readyz(engine: Engine) -> tuple[int, dict[str, Any]]:
    with TestClient(create_app(engine)) as client:
        answer = client.get("/readyz")
    return answer.status_code, answer.json()


class Flaky:
    """A job that fails until told to work."""

    def __init__(self) -> None:
        self.broken = True

    def __call__(self, now: datetime) -> None:
        if self.broken:
            raise RuntimeError("the database said no")


@pytest.fixture
def health(sessions: sessionmaker[Session], now: datetime) -> JobHealth:
    cfg = load_config(EXAMPLE_CONFIG, environ={}).config
    with transaction(sessions) as session:
        apply_config(session, cfg, now=now)
    return JobHealth(
        sessions,
        directory=lambda session, at: load_directory(session, cfg.routing, now=at),
        channels=frozenset({AlertChannel.SLACK, AlertChannel.EMAIL}),
    )


def it_notices(sessions: sessionmaker[Session]) -> list[t.Alert]:
    with sessions() as session:
        return list(
            session.scalars(
                select(t.Alert).where(t.Alert.kind.in_(["job_failing", "job_recovered"]))
            )
        )


def test_a_job_that_keeps_failing_is_named_by_readyz_and_it_hears_once(
    health: JobHealth,
    sessions: sessionmaker[Session],
    migrated_engine: Engine,
    now: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job = Flaky()
    clock = iter(now + timedelta(seconds=10 * i) for i in range(100))
    call = guarded("assess", job, lambda: next(clock), health)
    with caplog.at_level(logging.INFO, logger="monitor"):
        call()
        call()
        assert readyz(migrated_engine)[0] == 200  # two failures: not yet
        for _ in range(8):
            call()
    status, body = readyz(migrated_engine)
    assert status == 503 and body["status"] == "job(s) failing: assess"
    assert body["jobs_failing"]["assess"]["failures"] == 10
    assert "the database said no" in body["jobs_failing"]["assess"]["error"]
    # one traceback, then one short line per run
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert len(tracebacks) == 1
    assert "failed again (10 in a row): RuntimeError: the database said no" in caplog.text
    # IT is told once (George Smith, by Slack: the first channel he has), not once per run
    [notice] = it_notices(sessions)
    assert (notice.kind, notice.channel, notice.target) == ("job_failing", "slack", "U01GEORGES")
    assert "assess" in notice.payload["text"] and notice.urgent
    # it works again: ready, and IT hears that too
    job.broken = False
    call()
    status, body = readyz(migrated_engine)
    assert status == 200 and body["jobs_failing"] == {}
    assert sorted(n.kind for n in it_notices(sessions)) == ["job_failing", "job_recovered"]
    # a later run of failures is a new problem: told again (once)
    job.broken = True
    for _ in range(5):
        call()
    assert [n.kind for n in it_notices(sessions)].count("job_failing") == 2


def test_monitor_status_lists_the_failing_job(
    cli_env: Path, health: JobHealth, now: datetime
) -> None:
    call = guarded("digest", Flaky(), lambda: now, health)
    for _ in range(3):
        call()
    shown = runner.invoke(app, ["status"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "Job digest failing: 3 run(s) in a row since" in shown.output
    assert "RuntimeError: the database said no" in shown.output


def test_jobs_no_longer_scheduled_are_forgotten(
    health: JobHealth, migrated_engine: Engine, now: datetime
) -> None:
    call = guarded("poll:gone", Flaky(), lambda: now, health)
    for _ in range(3):
        call()
    assert readyz(migrated_engine)[0] == 503
    health.forget_except({"assess", "deliver"})  # the account was removed from the config
    assert readyz(migrated_engine)[0] == 200
