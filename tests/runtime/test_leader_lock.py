"""Only one worker leads; a standby takes over when the leader's process dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.leader import SERVER_KEEPALIVES, FileLeaderLock, PostgresLeaderLock, leader_lock_for
from monitor.service import STANDBY_CHECK
from monitor.storage.db import make_engine

HOLDER = textwrap.dedent(
    """
    import sys, time
    from monitor.leader import leader_lock_for
    from monitor.storage.db import make_engine
    lock = leader_lock_for(make_engine(sys.argv[1]))
    assert lock.try_acquire()
    print("held", flush=True)
    time.sleep(600)
    """
)


def wait_until(predicate: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_lock_is_exclusive_and_released(migrated_engine: Engine, db_url: str) -> None:
    first = leader_lock_for(make_engine(db_url))
    second = leader_lock_for(make_engine(db_url))
    assert first.try_acquire() and first.still_held()
    assert not second.try_acquire()
    first.release()
    assert not first.still_held()
    assert second.try_acquire()
    second.release()


def test_standby_takes_over_when_the_leader_is_killed(migrated_engine: Engine, db_url: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, db_url], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        standby = leader_lock_for(make_engine(db_url))
        assert not standby.try_acquire()
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        assert wait_until(standby.try_acquire), "standby never took over"
        standby.release()
    finally:
        if holder.poll() is None:
            holder.kill()


def test_lock_kinds(tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'monitor.db'}"
    assert isinstance(leader_lock_for(make_engine(sqlite_url)), FileLeaderLock)
    assert isinstance(
        leader_lock_for(make_engine("postgresql://u@127.0.0.1/db")), PostgresLeaderLock
    )


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="needs PostgreSQL"
)
def test_postgres_lock_notices_a_lost_connection(migrated_engine: Engine, db_url: str) -> None:
    lock = PostgresLeaderLock(make_engine(db_url))
    assert lock.try_acquire()
    connection = lock._connection
    assert connection is not None
    pid = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    connection.commit()
    with migrated_engine.connect() as admin:
        admin.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid or 0)})")
        admin.commit()
    assert not lock.still_held()
    assert lock.try_acquire()
    lock.release()


@pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"), reason="needs PostgreSQL"
)
def test_postgres_lock_connection_has_keepalives(migrated_engine: Engine, db_url: str) -> None:
    """A leader whose machine vanishes (no FIN) loses the lock in about 25 s, not 2 hours."""
    lock = PostgresLeaderLock(make_engine(db_url))
    assert lock.try_acquire()
    try:
        connection = lock._connection
        assert connection is not None
        settings = {
            name: connection.exec_driver_sql(f"SHOW {name}").scalar() for name in SERVER_KEEPALIVES
        }
        connection.commit()
        assert settings == SERVER_KEEPALIVES
        idle, interval, count = (
            int(SERVER_KEEPALIVES[f"tcp_keepalives_{n}"]) for n in ("idle", "interval", "count")
        )
        assert idle + interval * count + STANDBY_CHECK < 60  # a standby takes over within a minute
    finally:
        lock.release()
