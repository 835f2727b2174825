"""Leases: an account is never polled by two workers at once, a global job never runs twice.

A lease is a PostgreSQL session-level advisory lock held on its own connection for the
length of the work. It needs no expiry: if the worker dies (even by SIGKILL, or its machine
vanishes: server keepalives as for the leader lock) the server ends its session and the
lease with it, so the task's redelivery can take it at once, and a slow poll can never
outlive its lease the way it could outlive a timed one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from monitor.leader import SERVER_KEEPALIVES

log = logging.getLogger(__name__)
TRACE_ENV = "MONITOR_SCALE_TRACE"  # a file each lease taken and given up is appended to


def lease_key(namespace: str, name: str) -> int:
    """A signed 64-bit advisory-lock key for ``name`` within ``namespace``."""
    digest = hashlib.blake2b(f"{namespace}\0{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class Leases:
    """Takes leases on ``engine``'s PostgreSQL database (scaled mode needs PostgreSQL)."""

    def __init__(self, engine: Engine, namespace: str, trace: Path | None = None) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("the scaled mode needs PostgreSQL (DATABASE_URL)")
        self._engine = engine
        self._namespace = namespace
        env_trace = os.environ.get(TRACE_ENV)
        self._trace = trace or (Path(env_trace) if env_trace else None)

    @contextmanager
    def hold(self, name: str) -> Iterator[bool]:
        """Yield True while holding the lease on ``name``; False (at once) if someone holds it."""
        key = lease_key(self._namespace, name)
        connection = self._engine.connect()
        try:
            got = self._take(connection, key)
            if not got:
                yield False
                return
            self._note("take", name)
            try:
                yield True
            finally:
                self._note("give", name)
                self._give(connection, key)
        finally:
            connection.close()

    def _take(self, connection: Connection, key: int) -> bool:
        for setting, value in SERVER_KEEPALIVES.items():
            connection.execute(text("SELECT set_config(:n, :v, false)"), {"n": setting, "v": value})
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        connection.commit()
        return got

    def _give(self, connection: Connection, key: int) -> None:
        try:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            connection.commit()
        except DBAPIError:
            connection.invalidate()  # the lease ends with the session anyway

    def _note(self, event: str, name: str) -> None:
        if self._trace is None:
            return
        line = json.dumps({"e": event, "name": name, "pid": os.getpid(), "t": time.time()})
        # one write of one line with O_APPEND: lines of several processes never interleave
        fd = os.open(self._trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
