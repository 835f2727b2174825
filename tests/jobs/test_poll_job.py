"""The poll job: idempotent storage, cursors with items, health, pauses and isolation."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.config import load_config
from monitor.constants import Platform
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.fake_platform import ERRORS, FakeConnector, FakePlatform

HANDLE_A = "oakfieldprimary.bsky.social"


@pytest.fixture
def platform() -> FakePlatform:
    return FakePlatform()


@pytest.fixture
def pool(platform: FakePlatform) -> ConnectorPool:
    bound = FakeConnector.bind(platform)
    return ConnectorPool(environ={}, classes=lambda _platform: bound)


@pytest.fixture
def synced(sessions: sessionmaker[Session], now: datetime) -> sessionmaker[Session]:
    cfg = load_config(EXAMPLE_CONFIG, environ={}).config
    # enable a second Bluesky account so isolation can be shown
    second = cfg.accounts[0].model_copy(
        update={"key": "riverside-bluesky", "handle": "riverside.test", "school": "riverside"}
    )
    cfg = cfg.model_copy(update={"accounts": [cfg.accounts[0], second]})
    with transaction(sessions) as session:
        apply_config(session, cfg, now=now)
    return sessions


def count_items(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(t.Item)) or 0


def health(sessions: sessionmaker[Session], key: str) -> t.AccountHealth:
    with sessions() as session:
        account = session.scalars(select(t.Account).where(t.Account.key == key)).one()
        row = session.get(t.AccountHealth, account.id)
        assert row is not None
        return row


def test_items_are_stored_once_and_cursor_advances(
    synced: sessionmaker[Session], pool: ConnectorPool, platform: FakePlatform, now: datetime
) -> None:
    for n in range(7):
        platform.add(HANDLE_A, f"comment {n}", now)
    first = poll_account(synced, "oakfield-bluesky", pool, now)
    assert first.ok and len(first.new_item_ids) == 7 and first.requests == 3  # pages of 3
    requests_before = platform.requests
    second = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(minutes=5))
    assert second.ok and second.new_item_ids == []
    assert platform.requests - requests_before == 1  # only what the cursor needs
    assert count_items(synced) == 7
    platform.add(HANDLE_A, "one more", now)
    third = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(minutes=10))
    assert len(third.new_item_ids) == 1 and count_items(synced) == 8
    assert platform.connects == 1  # the session is reused, never a login per poll
    state = health(synced, "oakfield-bluesky")
    assert state.last_success_at == now + timedelta(minutes=10)
    assert state.next_poll_at == now + timedelta(minutes=15)


def test_a_cursor_lost_in_a_crash_only_replays_stored_items(
    synced: sessionmaker[Session], pool: ConnectorPool, platform: FakePlatform, now: datetime
) -> None:
    for n in range(4):
        platform.add(HANDLE_A, f"comment {n}", now)
    poll_account(synced, "oakfield-bluesky", pool, now)
    with transaction(synced) as session:  # as if the worker died before saving the cursor
        session.execute(t.Cursor.__table__.delete())
    again = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(minutes=5))
    assert again.ok and again.new_item_ids == [] and count_items(synced) == 4


def test_rate_limit_pauses_only_that_account(
    synced: sessionmaker[Session], pool: ConnectorPool, platform: FakePlatform, now: datetime
) -> None:
    platform.add(HANDLE_A, "hello", now)
    platform.add("riverside.test", "hi", now)
    platform.fail(HANDLE_A, ERRORS["ratelimit"])
    limited = poll_account(synced, "oakfield-bluesky", pool, now)
    other = poll_account(synced, "riverside-bluesky", pool, now)
    assert limited.error_kind == "rate_limited" and other.ok and len(other.new_item_ids) == 1
    state = health(synced, "oakfield-bluesky")
    assert state.paused_until == now + timedelta(seconds=120)
    assert state.consecutive_failures == 1
    skipped = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(seconds=60))
    assert skipped.skipped and skipped.skipped.startswith("paused until")
    resumed = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(seconds=121))
    assert resumed.ok and len(resumed.new_item_ids) == 1
    assert health(synced, "oakfield-bluesky").consecutive_failures == 0


@pytest.mark.parametrize(
    ("error", "kind", "paused"), [("transient", "transient", False), ("auth", "auth", True)]
)
def test_failures_are_recorded_and_never_raise(
    synced: sessionmaker[Session],
    pool: ConnectorPool,
    platform: FakePlatform,
    now: datetime,
    error: str,
    kind: str,
    paused: bool,
) -> None:
    platform.fail(HANDLE_A, ERRORS[error])
    outcome = poll_account(synced, "oakfield-bluesky", pool, now)
    assert outcome.error_kind == kind
    state = health(synced, "oakfield-bluesky")
    assert state.last_error_kind == kind and state.last_success_at is None
    assert (state.paused_until is not None) is paused
    assert state.next_poll_at is not None and state.next_poll_at > now


def test_a_crashing_connector_is_contained(synced: sessionmaker[Session], now: datetime) -> None:
    def broken(_platform: Platform) -> type[FakeConnector]:
        raise RuntimeError("library bug")

    outcome = poll_account(
        synced, "oakfield-bluesky", ConnectorPool(environ={}, classes=broken), now
    )
    assert outcome.error_kind == "crash" and "library bug" in (outcome.error or "")


def test_missing_credentials_are_an_auth_error(
    synced: sessionmaker[Session], pool: ConnectorPool, now: datetime
) -> None:
    with transaction(synced) as session:
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        account.credential_refs = {"app_password": {"env": "NO_SUCH_SECRET_VAR"}}
    outcome = poll_account(synced, "oakfield-bluesky", pool, now)
    assert outcome.error_kind == "auth" and "NO_SUCH_SECRET_VAR" in (outcome.error or "")
