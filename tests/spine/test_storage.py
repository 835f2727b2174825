"""Storage: migrations match the models; items are unique; times come back aware UTC."""

from __future__ import annotations

import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Engine, Integer, MetaData, String, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from monitor.storage import tables as t
from monitor.storage.db import (
    POSTGRES_CONNECT_ARGS,
    SQLITE_BUSY_TIMEOUT_MS,
    make_engine,
    session_factory,
    transaction,
)
from monitor.storage.migrate import current_revision, head_revision, schema_drift, upgrade
from monitor.storage.tables import NAMING, Base
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


def _copy_of_models() -> MetaData:
    copy = MetaData(naming_convention=NAMING)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(copy)
    return copy


def _extra_column(models: MetaData) -> None:
    models.tables["schools"].append_column(Column("motto", Integer, nullable=True))


def _dropped_index(models: MetaData) -> None:
    items = models.tables["items"]
    items.indexes.discard(next(i for i in items.indexes if i.name == "ix_items_hidden_at"))


def _narrower_type(models: MetaData) -> None:
    models.tables["schools"].c.name.type = String(100)


def _nullable(models: MetaData) -> None:
    models.tables["accounts"].c.handle.nullable = True


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (_extra_column, "add_column"),
        (_dropped_index, "remove_index"),
        (_narrower_type, "modify_type"),
        (_nullable, "modify_nullable"),
    ],
)
def test_the_drift_check_notices_a_model_change(
    migrated_engine: Engine, change: Callable[[MetaData], None], expected: str
) -> None:
    """The agreement test above can fail: a model edited without a migration shows up."""
    assert schema_drift(migrated_engine, _copy_of_models()) == []
    models = _copy_of_models()
    change(models)
    kinds = {
        (diff[0][0] if isinstance(diff, list) else diff[0])
        for diff in schema_drift(migrated_engine, models)
    }
    assert kinds == {expected}


def test_sqlite_uses_wal_a_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    """Checked on a SQLite file whatever DATABASE_URL says: the default install's settings."""
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'monitor.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()
    assert SQLITE_BUSY_TIMEOUT_MS >= 5_000  # long enough to wait out the worker's writes


def test_a_second_writer_waits_for_the_first_instead_of_failing(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE plus busy_timeout: a writer queues behind another, it never errors."""
    url = f"sqlite:///{tmp_path / 'monitor.db'}"
    engine = make_engine(url)
    upgrade(engine)
    sessions = session_factory(engine)
    now = datetime(2026, 11, 23, tzinfo=UTC)
    first_has_lock, second_done = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        first_has_lock.wait(10)
        try:
            with transaction(sessions) as session:
                session.add(
                    t.School(key="elm", name="Elm", timezone="UTC", settings={}, created_at=now)
                )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        second_done.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    with transaction(sessions) as session:
        session.add(t.School(key="oak", name="Oak", timezone="UTC", settings={}, created_at=now))
        session.flush()  # holds the write lock from BEGIN IMMEDIATE until commit
        first_has_lock.set()
        assert not second_done.wait(0.3)  # the second writer is waiting, not failing
    thread.join(30)
    assert errors == [] and second_done.is_set()
    with sessions() as session:
        assert sorted(session.scalars(select(t.School.key))) == ["elm", "oak"]
    engine.dispose()


def test_the_sqlite_file_is_private(tmp_path: Path) -> None:
    """The database holds personal data: owner-only file and folder (its -wal/-shm follow)."""
    database = tmp_path / "data" / "monitor.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
    assert stat.S_IMODE(database.parent.stat().st_mode) == 0o700


def test_postgres_connections_time_out_and_notice_a_vanished_server(
    migrated_engine: Engine,
) -> None:
    if migrated_engine.dialect.name != "postgresql":
        pytest.skip("needs PostgreSQL")
    with migrated_engine.connect() as conn:
        parameters = conn.connection.dbapi_connection.info.get_parameters()  # type: ignore[union-attr]
    assert {k: parameters.get(k) for k in POSTGRES_CONNECT_ARGS} == {
        k: str(v) for k, v in POSTGRES_CONNECT_ARGS.items()
    }
