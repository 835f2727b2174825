"""Delivering the outbox: retried with backoff, never dropped, never sent twice."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import case as sql_case
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.constants import AlertChannel, AlertStatus, Role
from monitor.directory import Directory
from monitor.notify.case_view import case_message, email_text
from monitor.notify.errors import DeliveryError
from monitor.notify.messages import CaseMessage
from monitor.notify.slack import SlackRef
from monitor.outbox import enqueue
from monitor.storage import tables as t
from monitor.storage.db import transaction

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
BASE_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)
CLOCK_SKEW = 3600.0  # seconds of tolerance between our clock and Slack's when looking back
SENDING = "sending"  # claimed: a crash here is resolved by looking for the message first


class SlackOut(Protocol):
    """What delivery needs of Slack (monitor.notify.slack.SlackSender)."""

    def post(self, channel: str, message: CaseMessage, *, key: str | None = None) -> SlackRef: ...
    def find(self, channel: str, key: str, *, oldest: float) -> SlackRef | None: ...
    def update(self, ref: SlackRef, message: CaseMessage) -> None: ...
    def reply_in_thread(self, ref: SlackRef, text: str) -> SlackRef: ...
    def post_text(self, channel: str, text: str, *, key: str | None = None) -> SlackRef: ...
    def open_dm(self, user_id: str) -> str: ...


class EmailOut(Protocol):
    """What delivery needs of email (monitor.notify.email.EmailSender)."""

    def send(self, to: list[str], subject: str, text: str, html: str | None = None) -> str: ...


@dataclass(frozen=True)
class Delivery:
    """One attempt's result."""

    alert_id: int
    status: str
    detail: str


def in_quiet_hours(
    now: datetime, quiet: tuple[time, time] | None, timezone: str
) -> datetime | None:
    """The end of the quiet period containing ``now``, or None outside quiet hours."""
    if quiet is None:
        return None
    start, end = quiet
    local = now.astimezone(ZoneInfo(timezone))
    today_end = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
    clock = local.time()
    quiet_now = (start <= clock or clock < end) if start > end else (start <= clock < end)
    if not quiet_now:
        return None
    wake = today_end if clock < end else today_end + timedelta(days=1)
    return wake.astimezone(ZoneInfo("UTC"))


def backoff(attempts: int) -> timedelta:
    """Exponential backoff for the ``attempts``-th failure."""
    return min(MAX_BACKOFF, BASE_BACKOFF * int(2 ** max(0, attempts - 1)))


def deliver_pending(
    sessions: sessionmaker[Session],
    *,
    slack: SlackOut | None,
    email: EmailOut | None,
    directory: Directory,
    now: datetime,
    timezone: str = "Europe/London",
    limit: int = 100,
) -> list[Delivery]:
    """Send what is due: urgent alerts first; non-urgent ones wait out quiet hours."""
    with sessions() as session:
        ids = list(
            session.scalars(
                select(t.Alert.id)
                .where(
                    t.Alert.status.in_([AlertStatus.PENDING.value, SENDING]),
                    t.Alert.next_attempt_at <= now,
                )
                .order_by(sql_case((t.Alert.urgent.is_(True), 0), else_=1), t.Alert.id)
                .limit(limit)
            )
        )
    wake = in_quiet_hours(now, directory.routing.quiet_hours, timezone)
    return [
        _deliver_one(
            sessions, alert_id, slack=slack, email=email, directory=directory, now=now, wake=wake
        )
        for alert_id in ids
    ]


def _deliver_one(
    sessions: sessionmaker[Session],
    alert_id: int,
    *,
    slack: SlackOut | None,
    email: EmailOut | None,
    directory: Directory,
    now: datetime,
    wake: datetime | None,
) -> Delivery:
    with transaction(sessions) as session:
        alert = session.get(t.Alert, alert_id)
        assert alert is not None
        if wake is not None and not alert.urgent:
            alert.next_attempt_at = wake
            return Delivery(alert_id, "deferred", f"quiet hours until {wake.isoformat()}")
        channel = AlertChannel(alert.channel)
        sender_missing = (channel is AlertChannel.SLACK and slack is None) or (
            channel is AlertChannel.EMAIL and email is None
        )
        if sender_missing:
            return _failed(
                session,
                alert,
                DeliveryError(f"{channel.value} is not configured", permanent=True),
                now,
                directory,
            )
        in_flight = alert.status == SENDING  # a previous attempt died mid-send
        alert.status = SENDING
        alert.attempts += 1
    try:
        with sessions() as session:
            alert = session.get(t.Alert, alert_id)
            assert alert is not None
            ref = _send(session, alert, slack=slack, email=email, in_flight=in_flight)
    except DeliveryError as exc:
        with transaction(sessions) as session:
            alert = session.get(t.Alert, alert_id)
            assert alert is not None
            return _failed(session, alert, exc, now, directory)
    with transaction(sessions) as session:
        alert = session.get(t.Alert, alert_id)
        assert alert is not None
        alert.status = AlertStatus.SENT.value
        alert.sent_at = now
        alert.external_ref = ref
        alert.last_error = None
    return Delivery(alert_id, AlertStatus.SENT.value, ref or "")


def _send(
    session: Session,
    alert: t.Alert,
    *,
    slack: SlackOut | None,
    email: EmailOut | None,
    in_flight: bool = False,
) -> str | None:
    channel = AlertChannel(alert.channel)
    case = session.get(t.Case, alert.case_id) if alert.case_id else None
    if channel is AlertChannel.EMAIL:
        assert email is not None
        if case is None:
            subject = str(alert.payload.get("subject", "School Social Monitor"))
            body = str(alert.payload.get("text", ""))
        else:
            subject, body = email_text(session, case, kind=alert.kind)
        return email.send([alert.target], subject, body)
    assert slack is not None
    conversation = (
        slack.open_dm(alert.target) if alert.target.startswith(("U", "W")) else alert.target
    )
    key = alert.idempotency_key
    if in_flight:
        # Slack may have accepted the last attempt before we could record it: adopt, never repeat
        found = slack.find(conversation, key, oldest=alert.created_at.timestamp() - CLOCK_SKEW)
        if found is not None:
            return f"{found.channel}:{found.ts}"
    if case is None:
        posted = slack.post_text(conversation, str(alert.payload.get("text", "")), key=key)
        return f"{posted.channel}:{posted.ts}"
    show = alert.payload.get("audience", "full") == "full"
    message = case_message(session, case, show_content=show)
    original = _original_ref(session, alert)
    if alert.kind == "case_opened" or original is None:
        posted = slack.post(conversation, message, key=key)
        return f"{posted.channel}:{posted.ts}"
    # a change to a case already posted here: update the message in place, note it in the thread
    slack.update(original, message)
    note = {
        "reminder": "Reminder: the response is due soon.",
        "breach": "Response target missed: escalated to senior leaders.",
    }.get(alert.kind, f"Updated: now {case.state}.")
    if not show:
        note = "Updated."
    reply = slack.reply_in_thread(original, note)
    return f"{reply.channel}:{reply.ts}"


def _original_ref(session: Session, alert: t.Alert) -> SlackRef | None:
    first = session.scalars(
        select(t.Alert.external_ref).where(
            t.Alert.case_id == alert.case_id,
            t.Alert.kind == "case_opened",
            t.Alert.channel == alert.channel,
            t.Alert.target == alert.target,
            t.Alert.status == AlertStatus.SENT.value,
        )
    ).first()
    if not first:
        return None
    channel, _, ts = first.partition(":")
    return SlackRef(channel, ts)


def _failed(
    session: Session, alert: t.Alert, exc: DeliveryError, now: datetime, directory: Directory
) -> Delivery:
    alert.last_error = f"{exc.code or ''} {exc.message}".strip()[:2000]
    if exc.retryable and alert.attempts < MAX_ATTEMPTS:
        alert.status = AlertStatus.PENDING.value
        wait = timedelta(seconds=exc.retry_after) if exc.retry_after else backoff(alert.attempts)
        alert.next_attempt_at = now + wait
        return Delivery(
            alert.id, "retry", f"retry in {wait.total_seconds():.0f}s: {alert.last_error}"
        )
    alert.status = AlertStatus.FAILED.value
    log.error(
        "alert %s to %s via %s failed for good: %s",
        alert.id,
        alert.target,
        alert.channel,
        alert.last_error,
    )
    _tell_it(session, alert, directory, now)
    return Delivery(alert.id, AlertStatus.FAILED.value, alert.last_error or "")


def _tell_it(session: Session, alert: t.Alert, directory: Directory, now: datetime) -> None:
    """A failed alert is reported to IT by the other channel (never about a failure report)."""
    if alert.kind == "delivery_failed":
        return
    other = AlertChannel.EMAIL if alert.channel == AlertChannel.SLACK.value else AlertChannel.SLACK
    text = (
        f"An alert could not be delivered by {alert.channel} to {alert.target} after {alert.attempts} attempt(s): "
        f"{alert.last_error}. Case {alert.case_id or '-'}; check the monitor's configuration."
    )
    for person in directory.with_roles({Role.IT_ADMIN}, None):
        target = person.email if other is AlertChannel.EMAIL else person.slack_user_id
        if target:
            enqueue(
                session,
                key=f"delivery_failed:{alert.id}:{other.value}:{target}",
                channel=other,
                target=target,
                kind="delivery_failed",
                now=now,
                urgent=True,
                payload={"text": text, "subject": "Monitor: an alert could not be delivered"},
            )
