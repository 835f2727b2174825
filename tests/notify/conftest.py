"""Fixtures for the delivery tests: the local Slack server and a sender pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.notify.slack import SlackSender, make_web_client
from tests.servers.slack_server import BOT_TOKEN, SlackServer


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """A running local Slack (Web API + Socket Mode) on free loopback ports."""
    server = SlackServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sender(slack: SlackServer) -> SlackSender:
    """A SlackSender using the real slack-sdk WebClient against the local Slack."""
    return SlackSender(make_web_client(BOT_TOKEN, base_url=slack.base_url, timeout=5))
