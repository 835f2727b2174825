"""Engine and session set-up for SQLite (default) and PostgreSQL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
# libpq: give up connecting after 10 s; notice a vanished server within about 25 s.
POSTGRES_CONNECT_ARGS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
}


# PostgreSQL adds the whole refused row to a constraint error ("DETAIL:  Failing row contains
# (..., the comment's text, ...)"): cut from there, so no comment reaches a log or last_error.
_FAILING_ROW = re.compile(r"\n?DETAIL:\s+Failing row contains .*", re.DOTALL)


def normalise_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (the driver we install)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook below issue BEGIN itself (pysqlite's own is deferred).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets the web app read while the worker writes; busy_timeout waits out locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # Take the write lock at the start: two writers never read the same state and then
    # collide (SQLITE_BUSY_SNAPSHOT); they queue on busy_timeout instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _hide_failing_row(context: ExceptionContext) -> None:
    for error in (context.original_exception, context.sqlalchemy_exception):
        if error is not None and error.args and isinstance(error.args[0], str):
            error.args = (_FAILING_ROW.sub("", error.args[0]), *error.args[1:])


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get WAL, a busy timeout and foreign keys.

    Statement parameters never appear in errors (``hide_parameters``): a failed insert of
    comments would otherwise write their texts, a disclosure included, into the log.
    """
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:" and not database.startswith("file:"):
            _private_file(Path(database))
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    engine = create_engine(
        url,
        echo=echo,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args=dict(POSTGRES_CONNECT_ARGS) if parsed.drivername.endswith("psycopg") else {},
    )
    event.listen(engine, "handle_error", _hide_failing_row)
    return engine


def _private_file(database: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds personal data, R14)."""
    database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not database.exists():
        # SQLite gives its -wal and -shm files the same permissions as the database file
        os.close(os.open(database, os.O_RDWR | os.O_CREAT, 0o600))


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded values usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session
