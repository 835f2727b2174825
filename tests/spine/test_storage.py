"""Storage: migrations match the models; items are unique; times come back aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from monitor.storage import tables as t
from monitor.storage.db import make_engine, transaction
from monitor.storage.migrate import current_revision, head_revision, schema_drift, upgrade
from tests.conftest import reset_postgres_schema


def test_migrations_match_the_models(migrated_engine: Engine) -> None:
    assert current_revision(migrated_engine) == head_revision(migrated_engine)
    assert schema_drift(migrated_engine) == []


def test_upgrade_of_an_empty_database_is_repeatable(
    db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    if db_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path_factory.mktemp('fresh') / 'fresh.db'}"
    else:
        url = db_url
    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            reset_postgres_schema(engine)
        assert current_revision(engine) is None
        upgrade(engine)
        upgrade(engine)  # a second run is a no-op
        assert current_revision(engine) == head_revision(engine)
        assert schema_drift(engine) == []
    finally:
        engine.dispose()


def _school_account(session: Session, now: datetime) -> t.Account:
    school = t.School(key="oak", name="Oak", timezone="Europe/London", settings={}, created_at=now)
    session.add(school)
    session.flush()
    account = t.Account(
        key="oak-bsky",
        school_id=school.id,
        platform="bluesky",
        handle="oak.test",
        poll_interval_s=300,
        gap_limit_s=1800,
        options={},
        credential_refs={},
        created_at=now,
    )
    session.add(account)
    session.flush()
    return account


def _item(account: t.Account, platform_id: str, now: datetime) -> t.Item:
    return t.Item(
        platform="bluesky",
        platform_id=platform_id,
        account_id=account.id,
        stream="replies",
        kind="reply",
        url="https://bsky.app/x",
        author_id="did:plc:x",
        author_handle="x.test",
        text="hello",
        created_at=now,
        seen_at=now,
    )


def test_items_are_unique_per_platform_id(sessions: sessionmaker[Session], now: datetime) -> None:
    with transaction(sessions) as session:
        account = _school_account(session, now)
        session.add(_item(account, "at://1", now))
    with pytest.raises(IntegrityError), transaction(sessions) as session:
        account = session.scalars(select(t.Account)).one()
        session.add(_item(account, "at://1", now))


def test_times_are_stored_and_returned_as_aware_utc(sessions: sessionmaker[Session]) -> None:
    bst = timezone(timedelta(hours=1))
    local = datetime(2026, 7, 1, 13, 0, tzinfo=bst)
    with transaction(sessions) as session:
        account = _school_account(session, local)
        account_id = account.id
    with sessions() as session:
        stored = session.get(t.Account, account_id)
        assert stored is not None
        assert stored.created_at == datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
        assert stored.created_at.tzinfo is not None


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError, match="naive datetime"), transaction(sessions) as session:
        _school_account(session, datetime(2026, 1, 1, 12, 0))
