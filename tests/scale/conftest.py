"""The jobs tests' world (the example trust synced) for the scaled mode's tests too, and the
fixtures of the peer tests on the real broker: a run's own queue and key prefix, a local Slack.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.jobs.conftest import config, world
from tests.scale.fleet import clean_namespace, new_prefix, services_up
from tests.servers.slack_server import SlackServer

__all__ = ["config", "prefix", "slack", "world"]


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    server = SlackServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def prefix(db_url: str) -> Iterator[str]:
    """This run's queue and Redis key prefix (deleted afterwards); skips without the services."""
    if not db_url.startswith("postgresql"):
        pytest.skip("the scaled mode needs PostgreSQL (DATABASE_URL)")
    if not services_up():
        if os.environ.get("REQUIRE_PEERS"):
            pytest.fail("RabbitMQ (127.0.0.1:5672) and Redis (127.0.0.1:6379) must run")
        pytest.skip("RabbitMQ or Redis is not running on 127.0.0.1")
    name = new_prefix()
    try:
        yield name
    finally:
        clean_namespace(name)
