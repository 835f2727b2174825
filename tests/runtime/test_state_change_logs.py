"""One log line per state change: a failing account logs once, and once more when it recovers."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import load_config
from monitor.jobs.assess import AssessmentLike
from monitor.jobs.poll import ConnectorPool
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.worker import Worker
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.fake_platform import ERRORS, FakeConnector, FakePlatform

HANDLE = "oakfieldprimary.bsky.social"


class NoAssessor:
    def assess(
        self, texts: Sequence[str], *, school_key: str | None = None
    ) -> list[AssessmentLike]:
        return []


def test_a_failing_account_logs_once_when_it_breaks_and_once_when_it_recovers(
    sessions: sessionmaker[Session], now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(EXAMPLE_CONFIG, environ={}).config
    with transaction(sessions) as session:
        apply_config(session, config, now=now)
    platform = FakePlatform()
    bound = FakeConnector.bind(platform)
    worker = Worker(
        sessions, config, NoAssessor(), pool=ConnectorPool(environ={}, classes=lambda _p: bound)
    )
    for _ in range(4):
        platform.fail(HANDLE, ERRORS["transient"])
    with caplog.at_level(logging.INFO, logger="monitor.jobs.poll"):
        # an hour apart: past any backoff, so every poll really asks the platform
        outcomes = [worker.poll("oakfield-bluesky", now + timedelta(hours=h)) for h in range(6)]
    assert [o.error_kind for o in outcomes] == ["transient"] * 4 + [None, None]
    lines = [r.getMessage() for r in caplog.records if r.name == "monitor.jobs.poll"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("polling oakfield-bluesky failed (transient)")
    assert lines[1] == "polling oakfield-bluesky recovered"
