"""The dialect's INSERT ... ON CONFLICT: the one statement that differs between the databases.

The queries themselves are grouped per area in ``monitor.storage.queries``.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.storage import tables as t


def insert_statement(session: Session, table: type[t.Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that supports ON CONFLICT on both databases."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
