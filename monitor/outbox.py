"""The durable alert outbox: an alert is a row before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypedDict

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from monitor.constants import AlertChannel, AlertKind, AlertStatus
from monitor.storage import tables as t
from monitor.storage.repo import insert_statement

CASE_OPENED = AlertKind.CASE_OPENED  # a case's first alert: the message later ones update
STATE_CHANGE = AlertKind.STATE.about("")  # kind prefix of the update sent on a state change
REASSESSED = AlertKind.REASSESSED  # the kind of the update sent when a case is re-assessed


class CaseAlertPayload(TypedDict, total=False):
    """What a case's alert stores beside its case: the case itself is read when it is sent."""

    audience: str  # an ``Audience`` value: how much of the case the recipient may see
    no_dsl: bool  # R6: told in an absent DSL's place; the message keeps saying so
    state: str | None  # a state-change update: the new state (None: re-assessed)
    actor: str  # who changed it
    announced: bool  # the change was already answered in the Slack thread
    quiet: bool  # an in-place edit only, no thread reply (``alerting.state_change_is_quiet``)
    fallback_of: int  # sent by the other channel because this alert was stuck


class NoticePayload(TypedDict, total=False):
    """A notice with no case (or about one): its own subject and text."""

    notice: bool
    subject: str
    text: str
    alerts: list[int]  # the stuck alerts an undelivered notice is about
    case: int  # the case a DSL-unreached notice is about
    fallback_of: int
    blocks: list[dict[str, Any]]  # Slack Block Kit blocks (a post's approval buttons)


AlertPayload = CaseAlertPayload | NoticePayload

# The reason Slack button actions give: the click was already answered in the thread.
FROM_SLACK = "from Slack"


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
    payload: AlertPayload | None = None,
    not_before: datetime | None = None,
) -> bool:
    """Add an alert unless one with ``key`` exists; returns True when it was added."""
    statement = (
        insert_statement(session, t.Alert)
        .values(
            idempotency_key=key,
            channel=channel.value,
            target=target,
            kind=str(kind),
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


def refresh_case_messages(
    session: Session,
    case_id: int,
    *,
    actor: str,
    now: datetime,
    state: str | None = None,
    reason: str | None = None,
    quiet: bool = False,
) -> int:
    """Queue an in-place update of every Slack message about the case.

    ``state``: the case became it (the thread says who did it, unless a Slack button click
    already said so there); without it the case was re-assessed (a new category, severity
    or restriction). ``quiet``: the edit is all, no thread reply. The updates go wherever the case's first alert went (its channel post
    and DMs) with the same urgency; what each may show is decided when it is sent.
    """
    firsts = session.execute(
        select(t.Alert.target, t.Alert.urgent, t.Alert.payload).where(
            t.Alert.case_id == case_id,
            t.Alert.kind == CASE_OPENED,
            t.Alert.channel == AlertChannel.SLACK.value,
            t.Alert.status.not_in([AlertStatus.FAILED.value, AlertStatus.CANCELLED.value]),
        )
    ).all()
    kind = f"{STATE_CHANGE}{state}" if state else REASSESSED
    added = 0
    for target, urgent, payload in firsts:
        added += enqueue(
            session,
            key=f"case:{case_id}:{kind}:{now.isoformat()}:slack:{target}",
            channel=AlertChannel.SLACK,
            target=target,
            kind=str(kind),
            now=now,
            case_id=case_id,
            urgent=urgent,
            payload={
                "audience": (payload or {}).get("audience", "full"),
                # R6: a message to someone standing in for an absent DSL keeps saying so
                **({"no_dsl": True} if (payload or {}).get("no_dsl") else {}),
                "state": state,
                "actor": actor,
                "announced": reason == FROM_SLACK,
                **({"quiet": True} if quiet else {}),
            },
        )
    return added


UNDELIVERED = (AlertStatus.PENDING.value, AlertStatus.SENDING.value)


@dataclass(frozen=True)
class Undelivered:
    """How many alerts wait to be delivered, and since when (``monitor status``, ``/readyz``)."""

    count: int
    oldest_at: datetime | None

    def oldest_age(self, now: datetime) -> timedelta | None:
        """How long the oldest has waited at ``now``."""
        return None if self.oldest_at is None else max(timedelta(0), now - self.oldest_at)

    def to_json(self, now: datetime) -> dict[str, Any]:
        """``{"count": 2, "oldest_at": "...", "oldest_age_s": 960}`` (plain JSON types)."""
        age = self.oldest_age(now)
        return {
            "count": self.count,
            "oldest_at": self.oldest_at.isoformat() if self.oldest_at else None,
            "oldest_age_s": int(age.total_seconds()) if age is not None else None,
        }


def undelivered(session: Session | Connection) -> Undelivered:
    """Alerts not yet delivered (nor cancelled) and the oldest one's creation time."""
    row = session.execute(
        select(func.count(), func.min(t.Alert.created_at)).where(t.Alert.status.in_(UNDELIVERED))
    ).one()
    return Undelivered(int(row[0] or 0), row[1])


def pending_count(session: Session) -> int:
    """Alerts not yet delivered."""
    return undelivered(session).count
