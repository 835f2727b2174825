"""Which alerts a case produces, and for whom (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from monitor.constants import AlertChannel, Category, Role
from monitor.directory import Directory
from monitor.rules.routing import ESCALATION_ROLES, RESTRICTED_VIEWERS, ROUTES


class Audience(StrEnum):
    """How much of a case an alert may show."""

    FULL = "full"  # content, author and scores
    RESTRICTED_NOTE = (
        "restricted_note"  # only "escalated to the DSL" (safeguarding in shared channels)
    )


@dataclass(frozen=True)
class AlertPlan:
    """One alert to put in the outbox."""

    channel: AlertChannel
    target: str  # Slack channel, Slack user id (a DM) or email address
    audience: Audience
    urgent: bool

    def key(self, case_id: int, kind: str) -> str:
        """The idempotency key: one alert per case, kind and recipient."""
        return f"case:{case_id}:{kind}:{self.channel.value}:{self.target}"


def plan_case_alerts(
    directory: Directory,
    *,
    category: Category,
    categories: frozenset[Category],
    school_key: str | None,
    restricted: bool,
    urgent: bool,
    escalation: bool = False,
) -> list[AlertPlan]:
    """Alerts for a new (or escalated) case: channel post, DMs and emails as routing says."""
    plans: dict[tuple[AlertChannel, str], AlertPlan] = {}

    def add(channel: AlertChannel, target: str | None, audience: Audience) -> None:
        if target and (channel, target) not in plans:
            plans[(channel, target)] = AlertPlan(channel, target, audience, urgent or escalation)

    route = ROUTES[category]
    roles: set[Role] = set()
    direct: set[Role] = set()
    for each in categories | {category}:
        roles |= ROUTES[each].roles
        direct |= ROUTES[each].direct
    if escalation:
        roles |= ESCALATION_ROLES
    people = directory.with_roles(roles, school_key)
    if route.it_channel:
        add(
            AlertChannel.SLACK,
            directory.routing.slack_it_channel or directory.routing.slack_default_channel,
            Audience.FULL,
        )
    elif route.school_channel:
        # safeguarding content never appears in a shared channel: it only sees that the DSL has it
        add(
            AlertChannel.SLACK,
            directory.channel_for(school_key, category),
            Audience.RESTRICTED_NOTE if restricted else Audience.FULL,
        )
    for person in people:
        may_see = not restricted or bool(directory.effective_roles(person) & RESTRICTED_VIEWERS)
        if not may_see:
            continue
        if (
            urgent
            or escalation
            or not route.school_channel
            or route.it_channel
            or directory.effective_roles(person) & direct
        ):
            add(AlertChannel.SLACK, person.slack_user_id, Audience.FULL)
            add(AlertChannel.EMAIL, person.email, Audience.FULL)
    return list(plans.values())
