"""The durable alert outbox: an alert is a row before anything is sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.constants import AlertChannel, AlertStatus
from monitor.storage import tables as t
from monitor.storage.repo import insert_statement


def enqueue(
    session: Session,
    *,
    key: str,
    channel: AlertChannel,
    target: str,
    kind: str,
    now: datetime,
    case_id: int | None = None,
    urgent: bool = False,
    payload: dict[str, Any] | None = None,
    not_before: datetime | None = None,
) -> bool:
    """Add an alert unless one with ``key`` exists; returns True when it was added."""
    statement = (
        insert_statement(session, t.Alert)
        .values(
            idempotency_key=key,
            channel=channel.value,
            target=target,
            kind=kind,
            case_id=case_id,
            urgent=urgent,
            payload=payload or {},
            status=AlertStatus.PENDING.value,
            attempts=0,
            created_at=now,
            next_attempt_at=not_before or now,
        )
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        .returning(t.Alert.id)
    )
    return session.scalar(statement) is not None


def pending_count(session: Session) -> int:
    """Alerts not yet delivered."""
    return len(
        session.scalars(select(t.Alert.id).where(t.Alert.status == AlertStatus.PENDING.value)).all()
    )
