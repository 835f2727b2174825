"""Accounts: looked up by key, their streams' cursors, their health (polls, failures, pauses)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.storage import tables as t
from monitor.storage.repo import insert_statement


def account_by_key(session: Session, key: str) -> t.Account:
    """The account with ``key`` (``NoResultFound`` if there is none)."""
    return session.scalars(select(t.Account).where(t.Account.key == key)).one()


def load_cursor(session: Session, account_id: int, stream: str) -> str | None:
    """The stored cursor of one stream (None before the first poll)."""
    row = session.get(t.Cursor, (account_id, stream))
    return row.value if row else None


def save_cursor(
    session: Session, account_id: int, stream: str, value: str | None, now: datetime
) -> None:
    """Upsert a stream's cursor (call in the same transaction as ``store_items``)."""
    statement = insert_statement(session, t.Cursor).values(
        account_id=account_id, stream=stream, value=value, updated_at=now
    )
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["account_id", "stream"], set_={"value": value, "updated_at": now}
        )
    )


def health_of(session: Session, account_id: int) -> t.AccountHealth:
    """The account's health row, created on first use."""
    health = session.get(t.AccountHealth, account_id)
    if health is None:
        health = t.AccountHealth(account_id=account_id, consecutive_failures=0)
        session.add(health)
        session.flush()
    return health


def mark_success(session: Session, account_id: int, now: datetime, next_poll: timedelta) -> bool:
    """Record a good poll; returns True when this ends a run of failures (log once on recovery)."""
    health = health_of(session, account_id)
    recovered = health.consecutive_failures > 0
    health.last_attempt_at = now
    if health.first_success_at is None:
        health.first_success_at = now
    health.last_success_at = now
    health.consecutive_failures = 0
    health.last_error = None
    health.last_error_kind = None
    health.paused_until = None
    health.paused_reason = None
    health.next_poll_at = now + next_poll
    return recovered


def mark_failure(
    session: Session,
    account_id: int,
    now: datetime,
    *,
    kind: str,
    message: str,
    retry_at: datetime,
    pause: bool,
) -> bool:
    """Record a failed poll; returns True when this starts a run of failures (log once)."""
    health = health_of(session, account_id)
    first = health.consecutive_failures == 0
    health.last_attempt_at = now
    health.consecutive_failures += 1
    health.last_error = message[:2000]
    health.last_error_kind = kind
    health.next_poll_at = retry_at
    if pause:
        health.paused_until = retry_at
        health.paused_reason = kind
    return first
