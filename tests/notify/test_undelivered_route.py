"""Who hears that alerts are stuck is the ``DELIVERY_FAILED`` route's row, not delivery's own rule."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import load_config
from monitor.config_models import Config
from monitor.constants import AlertChannel, AlertKind, Category, Role
from monitor.directory import load_directory
from monitor.jobs.undelivered import escalate_undelivered
from monitor.outbox import enqueue
from monitor.rules import routing
from monitor.rules.delivery import FALLBACK_AFTER, undelivered_notice_roles
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG

IT = {"it@northfield.example.org.uk"}  # gsmith, the trust's only it_admin


@pytest.fixture
def synced(sessions: sessionmaker[Session], now: datetime) -> Config:
    config = load_config(EXAMPLE_CONFIG, environ={}).config
    with transaction(sessions) as session:
        apply_config(session, config, now=now)
    return config


def told_of_a_stuck_alert(
    sessions: sessionmaker[Session], config: Config, now: datetime
) -> set[str]:
    """Queue one alert, let it stay stuck past ``FALLBACK_AFTER``: who the notice goes to."""
    with transaction(sessions) as session:
        enqueue(
            session,
            key="test:stuck",
            channel=AlertChannel.SLACK,
            target="C0ALERTS",
            kind="notice",
            now=now,
            payload={"text": "a notice"},
        )
        alert = session.scalars(select(t.Alert)).one()
        alert.attempts = 3
    later = now + FALLBACK_AFTER
    with transaction(sessions) as session:
        escalate_undelivered(
            session,
            load_directory(session, config.routing, now=later),
            now=later,
            configured=frozenset({AlertChannel.EMAIL}),
        )
    with sessions() as session:
        return set(
            session.scalars(select(t.Alert.target).where(t.Alert.kind == AlertKind.UNDELIVERED))
        )


def slt_emails(config: Config) -> set[str]:
    return {s.email for s in config.staff if Role.SLT in s.roles and s.active and s.email}


def test_the_notice_goes_to_the_routes_roles(
    sessions: sessionmaker[Session], synced: Config, now: datetime
) -> None:
    assert undelivered_notice_roles() == routing.ROUTES[Category.DELIVERY_FAILED].roles
    assert told_of_a_stuck_alert(sessions, synced, now) == IT


def test_changing_the_route_row_changes_who_hears(
    sessions: sessionmaker[Session],
    synced: Config,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    row = routing.ROUTES[Category.DELIVERY_FAILED]
    monkeypatch.setitem(
        routing.ROUTES, Category.DELIVERY_FAILED, replace(row, roles=frozenset({Role.SLT}))
    )
    told = told_of_a_stuck_alert(sessions, synced, now)
    assert told == slt_emails(synced) and told.isdisjoint(IT)
