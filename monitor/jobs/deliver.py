"""Delivering the outbox: retried with backoff, never dropped, never sent twice."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session, sessionmaker

from monitor.constants import SEVERITY_ORDER, AlertChannel, AlertStatus, Severity
from monitor.directory import Directory
from monitor.jobs.undelivered import configured_channels, escalate_undelivered
from monitor.notify.case_view import case_message, email_text, thread_note
from monitor.notify.errors import DeliveryError
from monitor.notify.messages import CaseMessage
from monitor.notify.slack import SlackRef
from monitor.outbox import CASE_OPENED
from monitor.rules.alerting import dsls_in_post
from monitor.rules.delivery import RETRY_CAP, backoff
from monitor.rules.emails import email_shows_content
from monitor.rules.visibility import may_see_content
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.cases import school_key_of
from monitor.web.links import case_url

log = logging.getLogger(__name__)
CLOCK_SKEW = 3600.0  # seconds of tolerance between our clock and Slack's when looking back
SENDING = AlertStatus.SENDING.value  # claimed: a crash here is resolved by looking first
WAIT_FOR_FIRST = timedelta(seconds=1)  # an update waits for its case's first message
LIVE = (AlertStatus.PENDING.value, SENDING)


class SlackOut(Protocol):
    """What delivery needs of Slack (monitor.notify.slack.SlackSender)."""

    def post(
        self,
        channel: str,
        message: CaseMessage,
        *,
        key: str | None = None,
        also: Sequence[str] = (),
    ) -> SlackRef: ...
    def find_keys(
        self, channel: str, keys: Collection[str], *, oldest: float, thread: SlackRef | None = None
    ) -> dict[str, SlackRef]: ...
    def update(self, ref: SlackRef, message: CaseMessage) -> None: ...
    def reply_in_thread(
        self, ref: SlackRef, text: str, *, key: str | None = None, also: Sequence[str] = ()
    ) -> SlackRef: ...
    def post_text(
        self,
        channel: str,
        text: str,
        *,
        key: str | None = None,
        blocks: list[dict[str, Any]] | None = None,
    ) -> SlackRef: ...
    def open_dm(self, user_id: str) -> str: ...


class EmailOut(Protocol):
    """What delivery needs of email (monitor.notify.email.EmailSender)."""

    def send(
        self,
        to: list[str],
        subject: str,
        text: str,
        html: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> str: ...


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


def _gravest_first() -> ColumnElement[int]:
    """Sort key of an alert's case severity: critical first; alerts without a case as medium."""
    ranks = {severity.value: -rank for severity, rank in SEVERITY_ORDER.items()}
    return sql_case(ranks, value=t.Case.severity, else_=-SEVERITY_ORDER[Severity.MEDIUM])


def deliver_pending(
    sessions: sessionmaker[Session],
    *,
    slack: SlackOut | None,
    email: EmailOut | None,
    directory: Directory,
    now: datetime,
    timezone: str = "Europe/London",
    limit: int = 100,
    links_base: str | None = None,
) -> list[Delivery]:
    """Send what is due: urgent alerts first, then the gravest; non-urgent ones wait out quiet hours.

    In a burst, an abusive comment's alert goes before a question's that arrived with it.
    An alert for a channel that is not configured waits (untouched) until it is; one
    undelivered too long also goes by the other channel, and IT is told
    (``monitor.jobs.undelivered``).
    """
    configured = configured_channels(slack=slack, email=email)
    try:
        with transaction(sessions) as session:
            escalate_undelivered(session, directory, now=now, configured=configured)
    except Exception:
        # never let the escalation stop delivery itself
        log.exception("could not escalate undelivered alerts; delivering what is due")
    if not configured:
        return []
    with sessions() as session:
        ids = list(
            session.scalars(
                select(t.Alert.id)
                .outerjoin(t.Case, t.Case.id == t.Alert.case_id)
                .where(
                    t.Alert.status.in_(LIVE),
                    t.Alert.next_attempt_at <= now,
                    t.Alert.channel.in_([c.value for c in configured]),
                )
                .order_by(
                    sql_case((t.Alert.urgent.is_(True), 0), else_=1), _gravest_first(), t.Alert.id
                )
                .limit(limit)
            )
        )
    wake = in_quiet_hours(now, directory.routing.quiet_hours, timezone)
    results = []
    for alert_id in ids:
        result = _deliver_one(
            sessions,
            alert_id,
            slack=slack,
            email=email,
            directory=directory,
            now=now,
            wake=wake,
            links_base=links_base,
        )
        if result is not None:
            results.append(result)
    return results


def _deliver_one(
    sessions: sessionmaker[Session],
    alert_id: int,
    *,
    slack: SlackOut | None,
    email: EmailOut | None,
    directory: Directory,
    now: datetime,
    wake: datetime | None,
    links_base: str | None = None,
) -> Delivery | None:
    """Claim, send and record one alert (with the updates of the same message merged in)."""
    with transaction(sessions) as session:
        alert = session.get(t.Alert, alert_id)
        if (
            alert is None
            or alert.status not in LIVE
            or alert.next_attempt_at is None
            or alert.next_attempt_at > now
        ):
            return None  # delivered or rescheduled with another alert in this pass
        if wake is not None and not alert.urgent:
            alert.next_attempt_at = wake
            return Delivery(alert_id, "deferred", f"quiet hours until {wake.isoformat()}")
        channel = AlertChannel(alert.channel)
        sender_missing = (channel is AlertChannel.SLACK and slack is None) or (
            channel is AlertChannel.EMAIL and email is None
        )
        if sender_missing:
            # it waits for the channel to be configured (a restart with the settings)
            alert.status = AlertStatus.PENDING.value
            alert.last_error = f"waiting: {channel.value} is not configured"
            return Delivery(alert_id, "waiting", alert.last_error)
        group = [alert]
        if (
            channel is AlertChannel.SLACK
            and alert.case_id is not None
            and alert.kind != CASE_OPENED
        ):
            first = _first_message(session, alert)
            if first is not None and first.status in LIVE:
                # posting now would make a second message; the first shows the latest state anyway
                first_due = first.next_attempt_at or now
                alert.next_attempt_at = max(now, first_due) + WAIT_FOR_FIRST
                return Delivery(alert_id, "deferred", f"waiting for alert {first.id} to be posted")
            # every pending update of the same message goes as one edit and one thread reply
            group += _same_message(session, alert)
        # a previous attempt died mid-send, or failed without knowing whether Slack took it
        look_first = any(a.status == SENDING or a.attempts > 0 for a in group)
        for member in group:
            member.status = SENDING
            member.attempts += 1
        ids = [member.id for member in group]
    failure: DeliveryError | None = None
    ref: str | None = None
    try:
        with sessions() as session:
            alerts = [session.get(t.Alert, i) for i in ids]
            ref = _send(
                session,
                [a for a in alerts if a is not None],
                slack=slack,
                email=email,
                directory=directory,
                look_first=look_first,
                links_base=links_base,
            )
    except DeliveryError as exc:
        failure = exc
    except Exception as exc:
        # a bug or a database error must not stop the alerts behind this one: retry, then fail
        log.exception("alert %s could not be delivered", alert_id)
        failure = DeliveryError(f"unexpected {type(exc).__name__}", code="internal")
    return _record_sending(sessions, ids, failure=failure, ref=ref, now=now)


def _record_sending(
    sessions: sessionmaker[Session],
    ids: list[int],
    *,
    failure: DeliveryError | None,
    ref: str | None,
    now: datetime,
) -> Delivery:
    """Record how sending the alert ``ids[0]`` (and the updates merged into it) went."""
    alert_id = ids[0]
    with transaction(sessions) as session:
        alert = session.get(t.Alert, alert_id)
        assert alert is not None
        merged = [m for m in (session.get(t.Alert, i) for i in ids[1:]) if m is not None]
        if failure is not None and alert.status == AlertStatus.CANCELLED.value:
            return Delivery(alert_id, alert.status, "cancelled while it was being sent")
        if failure is not None:
            return _failed(alert, failure, now, merged=merged)
        for member in (alert, *merged):
            member.status = AlertStatus.SENT.value
            member.sent_at = now
            member.external_ref = ref
            member.last_error = None
    detail = ref or ""
    if len(ids) > 1:
        detail += f" (with alert(s) {', '.join(str(i) for i in ids[1:])})"
    return Delivery(alert_id, AlertStatus.SENT.value, detail)


def _first_message(session: Session, alert: t.Alert) -> t.Alert | None:
    """The case's first alert to the same place: the message later updates edit."""
    return session.scalars(
        select(t.Alert)
        .where(
            t.Alert.case_id == alert.case_id,
            t.Alert.kind == CASE_OPENED,
            t.Alert.channel == alert.channel,
            t.Alert.target == alert.target,
        )
        .order_by(t.Alert.id)
        .limit(1)
    ).first()


def _same_message(session: Session, alert: t.Alert) -> list[t.Alert]:
    """Other undelivered updates of the same case message, oldest first."""
    return list(
        session.scalars(
            select(t.Alert)
            .where(
                t.Alert.case_id == alert.case_id,
                t.Alert.channel == alert.channel,
                t.Alert.target == alert.target,
                t.Alert.kind != CASE_OPENED,
                t.Alert.status.in_(LIVE),
                t.Alert.id != alert.id,
            )
            .order_by(t.Alert.id)
        )
    )


def _ref(found: SlackRef) -> str:
    return f"{found.channel}:{found.ts}"


def _look(
    slack: SlackOut,
    channel: str,
    keys: Sequence[str],
    *,
    oldest: float,
    thread: SlackRef | None = None,
) -> dict[str, SlackRef]:
    """What Slack already has of ``keys``; without the history scopes, nothing (and a warning)."""
    try:
        return slack.find_keys(channel, keys, oldest=oldest, thread=thread)
    except DeliveryError as exc:
        if not exc.permanent:
            raise
        # never drop the alert for want of a scope: send it, at the small risk of a repeat
        log.warning(
            "cannot check Slack for an earlier delivery (%s); add the channels:history, "
            "groups:history and im:history scopes",
            exc.code,
        )
        return {}


def _send(
    session: Session,
    alerts: Sequence[t.Alert],
    *,
    slack: SlackOut | None,
    email: EmailOut | None,
    directory: Directory,
    look_first: bool,
    links_base: str | None = None,
) -> str | None:
    """Deliver ``alerts`` (one, or updates of one message); returns where it went."""
    alert = alerts[0]
    channel = AlertChannel(alert.channel)
    case = session.get(t.Case, alert.case_id) if alert.case_id else None
    school_key = school_key_of(session, case)
    show = may_show_content(alert, case, directory, school_key=school_key)
    # R6: someone told in the DSL's place hears why, while no DSL or deputy is in post
    no_dsl = show and bool(alert.payload.get("no_dsl")) and not dsls_in_post(directory, school_key)
    page = case_url(links_base, case.id) if case else None
    if channel is AlertChannel.EMAIL:
        assert email is not None
        if case is None or alert.payload.get("notice"):
            subject = str(alert.payload.get("subject", "School Social Monitor"))
            body = str(alert.payload.get("text", ""))
        else:
            routing = directory.routing
            subject, body = email_text(
                session,
                case,
                kind=alert.kind,
                show_content=show,
                no_dsl=no_dsl,
                content_free=show
                and not email_shows_content(
                    restricted=case.restricted, may_see=show, include_text=routing.dsl_email_text
                ),
                case_url=page,
            )
        # SMTP cannot be asked what arrived: a repeat after a crash keeps the Message-ID
        return email.send([alert.target], subject, body, idempotency_key=alert.idempotency_key)
    assert slack is not None
    conversation = (
        slack.open_dm(alert.target) if alert.target.startswith(("U", "W")) else alert.target
    )
    keys = [a.idempotency_key for a in alerts]
    oldest = min(a.created_at for a in alerts).timestamp() - CLOCK_SKEW
    if case is None or alert.payload.get("notice"):
        found = _look(slack, conversation, keys, oldest=oldest) if look_first else {}
        if found:
            return _ref(next(iter(found.values())))  # adopt, never repeat
        text = str(alert.payload.get("text", ""))
        blocks = alert.payload.get("blocks")
        if isinstance(blocks, list) and blocks:
            posted = slack.post_text(conversation, text, key=keys[0], blocks=blocks)
        else:
            posted = slack.post_text(conversation, text, key=keys[0])
        return _ref(posted)
    message = case_message(session, case, show_content=show, no_dsl=no_dsl, case_url=page)
    original = None if alert.kind == CASE_OPENED else _original_ref(session, alert)
    if original is None:
        found = _look(slack, conversation, keys, oldest=oldest) if look_first else {}
        if found:
            return _ref(next(iter(found.values())))
        posted = slack.post(conversation, message, key=keys[0], also=keys[1:])
        return _ref(posted)
    # a change to a case already posted here: update the message in place, note it in the thread
    slack.update(original, message)  # an edit is idempotent
    found = (
        _look(slack, original.channel, keys, oldest=oldest, thread=original) if look_first else {}
    )
    missing = [a for a in alerts if a.idempotency_key not in found]
    if not missing:
        return _ref(next(iter(found.values())))
    note = thread_note(session, case, [(a.kind, a.payload) for a in missing], show_content=show)
    if note is None:
        return _ref(original)  # a button click already said it in the thread: the edit is all
    reply = slack.reply_in_thread(
        original,
        note,
        key=missing[0].idempotency_key,
        also=[a.idempotency_key for a in missing[1:]],
    )
    return _ref(reply)


def may_show_content(
    alert: t.Alert, case: t.Case | None, directory: Directory, *, school_key: str | None = None
) -> bool:
    """Whether this alert may carry the case's content, judged now, not when it was queued.

    A restricted (safeguarding) case shows its content only in a DM or email to a DSL or
    deputy in post (``school_key``: the case's school, whose date judges leaving
    dates) or, while the school has none in post, to those told in their place
    (``restricted_access``); a shared channel, and anyone else, sees only that the DSL
    has it. A case restricted after its first alerts (re-assessed) is hidden from them
    from then on.
    """
    if alert.payload.get("audience", "full") != "full":
        return False
    if case is None:
        return True
    if alert.channel == AlertChannel.EMAIL.value:
        target = alert.target.lower()
        people = [p for p in directory.people if p.email and p.email.lower() == target]
    else:
        person = directory.by_slack_id(alert.target)
        people = [person] if person is not None else []
    return any(
        may_see_content(
            directory,
            p,
            school_key=school_key,
            category=case.case_category,
            restricted=case.restricted,
        ).allowed
        for p in (people or (None,))
    )


def _original_ref(session: Session, alert: t.Alert) -> SlackRef | None:
    first = session.scalars(
        select(t.Alert.external_ref).where(
            t.Alert.case_id == alert.case_id,
            t.Alert.kind == CASE_OPENED,
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
    alert: t.Alert,
    exc: DeliveryError,
    now: datetime,
    *,
    merged: Sequence[t.Alert] = (),
) -> Delivery:
    """Schedule the next attempt: never given up on, at most ``RETRY_CAP`` apart.

    A permanent error (a wrong address, a missing scope) waits the longest; a person fixes
    the configuration or cancels the alert (``monitor alerts cancel``). After
    ``FALLBACK_AFTER`` the alert also goes by the other channel and IT is told.
    """
    alert.last_error = f"{exc.code or ''} {exc.message}".strip()[:2000]
    alert.status = AlertStatus.PENDING.value
    if exc.permanent:
        wait = RETRY_CAP
    elif exc.retry_after:
        wait = min(RETRY_CAP, timedelta(seconds=exc.retry_after))
    else:
        wait = backoff(alert.attempts)
    alert.next_attempt_at = now + wait
    if alert.attempts == 1:  # one line per alert, not one per attempt
        log.warning(
            "alert %s via %s not delivered (%s); retrying, at most %d minutes apart",
            alert.id,
            alert.channel,
            alert.last_error,
            RETRY_CAP.total_seconds() // 60,
        )
    for member in merged:  # updates of the same message share its fate
        member.status = alert.status
        member.next_attempt_at = alert.next_attempt_at
        member.last_error = alert.last_error
    return Delivery(alert.id, "retry", f"retry in {wait.total_seconds():.0f}s: {alert.last_error}")
