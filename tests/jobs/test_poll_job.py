"""The poll job: idempotent storage, cursors with items, health, pauses and isolation."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Capability, Gone, NotSupported, Page
from monitor.config import load_config
from monitor.constants import Platform
from monitor.jobs.poll import MAX_BACKOFF, ConnectorPool, backoff_after, poll_account
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
    assert second.ok and second.new_item_ids == ()
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
        session.execute(delete(t.Cursor))
    again = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(minutes=5))
    assert again.ok and again.new_item_ids == () and count_items(synced) == 4


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
    requests = platform.requests
    skipped = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(seconds=60))
    assert skipped.skipped and skipped.skipped.startswith("paused until")
    # a person running `monitor poll --once` waits out the platform's retry time too
    manual = poll_account(
        synced, "oakfield-bluesky", pool, now + timedelta(seconds=60), ignore_pause=True
    )
    assert manual.skipped and "rate_limited" in manual.skipped
    assert platform.requests == requests  # nothing was asked of the platform while paused
    resumed = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(seconds=121))
    assert resumed.ok and len(resumed.new_item_ids) == 1
    assert health(synced, "oakfield-bluesky").consecutive_failures == 0


@pytest.mark.parametrize(
    ("error", "kind", "paused"),
    [("transient", "transient", False), ("auth", "auth", True), ("gone", "refused", False)],
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
    platform.fail(HANDLE_A, {"gone": Gone("Profile not found"), **ERRORS}[error])
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


def test_transient_failures_back_off_unless_a_person_polls_now(
    synced: sessionmaker[Session], pool: ConnectorPool, platform: FakePlatform, now: datetime
) -> None:
    platform.add(HANDLE_A, "hello", now)
    platform.fail(HANDLE_A, ERRORS["transient"])
    platform.fail(HANDLE_A, ERRORS["transient"])
    assert poll_account(synced, "oakfield-bluesky", pool, now).error_kind == "transient"
    first_retry = health(synced, "oakfield-bluesky").next_poll_at
    assert first_retry is not None
    requests = platform.requests
    early = poll_account(synced, "oakfield-bluesky", pool, first_retry - timedelta(seconds=1))
    assert early.skipped and early.skipped.startswith("backing off until")
    assert platform.requests == requests
    second = poll_account(synced, "oakfield-bluesky", pool, first_retry)
    assert second.error_kind == "transient"
    second_retry = health(synced, "oakfield-bluesky").next_poll_at
    assert second_retry is not None and second_retry - first_retry > timedelta(minutes=5)
    manual = poll_account(synced, "oakfield-bluesky", pool, first_retry, ignore_pause=True)
    assert manual.ok and len(manual.new_item_ids) == 1
    assert health(synced, "oakfield-bluesky").consecutive_failures == 0


def test_auth_pause_can_be_overridden_by_a_person(
    synced: sessionmaker[Session], pool: ConnectorPool, platform: FakePlatform, now: datetime
) -> None:
    platform.add(HANDLE_A, "hello", now)
    platform.fail(HANDLE_A, ERRORS["auth"])
    assert poll_account(synced, "oakfield-bluesky", pool, now).error_kind == "auth"
    later = now + timedelta(minutes=1)
    assert poll_account(synced, "oakfield-bluesky", pool, later).skipped
    fixed = poll_account(synced, "oakfield-bluesky", pool, later, ignore_pause=True)
    assert fixed.ok and len(fixed.new_item_ids) == 1  # the credentials were fixed: poll now
    assert platform.connects == 2  # the connector was dropped after the auth failure


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    rng = random.Random(3)
    interval = 300.0
    for failures in range(1, 4):  # 5, 10, 20 minutes, each +-20%
        delay = backoff_after(failures, interval, rng).total_seconds()
        base = interval * 2 ** (failures - 1)
        assert 0.8 * base <= delay <= 1.2 * base
    assert backoff_after(20, interval, rng) <= MAX_BACKOFF
    assert {backoff_after(2, interval, random.Random(n)) for n in range(5)} != {
        backoff_after(2, interval, random.Random(0))
    }  # jittered


def test_outcome_is_frozen(
    synced: sessionmaker[Session], pool: ConnectorPool, platform: FakePlatform, now: datetime
) -> None:
    platform.add(HANDLE_A, "hello", now)
    outcome = poll_account(synced, "oakfield-bluesky", pool, now)
    with pytest.raises(dataclasses.FrozenInstanceError):
        outcome.requests = 0  # type: ignore[misc]
    with pytest.raises(TypeError):
        outcome.per_stream["notifications"] = 5  # type: ignore[index]


def test_concurrent_gets_connect_an_account_once(
    synced: sessionmaker[Session], platform: FakePlatform
) -> None:
    entered, release = threading.Event(), threading.Event()
    base = FakeConnector.bind(platform)

    class SlowLogin(base):  # type: ignore[misc,valid-type]
        def connect(self) -> frozenset[Capability]:
            entered.set()
            assert release.wait(10)
            granted: frozenset[Capability] = super().connect()  # the base is a variable: Any
            return granted

    pool = ConnectorPool(environ={}, classes=lambda _platform: SlowLogin)
    with synced() as session:
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(pool.get(account))) for _ in range(2)]
    threads[0].start()
    assert entered.wait(10)  # the first is logging in...
    threads[1].start()  # ...when a second job asks for the same account
    release.set()
    for thread in threads:
        thread.join(10)
    assert platform.connects == 1 and len(got) == 2 and got[0] is got[1]


def test_a_stream_the_platform_refuses_is_skipped_and_logged_once(
    synced: sessionmaker[Session],
    platform: FakePlatform,
    now: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    base = FakeConnector.bind(platform)

    class NoSearch(base):  # type: ignore[misc,valid-type]
        CAPABILITIES = frozenset({Capability.NOTIFICATIONS, Capability.MENTIONS})

        def poll_mentions(self, terms: Sequence[str], cursor: str | None) -> Page:
            raise NotSupported("the public AppView refuses search without a session")

    pool = ConnectorPool(environ={}, classes=lambda _platform: NoSearch)
    platform.add(HANDLE_A, "hello", now)
    with caplog.at_level(logging.DEBUG, logger="monitor.jobs.poll"):
        first = poll_account(synced, "oakfield-bluesky", pool, now)
        second = poll_account(synced, "oakfield-bluesky", pool, now + timedelta(minutes=5))
    assert first.ok and second.ok and len(first.new_item_ids) == 1  # the other streams go on
    refusals = [r for r in caplog.records if "mentions stream is not polled" in r.getMessage()]
    assert [r.levelno for r in refusals] == [logging.WARNING, logging.DEBUG]


def test_one_thread_at_a_time_uses_an_accounts_connector(
    synced: sessionmaker[Session], platform: FakePlatform
) -> None:
    closed: list[object] = []

    class Closing(FakeConnector.bind(platform)):  # type: ignore[misc]
        def close(self) -> None:
            closed.append(self)

    pool = ConnectorPool(environ={}, classes=lambda _platform: Closing)
    with synced() as session:
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def poll_like() -> None:
        with pool.using(account) as connector:
            order.append("poll starts")
            inside.set()
            assert release.wait(10)
            assert connector not in closed  # nobody closed it under our feet
            order.append("poll ends")

    def action_like() -> None:
        with pool.using(account):
            order.append("action")

    def drop_like() -> None:
        pool.drop(account.key)  # e.g. an auth failure elsewhere: waits for its turn
        order.append("dropped")

    first = threading.Thread(target=poll_like)
    first.start()
    assert inside.wait(10)
    others = [threading.Thread(target=action_like), threading.Thread(target=drop_like)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(0.2)  # a bound, not a wait: they cannot get in while the poll holds it
    assert order == ["poll starts"]
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert order[:2] == ["poll starts", "poll ends"]
    assert sorted(order[2:]) == ["action", "dropped"]
