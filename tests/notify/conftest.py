"""Fixtures for the delivery tests: local Slack servers, a local mailbox, the synced trust.

- ``slack``: a local Slack (Web API + Socket Mode) on its own clock; ``sender`` posts to it.
- ``slack_at_now``: a local Slack whose clock is the tests' fixed ``now`` (the outbox looks
  messages up by time) and which also knows the IT admin's user (U0GEO).
- ``smtp_mailbox``: a local plain SMTP server's mailbox and an ``EmailSender`` pointed at it.
- ``slack_trust``: the example trust wired to the local Slack's users and channels, synced to
  the test database: ``(sessions, config)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy.orm import Session, sessionmaker

from monitor.config_models import Config
from monitor.notify.email import EmailSender
from monitor.notify.slack import SlackSender, make_web_client
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.notify.outbox_world import config_for_slack
from tests.notify.test_email_delivery import Mailbox, smtp_server
from tests.servers.slack_server import BOT_TOKEN, DEFAULT_USERS, SlackServer

IT_SLACK_USER = "U0GEO"  # gsmith, the trust's IT admin (outbox_world.SLACK_IDS)


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


@pytest.fixture
def slack_at_now(now: datetime) -> Iterator[SlackServer]:
    """A local Slack whose clock agrees with the tests' ``now``, knowing the IT admin too."""
    server = SlackServer(ts_base=now.timestamp(), users=(*DEFAULT_USERS, IT_SLACK_USER)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def smtp_mailbox() -> Iterator[tuple[Mailbox, EmailSender]]:
    """A local SMTP server (no TLS) collecting into a ``Mailbox``, and a sender to it."""
    box = Mailbox()
    with smtp_server(box, tls=None) as port:
        yield (
            box,
            EmailSender(
                "127.0.0.1", port, None, None, "monitor@school.example", starttls=False, timeout=5.0
            ),
        )


@pytest.fixture
def slack_trust(
    sessions: sessionmaker[Session], now: datetime
) -> tuple[sessionmaker[Session], Config]:
    """The example trust with the local Slack's users and channels, synced: (sessions, config)."""
    cfg = config_for_slack()
    with transaction(sessions) as session:
        apply_config(session, cfg, now=now)
    return sessions, cfg
