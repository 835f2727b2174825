"""``/healthz`` and ``/readyz`` in process: alive, ready only when migrated, reachable and working."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from monitor.config import load_config
from monitor.storage import tables as t
from monitor.storage.db import make_engine, transaction
from monitor.storage.migrate import current_revision, head_revision, packaged_head, stored_revision
from monitor.storage.queries import accounts as account_queries
from monitor.sync import apply_config
from monitor.web.app import create_app
from tests.conftest import EXAMPLE_CONFIG, FIXED_NOW


def get(engine: Engine, path: str, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    with TestClient(create_app(engine, **kwargs)) as client:
        answer = client.get(path)
    return answer.status_code, answer.json()


def test_healthz_answers_even_without_a_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}")  # a folder: the database cannot even open
    assert get(engine, "/healthz") == (200, {"status": "ok"})


def test_readyz_on_a_migrated_database(
    migrated_engine: Engine, sessions: sessionmaker[Session]
) -> None:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=FIXED_NOW)
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        account_queries.mark_failure(
            session,
            account.id,
            FIXED_NOW,
            kind="transient",
            message="timeout",
            retry_at=FIXED_NOW + timedelta(minutes=5),
            pause=False,
        )
    status, body = get(migrated_engine, "/readyz")
    assert status == 200 and body["status"] == "ready"
    assert body["database"] == "ok" and body["schema"] == head_revision(migrated_engine)
    assert body["accounts_failing"] == 1


def test_readyz_refuses_an_unmigrated_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    status, body = get(engine, "/readyz")
    assert status == 503 and "monitor db upgrade" in body["status"]


def test_readyz_refuses_an_unreachable_database(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}")
    status, body = get(engine, "/readyz")
    assert status == 503 and body["status"].startswith("database unavailable")
    assert str(tmp_path) not in body["status"]  # no connection details leak out


@pytest.mark.parametrize(
    ("role", "code"),
    [("leader", 200), ("standby", 200), ("starting", 200), ("retrying", 503), ("stopped", 503)],
)
def test_readyz_reports_the_in_process_worker(
    migrated_engine: Engine, sessions: sessionmaker[Session], role: str, code: int
) -> None:
    status, body = get(migrated_engine, "/readyz", worker_state=lambda: {"role": role})
    assert (status, body["worker"]["role"]) == (code, role)


def test_readyz_logs_nothing_when_all_is_well(
    migrated_engine: Engine, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    """Docker probes it every 30 seconds: the log keeps one line per state change, not per probe."""
    app = create_app(migrated_engine)
    with caplog.at_level(logging.DEBUG), TestClient(app) as client:
        caplog.clear()
        for _ in range(3):
            assert client.get("/readyz").status_code == 200
    assert [
        r for r in caplog.records if r.levelno >= logging.INFO and not r.name.startswith("httpx")
    ] == []


def test_the_stored_revision_is_alembics(migrated_engine: Engine, tmp_path: Path) -> None:
    with migrated_engine.connect() as conn:
        stored = stored_revision(conn)
    assert stored == current_revision(migrated_engine) == packaged_head()
    empty = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with empty.connect() as conn:
        assert stored_revision(conn) is None
