"""How undelivered alerts are retried and escalated, as data plus pure functions (time passed in).

Nothing is dropped: an alert is retried until it is delivered or a person cancels it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from monitor.constants import AlertChannel, AlertKind, Category, Role
from monitor.rules.alerting import dsls_in_post
from monitor.rules.routing import ROUTES, route_for
from monitor.rules.staff import StaffDirectory

# Retries back off from BASE_BACKOFF, doubling, but never wait longer than RETRY_CAP.
BASE_BACKOFF = timedelta(seconds=30)
RETRY_CAP = timedelta(minutes=15)
# An alert undelivered this long also goes by the other channel, and IT is told once.
FALLBACK_AFTER = timedelta(minutes=15)
# A safeguarding or threat case none of whose DSL or deputy alerts arrived within this time is
# told to the principal (content-free) by every channel that is configured.
DSL_UNREACHED_AFTER = timedelta(minutes=10)
DSL_UNREACHED_CATEGORIES: frozenset[Category] = frozenset({Category.SAFEGUARDING, Category.THREAT})
DSL_UNREACHED_ROLES: frozenset[Role] = frozenset({Role.PRINCIPAL})
# Who hears that a scheduled job keeps failing, and of a copied notice that had no case.
# (Who hears that alerts are stuck is the ``DELIVERY_FAILED`` route: ``undelivered_notice_roles``.)
IT_ROLES: frozenset[Role] = frozenset({Role.IT_ADMIN})
# Who may stop an undelivered alert being retried (``monitor alerts cancel``; audited).
ALERT_CANCEL_ROLES: frozenset[Role] = frozenset(
    {Role.IT_ADMIN, Role.SLT, Role.PRINCIPAL, Role.DSL, Role.DEPUTY_DSL}
)
# Kinds of the monitor's own notices about delivery: never escalated to IT about themselves.
UNDELIVERED_NOTICE = AlertKind.UNDELIVERED  # to IT: an alert is stuck
DSL_UNREACHED = AlertKind.DSL_UNREACHED  # to the principal: no DSL or deputy has it yet
# In-place updates of a Slack message (a state change, a re-assessment): their case's first
# message carries the latest state, so they have no copy by the other channel.
IN_PLACE_KINDS = (AlertKind.STATE.about(""), AlertKind.REASSESSED.value)


def backoff(attempts: int) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: doubling, capped at ``RETRY_CAP``."""
    if attempts <= 1:
        return BASE_BACKOFF
    # no huge powers of two: past the cap the answer is the cap
    doublings = min(attempts - 1, 20)
    wait: timedelta = BASE_BACKOFF * (2**doublings)
    return min(RETRY_CAP, wait)


def undelivered_notice_roles() -> frozenset[Role]:
    """Who is told that alerts are not being delivered: the ``DELIVERY_FAILED`` route's roles.

    The notice goes to each of them by one working channel (preferably not the failing one),
    content-free and at once, rather than as a post in the IT channel, which may be the
    very thing that is failing.
    """
    return route_for(Category.DELIVERY_FAILED).roles


def other_channel(channel: AlertChannel) -> AlertChannel:
    """Slack for email, email for Slack."""
    return AlertChannel.EMAIL if channel is AlertChannel.SLACK else AlertChannel.SLACK


def fallback_due(created_at: datetime, now: datetime) -> bool:
    """Whether an alert queued at ``created_at`` and still undelivered now goes the other way too."""
    return now - created_at >= FALLBACK_AFTER


def dsl_unreached_due(created_at: datetime, now: datetime) -> bool:
    """Whether a safeguarding or threat case alerted at ``created_at`` is overdue for a DSL."""
    return now - created_at >= DSL_UNREACHED_AFTER


@dataclass(frozen=True)
class Recipient:
    """One place a copy of an alert goes: a channel and an address there."""

    channel: AlertChannel
    target: str


def fallback_recipients(
    directory: StaffDirectory,
    *,
    channel: AlertChannel,
    target: str,
    kind: str,
    categories: frozenset[Category] | None,
    school_key: str | None,
) -> list[Recipient]:
    """The same recipients by the other channel.

    A Slack DM goes by email to that person, an email by Slack DM to its owner. A post in a
    Slack channel goes by email to the people the case's route tells (IT for a notice
    without a case). In-place updates of a Slack message have no copy (the first message
    shows the latest state), nor do the monitor's notices to the principal about a DSL.
    """
    if kind.startswith(IN_PLACE_KINDS):
        return []
    if channel is AlertChannel.EMAIL:
        wanted = target.lower()
        people = [p for p in directory.people if p.email and p.email.lower() == wanted]
        return _unique(
            Recipient(AlertChannel.SLACK, p.slack_user_id) for p in people if p.slack_user_id
        )
    if target.startswith(("U", "W")):
        person = directory.by_slack_id(target)
        if person is None or not person.email:
            return []
        return [Recipient(AlertChannel.EMAIL, person.email)]
    # a channel post: everyone the route sends there
    roles: set[Role] = set()
    for category in categories or ():
        roles |= ROUTES[category].roles
    if not roles:
        roles = set(IT_ROLES)
    return _unique(
        Recipient(AlertChannel.EMAIL, p.email)
        for p in directory.with_roles(roles, school_key)
        if p.email
    )


def dsl_targets(directory: StaffDirectory, school_key: str | None) -> set[str]:
    """Every Slack id and (lower-case) email address of the school's DSLs and deputies in post."""
    targets: set[str] = set()
    for person in dsls_in_post(directory, school_key):
        if person.slack_user_id:
            targets.add(person.slack_user_id)
        if person.email:
            targets.add(person.email.lower())
    return targets


def reached_a_dsl(
    sent_targets: set[str], directory: StaffDirectory, school_key: str | None
) -> bool:
    """Whether any alert delivered to ``sent_targets`` reached a DSL or deputy in post."""
    normalised = {t.lower() if "@" in t else t for t in sent_targets}
    return bool(normalised & dsl_targets(directory, school_key))


def reachable(
    directory: StaffDirectory,
    roles: frozenset[Role],
    school_key: str | None,
    configured: frozenset[AlertChannel],
    *,
    one_each: bool = False,
) -> list[Recipient]:
    """Everyone in post with ``roles``, by every configured channel they have an address on.

    ``one_each``: only by the first of Slack and email (a notice to IT: one message, whose
    copy by the other channel follows if it does not get through). With no channel
    configured at all, every address (the alerts wait for a channel).
    """
    channels = configured or frozenset(AlertChannel)
    found: list[Recipient] = []
    for person in directory.with_roles(roles, school_key):
        mine = []
        if AlertChannel.SLACK in channels and person.slack_user_id:
            mine.append(Recipient(AlertChannel.SLACK, person.slack_user_id))
        if AlertChannel.EMAIL in channels and person.email:
            mine.append(Recipient(AlertChannel.EMAIL, person.email))
        found += mine[:1] if one_each else mine
    return _unique(found)


def _unique(recipients: Iterable[Recipient]) -> list[Recipient]:
    return list(dict.fromkeys(recipients))
