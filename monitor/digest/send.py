"""Sending the weekly digest once per week and scope, caught up after downtime.

The ``digest_runs`` row for (week, scope) is the once-only guard. A run claims the row
(inserting it as ``sending``, or taking over a ``failed`` row, or a ``sending`` row whose
lease ran out after a crash), then sends one email per recipient, committing each
recipient's progress before and after the SMTP transaction. Delivery guarantees:

- Downtime at the scheduled time: nothing was started, so the next run (any time before
  the following week's digest is due) sends that week's digest late, exactly once.
  Only the most recent due week is sent, never a backlog of missed weeks.
- Two runs at once: the unique (week, scope) row and compare-and-set updates let only one
  of them send.
- A crash in the middle of sending: recipients already marked sent are never sent again.
  The recipient whose SMTP transaction was in flight cannot be known to have received it;
  they are recorded as ``uncertain`` and NOT sent again (at most once: the requirement is
  "never twice"). The run's row lists them so IT can forward the digest by hand. Everyone
  not yet reached is sent to when the lease runs out (``STUCK_AFTER``).
- An SMTP refusal (DeliveryError) is a definite "not delivered": temporary ones are retried
  on a later run (after ``RETRY_AFTER``), permanent ones are recorded and not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.clock import require_aware
from monitor.config_models import Config, Digest
from monitor.digest.figures import TRUST, compute, monitoring_since
from monitor.digest.render import RenderedDigest, render
from monitor.digest.weeks import monday_of, shift, week_bounds, week_containing
from monitor.directory import Directory, load_directory
from monitor.notify.errors import DeliveryError
from monitor.rules.digest import (
    DIGEST_ROLES,
    digest_due,
    digest_scopes,
    reader_scopes,
    readers_required,
)
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.repo import insert_statement
from monitor.web.links import base_url, digest_url

log = logging.getLogger(__name__)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# A 'sending' row untouched for this long belongs to a process that died.
STUCK_AFTER = timedelta(minutes=30)
# A run that hit temporary SMTP failures is tried again after this long.
RETRY_AFTER = timedelta(minutes=10)


class Status:
    """``digest_runs.status`` values."""

    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"  # temporary failures: retried after RETRY_AFTER
    UNDELIVERABLE = "undeliverable"  # every recipient refused permanently
    NO_RECIPIENTS = "no_recipients"  # retried once somebody qualifies


class EmailSending(Protocol):
    """What the digest needs of ``monitor.notify.email.EmailSender``."""

    def send(
        self,
        to: Sequence[str],
        subject: str,
        text: str,
        html: str | None = None,
        inline_images: Mapping[str, bytes] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> str: ...


@dataclass(frozen=True)
class DigestRun:
    """What one call did for one (week, scope)."""

    week: str
    scope: str  # "trust" or "school:<key>"
    # sent | already_sent | in_progress | waiting | failed | undeliverable | no_recipients
    # | not_monitored (the week ended before the scope's first successful poll: no digest)
    # | no_readers (the trust's digest while every leader reads their own school's)
    outcome: str
    recipients: tuple[str, ...] = ()
    sent_to: tuple[str, ...] = ()  # in this call
    failed: Mapping[str, str] = field(default_factory=dict)
    uncertain: tuple[str, ...] = ()


# ------------------------------------------------------------- schedule


def scheduled_at(week: str, weekday: str, at: time, timezone: str) -> datetime:
    """When the digest for ``week`` is due: ``weekday`` at ``at`` of the FOLLOWING week.

    A local time that does not exist (clocks forward) falls an hour later; an ambiguous one
    (clocks back) is its first occurrence.
    """
    day = monday_of(shift(week, 1)) + timedelta(days=WEEKDAYS.index(weekday))
    return datetime.combine(day, at, tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def due_week(
    now: datetime,
    weekday: str,
    at: time,
    timezone: str,
    *,
    max_late: timedelta | None = None,
) -> str | None:
    """The week whose digest is due at ``now``: the latest week whose send time has passed.

    That is the week just ended once this week's ``weekday``/``at`` has passed, else the one
    before (its send time was last week: a late catch-up). None when that send time is more
    than ``max_late`` ago (no limit by default).
    """
    now = require_aware(now)
    this_week = week_containing(now, timezone)
    # compare instants, not wall-clock readings (they repeat when the clocks go back)
    for candidate in (shift(this_week, -1), shift(this_week, -2)):
        moment = scheduled_at(candidate, weekday, at, timezone)
        if moment <= now:
            if max_late is not None and now - moment > max_late:
                return None
            return candidate
    raise AssertionError("unreachable: the week before last is always due")


# ------------------------------------------------------------- recipients


def scopes_for(config: Config) -> list[str]:
    """Trust first, then each school when ``digest.per_school`` (``rules.digest``)."""
    return digest_scopes(
        [school.key for school in config.schools], per_school=config.digest.per_school
    )


def school_of(scope: str) -> str | None:
    """The school key of a scope ("school:oak" -> "oak"; "trust" -> None)."""
    if scope == TRUST:
        return None
    prefix, _, key = scope.partition(":")
    if prefix != "school" or not key:
        raise ValueError(f"not a digest scope: {scope!r} (use 'trust' or 'school:<key>')")
    return key


def recipients_for(
    directory: Directory, digest: Digest, scope: str, scopes: Collection[str]
) -> list[str]:
    """Email addresses for ``scope``, one of the week's ``scopes``.

    ``digest.recipients``, else SLT and principals in post, who serve the scope's school;
    of those, the ones ``rules.digest.reader_scopes`` gives this scope (a head their own
    school's digest, trust leaders the trust's).
    """
    school_key = school_of(scope)
    if digest.recipients:
        people = [directory.person(key) for key in digest.recipients]
        chosen = [
            p
            for p in people
            if p is not None and directory.in_post(p, school_key) and p.serves(school_key)
        ]
    else:
        chosen = directory.with_roles(DIGEST_ROLES, school_key)
    seen: dict[str, str] = {}
    for person in chosen:
        if scope not in reader_scopes(person.schools, scopes):
            continue
        if person.email:
            seen.setdefault(person.email.lower(), person.email)
    return sorted(seen.values(), key=str.lower)


# ------------------------------------------------------------- the once-only guard


@dataclass
class _Claim:
    row_id: int
    recipients: list[str]
    delivery: dict[str, Any]


def _delivery(row: t.DigestRun) -> dict[str, Any]:
    stored = row.figures.get("delivery") if isinstance(row.figures, dict) else None
    state = dict(stored) if isinstance(stored, dict) else {}
    state.setdefault("sent", [])
    state.setdefault("failed", {})
    state.setdefault("uncertain", [])
    state.setdefault("attempting", None)
    state.setdefault("attempts", 0)
    return state


def _claim_new(
    session: Session, *, week: str, scope: str, recipients: list[str], now: datetime
) -> _Claim | DigestRun:
    """Insert the (week, scope) row, unless another run got there first."""
    status = Status.SENDING if recipients else Status.NO_RECIPIENTS
    delivery: dict[str, Any] = {
        "sent": [],
        "failed": {},
        "uncertain": [],
        "attempting": None,
        "attempts": 1 if recipients else 0,
        "first_started_at": now.isoformat(),
    }
    row_id = session.scalars(
        insert_statement(session, t.DigestRun)
        .values(
            week=week,
            scope=scope,
            status=status,
            started_at=now,
            sent_at=None,
            recipients=recipients,
            figures={"delivery": delivery},
        )
        .on_conflict_do_nothing(index_elements=["week", "scope"])
        .returning(t.DigestRun.id)
    ).one_or_none()
    if row_id is None:
        return DigestRun(week, scope, "in_progress")  # another run got there first
    if not recipients:
        return DigestRun(week, scope, "no_recipients")
    return _Claim(row_id, recipients, delivery)


def _claim(
    sessions: sessionmaker[Session],
    *,
    week: str,
    scope: str,
    recipients: list[str],
    now: datetime,
) -> _Claim | DigestRun:
    """Own the (week, scope) row for sending, or say why not."""
    with transaction(sessions) as session:
        row = session.scalars(
            select(t.DigestRun).where(t.DigestRun.week == week, t.DigestRun.scope == scope)
        ).one_or_none()
        if row is None:
            return _claim_new(session, week=week, scope=scope, recipients=recipients, now=now)
        if row.status in (Status.SENT, Status.UNDELIVERABLE):
            return DigestRun(week, scope, "already_sent", recipients=tuple(row.recipients))
        delivery = _delivery(row)
        planned = list(row.recipients)
        if row.status == Status.SENDING:
            if now - row.started_at < STUCK_AFTER:
                return DigestRun(week, scope, "in_progress", recipients=tuple(planned))
            # the sender died; whoever it was sending to may have the digest already
            if delivery["attempting"]:
                delivery["uncertain"] = [*delivery["uncertain"], delivery["attempting"]]
                delivery["attempting"] = None
                log.warning(
                    "Digest %s %s: a crash interrupted a delivery; it is not repeated",
                    week,
                    scope,
                )
        elif now - row.started_at < RETRY_AFTER:
            return DigestRun(week, scope, "waiting", recipients=tuple(planned))
        if row.status == Status.NO_RECIPIENTS:
            if not recipients:
                return DigestRun(week, scope, "no_recipients")
            planned = recipients
        # temporary failures get another go; permanent ones stay recorded
        delivery["failed"] = {
            addr: why for addr, why in delivery["failed"].items() if why.get("permanent")
        }
        delivery["attempts"] = int(delivery["attempts"]) + 1
        taken = session.scalars(
            update(t.DigestRun)
            .where(
                t.DigestRun.id == row.id,
                t.DigestRun.status == row.status,
                t.DigestRun.started_at == row.started_at,
            )
            .values(
                status=Status.SENDING,
                started_at=now,
                recipients=planned,
                figures={**row.figures, "delivery": delivery},
            )
            .returning(t.DigestRun.id)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if taken is None:
            return DigestRun(week, scope, "in_progress", recipients=tuple(planned))
        return _Claim(row.id, planned, delivery)


def _save(
    sessions: sessionmaker[Session],
    claim: _Claim,
    now: datetime,
    *,
    status: str = Status.SENDING,
    figures: dict[str, Any] | None = None,
) -> None:
    """Commit progress (and renew the lease: ``started_at`` is the last sign of life)."""
    with transaction(sessions) as session:
        row = session.get(t.DigestRun, claim.row_id)
        assert row is not None
        document = dict(figures) if figures is not None else dict(row.figures)
        document["delivery"] = dict(claim.delivery)
        row.figures = document
        row.status = status
        row.started_at = now
        if status == Status.SENT:
            row.sent_at = now


# ------------------------------------------------------------- sending


def _render_scope(
    sessions: sessionmaker[Session], config: Config, *, week: str, scope: str, now: datetime
) -> tuple[RenderedDigest, dict[str, Any]]:
    with sessions() as session:
        figures = compute(
            session,
            week=week,
            scope=school_of(scope) or TRUST,
            now=now,
            timezone=config.organisation.timezone,
        )
    rendered = render(
        figures,
        organisation=config.organisation.name,
        dashboard_url=digest_url(base_url(config), week=week, school=school_of(scope))
        or config.organisation.dashboard_url,
        case_base=base_url(config),
    )
    return rendered, figures.to_json()


def _send_scope(
    sessions: sessionmaker[Session],
    config: Config,
    sender: EmailSending,
    claim: _Claim,
    *,
    week: str,
    scope: str,
    now: datetime,
) -> DigestRun:
    delivery = claim.delivery
    try:
        rendered, figures = _render_scope(sessions, config, week=week, scope=scope, now=now)
    except Exception as exc:
        # a bug or a database error: leave a trace and let a later run try again
        log.exception("Digest %s %s could not be prepared", week, scope)
        delivery["last_error"] = f"{type(exc).__name__}: {exc}"[:500]
        _save(sessions, claim, now, status=Status.FAILED)
        return DigestRun(week, scope, "failed", recipients=tuple(claim.recipients))
    done = set(delivery["sent"]) | set(delivery["uncertain"]) | set(delivery["failed"])
    sent_now: list[str] = []
    failed_now: dict[str, str] = {}
    first = True
    for address in claim.recipients:
        if address in done:
            continue
        delivery["attempting"] = address
        _save(sessions, claim, now, figures=figures if first else None)
        first = False
        try:
            sender.send(
                [address],
                rendered.subject,
                rendered.text,
                rendered.html,
                rendered.images,
                # one Message-ID per week, scope and recipient, whoever sends it
                idempotency_key=f"digest:{week}:{scope}:{address.lower()}",
            )
        except DeliveryError as exc:
            delivery["failed"] = {
                **delivery["failed"],
                address: {"error": exc.message[:300], "permanent": exc.permanent},
            }
            failed_now[address] = exc.message
        else:
            delivery["sent"] = [*delivery["sent"], address]
            sent_now.append(address)
        delivery["attempting"] = None
        _save(sessions, claim, now)
    temporary = [a for a, why in delivery["failed"].items() if not why.get("permanent")]
    if temporary:
        status, outcome = Status.FAILED, "failed"
    elif delivery["sent"] or delivery["uncertain"]:
        status, outcome = Status.SENT, "sent"
    else:
        status, outcome = Status.UNDELIVERABLE, "undeliverable"
    _save(sessions, claim, now, status=status, figures=figures if first else None)
    log.info(
        "Digest %s %s: %s (%d sent now, %d failed, %d uncertain)",
        week,
        scope,
        outcome,
        len(sent_now),
        len(failed_now),
        len(delivery["uncertain"]),
    )
    return DigestRun(
        week,
        scope,
        outcome,
        recipients=tuple(claim.recipients),
        sent_to=tuple(sent_now),
        failed=failed_now,
        uncertain=tuple(delivery["uncertain"]),
    )


def send_weekly(
    sessions: sessionmaker[Session],
    config: Config,
    sender: EmailSending,
    *,
    now: datetime,
    week: str | None = None,
    scopes: Collection[str] | None = None,
) -> list[DigestRun]:
    """Send the due week's digest (or ``week``'s) to each scope that has not had it yet.

    Safe to call as often as you like (every few minutes, and at start-up): once a scope's
    digest is sent, a call costs a staff lookup and two indexed lookups per scope. A week
    that ended before the scope's first successful poll gets no digest (``not_monitored``).
    """
    now = require_aware(now)
    digest = config.digest
    if week is None:
        week = due_week(now, digest.weekday, digest.time, config.organisation.timezone)
        if week is None:
            return []
    monday_of(week)  # a clear ValueError for a malformed week
    wanted = scopes_for(config) if scopes is None else list(scopes)
    with sessions() as session:
        directory = load_directory(
            session, config.routing, now=now, timezone=config.organisation.timezone
        )
        every = [*scopes_for(config), *(s for s in wanted if s not in scopes_for(config))]
        plans = {scope: recipients_for(directory, digest, scope, every) for scope in wanted}
        began = {scope: monitoring_since(session, school_of(scope) or TRUST) for scope in wanted}
    week_end = week_bounds(week, config.organisation.timezone)[1]
    runs = []
    for scope in wanted:
        if not digest_due(began[scope], week_end):
            # nothing was watched that week: a digest would claim a quiet week that was unseen
            runs.append(DigestRun(week, scope, "not_monitored", recipients=tuple(plans[scope])))
            continue
        if not plans[scope] and not readers_required(scope, every):
            runs.append(DigestRun(week, scope, "no_readers"))
            continue
        claim = _claim(sessions, week=week, scope=scope, recipients=plans[scope], now=now)
        if isinstance(claim, DigestRun):
            runs.append(claim)
            continue
        runs.append(_send_scope(sessions, config, sender, claim, week=week, scope=scope, now=now))
    return runs
