"""Shared fixtures: a migrated database on SQLite (default) or PostgreSQL (DATABASE_URL)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from monitor.storage.db import make_engine, normalise_url, session_factory
from monitor.storage.migrate import upgrade
from monitor.storage.tables import Base

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_CONFIG = REPO / "config" / "example.yaml"
FIXED_NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)  # a Monday morning
# Every test process (and the commands it starts) signs the audit log with one known key.
TEST_AUDIT_KEY = "test-audit-key-" + "0" * 32
os.environ.setdefault("MONITOR_AUDIT_KEY", TEST_AUDIT_KEY)


def database_url_for_tests(tmp_dir: Path) -> str:
    """PostgreSQL when DATABASE_URL is set, else a fresh SQLite file."""
    url = os.environ.get("DATABASE_URL")
    return normalise_url(url) if url else f"sqlite:///{tmp_dir / 'test.db'}"


def reset_postgres_schema(engine: Engine) -> None:
    """Start from an empty database: drop everything in the public schema."""
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of the test database."""
    return database_url_for_tests(tmp_path_factory.mktemp("db"))


@pytest.fixture(scope="session")
def migrated_engine(db_url: str) -> Iterator[Engine]:
    """An engine on a database migrated to head once per session."""
    engine = make_engine(db_url)
    if engine.dialect.name == "postgresql":
        reset_postgres_schema(engine)
    upgrade(engine)
    yield engine
    engine.dispose()


def empty_all_tables(engine: Engine) -> None:
    """Delete every row, children first, keeping the schema."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{table.name}"' for table in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture
def sessions(migrated_engine: Engine) -> sessionmaker[Session]:
    """A session factory on an empty, migrated database."""
    empty_all_tables(migrated_engine)
    return session_factory(migrated_engine)


@pytest.fixture
def now() -> datetime:
    """A fixed 'now' for tests that must not read the clock."""
    return FIXED_NOW


@pytest.fixture
def cli_env(
    monkeypatch: pytest.MonkeyPatch, db_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> Path:
    """Run commands in a scratch folder against the (emptied) test database."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("MONITOR_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MONITOR_CONFIG", str(EXAMPLE_CONFIG))
    return tmp_path


# The quick local tier is `pytest -m "not slow"` (CI runs every test). Besides the tests marked
# slow where they are written, these are slow wherever they are: the Bluesky network and the
# browser's OpenID peer take minutes to start, and the end-to-end flows run the whole service.
SLOW_MARKERS = frozenset({"bluesky", "webpeer"})
SLOW_FOLDERS = frozenset({"e2e"})


def is_slow(item: pytest.Item) -> bool:
    """Whether ``item`` belongs to the slow tier."""
    if SLOW_MARKERS & {mark.name for mark in item.iter_markers()}:
        return True
    try:
        folder = item.path.relative_to(REPO / "tests").parts[0]
    except ValueError:
        return False
    return folder in SLOW_FOLDERS


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the slow tier (see SLOW_MARKERS and SLOW_FOLDERS)."""
    for item in items:
        if is_slow(item):
            item.add_marker(pytest.mark.slow)
