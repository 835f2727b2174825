"""One active worker at a time: a PostgreSQL advisory lock, or a file lock beside a SQLite database."""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)
WORKER_LOCK_KEY = 0x5C4A0D19  # advisory lock id, shared by every worker of this database
# Server-side TCP keepalives for the lock's connection: idle 10 s, then 3 probes 5 s apart.
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}


class LeaderLock(Protocol):
    """Held by exactly one worker; released when that worker's process dies."""

    def try_acquire(self) -> bool:
        """Take the lock if it is free; True when we hold it."""
        ...

    def still_held(self) -> bool:
        """False when the lock was lost (e.g. the database connection broke)."""
        ...

    def release(self) -> None:
        """Give the lock up."""
        ...


class PostgresLeaderLock:
    """A session-level advisory lock on a dedicated connection (freed if the process dies)."""

    def __init__(self, engine: Engine, key: int = WORKER_LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        if self._connection is not None:
            return self.still_held()
        try:
            connection = self._engine.connect()
        except DBAPIError:
            return False  # the database is unreachable: nobody can lead, try again later
        try:
            # If the leader's machine vanishes without closing its socket, the server notices
            # within about half a minute and frees the lock, so a standby takes over in time.
            for name, value in SERVER_KEEPALIVES.items():
                connection.execute(
                    text("SELECT set_config(:n, :v, false)"), {"n": name, "v": value}
                )
            got = bool(
                connection.execute(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key}
                ).scalar()
            )
            connection.commit()
        except DBAPIError:
            connection.close()
            return False
        if got:
            self._connection = connection
        else:
            connection.close()
        return got

    def still_held(self) -> bool:
        if self._connection is None:
            return False
        try:
            # a bigint advisory key is stored as classid (high half), objid (low half), objsubid 1
            held = self._connection.execute(
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                    " AND pid = pg_backend_pid() AND classid = :hi AND objid = :lo"
                    " AND objsubid = 1 AND granted"
                ),
                {"hi": (self._key >> 32) & 0xFFFFFFFF, "lo": self._key & 0xFFFFFFFF},
            ).scalar()
            self._connection.commit()
        except DBAPIError:
            log.warning("lost the database connection that holds the worker lock")
            self._drop()
            return False
        return bool(held)

    def release(self) -> None:
        if self._connection is None:
            return
        try:
            self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
            self._connection.commit()
        except DBAPIError:
            pass  # the lock dies with the connection anyway
        self._drop()

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            finally:
                self._connection = None


class FileLeaderLock:
    """An exclusive ``flock`` on a file next to the SQLite database."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def still_held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def leader_lock_for(engine: Engine) -> LeaderLock:
    """The right lock for ``engine``'s database."""
    if engine.dialect.name == "postgresql":
        return PostgresLeaderLock(engine)
    database = engine.url.database or "monitor.db"
    return FileLeaderLock(Path(database).with_suffix(".worker.lock"))
