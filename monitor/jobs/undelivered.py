"""Alerts that are not getting through: copies by the other channel, IT told, the principal told.

Run at the start of every delivery pass, in one transaction. Who hears, and when, is
``monitor.rules.delivery``; this module only reads the outbox and queues what it says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from monitor.constants import OPEN_CASE_STATES, AlertChannel, AlertKind, AlertStatus, Category
from monitor.directory import Directory
from monitor.outbox import AlertPayload, enqueue
from monitor.rules.alerting import dsls_in_post
from monitor.rules.delivery import (
    DSL_UNREACHED,
    DSL_UNREACHED_AFTER,
    DSL_UNREACHED_CATEGORIES,
    DSL_UNREACHED_ROLES,
    FALLBACK_AFTER,
    UNDELIVERED_NOTICE,
    Recipient,
    dsl_unreached_due,
    fallback_due,
    fallback_recipients,
    reachable,
    reached_a_dsl,
    undelivered_notice_roles,
)
from monitor.storage import tables as t
from monitor.storage.queries.cases import school_key_of, school_of

LIVE = (AlertStatus.PENDING.value, AlertStatus.SENDING.value)
# the monitor's own notices: never the subject of another IT notice
NOTICE_KINDS = (UNDELIVERED_NOTICE, DSL_UNREACHED, AlertKind.DELIVERY_FAILED)
# cases opened longer ago than this are past the principal check (and not read every pass)
RECENT = timedelta(days=7)
LISTED = 20  # undelivered alerts listed one by one in the notice


def configured_channels(*, slack: object | None, email: object | None) -> frozenset[AlertChannel]:
    """The channels this process can deliver by."""
    return frozenset(
        channel
        for channel, sender in ((AlertChannel.SLACK, slack), (AlertChannel.EMAIL, email))
        if sender is not None
    )


@dataclass(frozen=True)
class Escalation:
    """What one pass queued."""

    copies: int = 0
    it_notices: int = 0
    principal_notices: int = 0


def escalate_undelivered(
    session: Session,
    directory: Directory,
    *,
    now: datetime,
    configured: frozenset[AlertChannel],
) -> Escalation:
    """Queue the copies and notices that alerts stuck since ``FALLBACK_AFTER`` (or a DSL's, since
    ``DSL_UNREACHED_AFTER``) call for. Idempotent: each alert is escalated once."""
    copies, stuck = _fallback_copies(session, directory, now=now, configured=configured)
    it_notices = _tell_it(session, directory, stuck, now=now, configured=configured)
    principal = _dsl_unreached(session, directory, now=now, configured=configured)
    return Escalation(copies, it_notices, principal)


def _fallback_copies(
    session: Session,
    directory: Directory,
    *,
    now: datetime,
    configured: frozenset[AlertChannel],
) -> tuple[int, list[t.Alert]]:
    """Each alert undelivered since ``FALLBACK_AFTER`` goes to the same people the other way."""
    tried_or_waiting = or_(
        t.Alert.attempts > 0,  # quiet hours defer without an attempt: that is not being stuck
        t.Alert.channel.not_in([c.value for c in configured]),
    )
    candidates = session.scalars(
        select(t.Alert)
        .where(
            t.Alert.status.in_(LIVE),
            t.Alert.escalated_at.is_(None),
            t.Alert.created_at <= now - FALLBACK_AFTER,
            tried_or_waiting,
        )
        .order_by(t.Alert.id)
    ).all()
    added = 0
    stuck: list[t.Alert] = []
    for alert in candidates:
        if not fallback_due(alert.created_at, now):
            continue
        alert.escalated_at = now
        stuck.append(alert)
        if alert.payload.get("fallback_of") is not None:
            continue  # a copy is not copied again
        case = session.get(t.Case, alert.case_id) if alert.case_id else None
        school_key = school_key_of(session, case)
        for recipient in fallback_recipients(
            directory,
            channel=AlertChannel(alert.channel),
            target=alert.target,
            kind=alert.kind,
            categories=_categories(case),
            school_key=school_key,
        ):
            if recipient.channel not in configured:
                continue  # a copy waiting for a channel would only arrive after the original
            if case is not None and _already_queued(session, alert, recipient):
                continue  # they have (or will have) this very alert by that channel anyway
            added += enqueue(
                session,
                key=f"fallback:{alert.id}:{recipient.channel.value}:{recipient.target}"[:200],
                channel=recipient.channel,
                target=recipient.target,
                kind=alert.kind,
                now=now,
                case_id=alert.case_id,
                urgent=alert.urgent,
                payload=cast(AlertPayload, {**(alert.payload or {}), "fallback_of": alert.id}),
            )
    return added, stuck


def _tell_it(
    session: Session,
    directory: Directory,
    stuck: Sequence[t.Alert],
    *,
    now: datetime,
    configured: frozenset[AlertChannel],
) -> int:
    """One notice to IT for the alerts that became stuck in this pass (content-free).

    Once per outage: while alerts IT was told of are still stuck on a channel, more stuck
    on it are not told again (``monitor alerts list`` shows them all).
    """
    ongoing = set(
        session.scalars(
            select(t.Alert.channel)
            .where(
                t.Alert.status.in_(LIVE),
                t.Alert.escalated_at < now,
                t.Alert.kind.not_in(NOTICE_KINDS),
            )
            .distinct()
        )
    )
    about = [a for a in stuck if a.kind not in NOTICE_KINDS and a.channel not in ongoing]
    if not about:
        return 0
    failing = {AlertChannel(a.channel) for a in about}
    # by whatever works: preferably not the channel that is failing
    working = (configured - failing) or configured
    minutes = int(FALLBACK_AFTER.total_seconds() // 60)
    lines = [
        f"{len(about)} alert(s) not delivered after {minutes} minutes; each is retried until it "
        "is delivered, and a copy went by the other channel where the recipient has one:",
        *(
            f"- alert {a.id}: {a.channel} to {a.target}, case {a.case_id or '-'}, "
            f"{a.attempts} attempt(s): {a.last_error or 'not attempted yet'}"
            for a in about[:LISTED]
        ),
        *([f"- and {len(about) - LISTED} more"] if len(about) > LISTED else []),
        "Check the monitor's Slack and SMTP settings. `monitor alerts list` shows every "
        "undelivered alert; `monitor alerts cancel ID --as STAFF --reason TEXT` stops one.",
    ]
    text = "\n".join(lines)
    added = 0
    for recipient in reachable(directory, undelivered_notice_roles(), None, working, one_each=True):
        added += enqueue(
            session,
            key=f"{UNDELIVERED_NOTICE}:{about[0].id}:{recipient.channel.value}:{recipient.target}",
            channel=recipient.channel,
            target=recipient.target,
            kind=UNDELIVERED_NOTICE,
            now=now,
            urgent=True,
            payload={
                "notice": True,
                "subject": "Monitor: alerts are not being delivered",
                "text": text,
                "alerts": [a.id for a in about],
            },
        )
    return added


def _dsl_unreached(
    session: Session,
    directory: Directory,
    *,
    now: datetime,
    configured: frozenset[AlertChannel],
) -> int:
    """Safeguarding and threat cases no DSL or deputy has received: the principal is told."""
    cases = session.scalars(
        select(t.Case)
        .where(
            or_(
                t.Case.category.in_([c.value for c in DSL_UNREACHED_CATEGORIES]),
                t.Case.restricted.is_(True),
            ),
            t.Case.state.in_([s.value for s in OPEN_CASE_STATES]),
            t.Case.opened_at <= now - DSL_UNREACHED_AFTER,
            t.Case.opened_at >= now - RECENT,
        )
        .order_by(t.Case.id)
    ).all()
    if not cases:
        return 0
    ids = [c.id for c in cases]
    first_alert = dict(
        session.execute(
            select(t.Alert.case_id, func.min(t.Alert.created_at))
            .where(t.Alert.case_id.in_(ids))
            .group_by(t.Alert.case_id)
        ).all()
    )
    sent: dict[int, set[str]] = {}
    for case_id, target in session.execute(
        select(t.Alert.case_id, t.Alert.target).where(
            t.Alert.case_id.in_(ids), t.Alert.status == AlertStatus.SENT.value
        )
    ):
        if case_id is not None:
            sent.setdefault(case_id, set()).add(target)
    told = {
        key.split(":")[1]
        for key in session.scalars(
            select(t.Alert.idempotency_key).where(
                t.Alert.kind == DSL_UNREACHED, t.Alert.created_at >= now - RECENT
            )
        )
    }
    added = 0
    for case in cases:
        created = first_alert.get(case.id)
        if created is None or str(case.id) in told or not dsl_unreached_due(created, now):
            continue
        school_key = school_key_of(session, case)
        if not dsls_in_post(directory, school_key):
            continue  # R6: the stand-ins (the principal first) were told in their place
        if reached_a_dsl(sent.get(case.id, set()), directory, school_key):
            continue
        added += _tell_principal(session, directory, case, school_key, now, configured=configured)
    return added


def _tell_principal(
    session: Session,
    directory: Directory,
    case: t.Case,
    school_key: str | None,
    now: datetime,
    *,
    configured: frozenset[AlertChannel],
) -> int:
    school = school_of(session, case)
    minutes = int(DSL_UNREACHED_AFTER.total_seconds() // 60)
    what = "safeguarding concern" if case.restricted else f"{case.category.replace('_', ' ')} case"
    text = (
        f"Case {case.id}, a {what} at {school.name if school else 'the trust'}, has not reached "
        f"any DSL or deputy DSL after {minutes} minutes: the alerts are still being retried. "
        "Please make sure a DSL sees it now. Its details are visible to the safeguarding team "
        f"in the monitor: monitor case {case.id} --as YOUR_STAFF_ID"
    )
    recipients: list[Recipient] = reachable(directory, DSL_UNREACHED_ROLES, school_key, configured)
    added = 0
    for recipient in recipients:
        added += enqueue(
            session,
            key=f"{DSL_UNREACHED}:{case.id}:{recipient.channel.value}:{recipient.target}",
            channel=recipient.channel,
            target=recipient.target,
            kind=DSL_UNREACHED,
            now=now,
            urgent=True,
            payload={
                "notice": True,
                "case": case.id,
                "subject": f"Urgent: case {case.id} has not reached the DSL",
                "text": text,
            },
        )
    return added


def _already_queued(session: Session, alert: t.Alert, recipient: Recipient) -> bool:
    found = session.scalar(
        select(t.Alert.id)
        .where(
            t.Alert.case_id == alert.case_id,
            t.Alert.kind == alert.kind,
            t.Alert.channel == recipient.channel.value,
            func.lower(t.Alert.target) == recipient.target.lower(),
        )
        .limit(1)
    )
    return found is not None


def _categories(case: t.Case | None) -> frozenset[Category] | None:
    if case is None:
        return None
    details: dict[str, Any] = case.details or {}
    return frozenset(Category(c) for c in details.get("categories", [case.category]))
