"""The jobs tests' world: the example trust synced, and a fake platform behind the real pool."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import load_config
from monitor.config_models import Config
from monitor.jobs.poll import ConnectorPool
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.fake_platform import FakeConnector, FakePlatform


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
