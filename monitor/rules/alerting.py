"""Which alerts a case produces, and for whom (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from monitor.constants import AlertChannel, Category, Role
from monitor.directory import Directory, Person
from monitor.rules.routing import ESCALATION_ROLES, NO_DSL_STAND_INS, RESTRICTED_VIEWERS, ROUTES


class Audience(StrEnum):
    """How much of a case an alert may show."""

    FULL = "full"  # content, author and scores
    RESTRICTED_NOTE = (
        "restricted_note"  # only "escalated to the DSL" (safeguarding in shared channels)
    )


class ContentAccess(StrEnum):
    """Whether someone may see a restricted (safeguarding) case's content now, and why (R6)."""

    NONE = "none"
    DSL = "dsl"  # a DSL or deputy DSL in post
    STAND_IN = "stand_in"  # no DSL or deputy in post: told in their place (NO_DSL_STAND_INS)


@dataclass(frozen=True)
class AlertPlan:
    """One alert to put in the outbox."""

    channel: AlertChannel
    target: str  # Slack channel, Slack user id (a DM) or email address
    audience: Audience
    urgent: bool
    # R6: the recipient stands in for a DSL: none is in post, and the message says so
    no_dsl: bool = field(default=False, kw_only=True)

    def key(self, case_id: int, kind: str) -> str:
        """The idempotency key: one alert per case, kind and recipient."""
        return f"case:{case_id}:{kind}:{self.channel.value}:{self.target}"


def dsls_in_post(directory: Directory, school_key: str | None) -> list[Person]:
    """The school's DSLs and deputy DSLs in post (``routing.dsl`` honoured)."""
    return directory.with_roles(RESTRICTED_VIEWERS, school_key)


def dsl_stand_ins(directory: Directory, school_key: str | None) -> list[Person]:
    """Who hears of safeguarding in the DSL's place: nobody while a DSL or deputy is in post."""
    if dsls_in_post(directory, school_key):
        return []
    for roles in NO_DSL_STAND_INS:
        people = directory.with_roles(roles, school_key)
        if people:
            return people
    return []


def restricted_access(
    directory: Directory, person: Person, school_key: str | None
) -> ContentAccess:
    """Whether ``person`` may see the content of a restricted case of ``school_key`` now."""
    if not directory.in_post(person, school_key):
        return ContentAccess.NONE
    if directory.effective_roles(person) & RESTRICTED_VIEWERS:
        return ContentAccess.DSL
    if any(p.key == person.key for p in dsl_stand_ins(directory, school_key)):
        return ContentAccess.STAND_IN
    return ContentAccess.NONE


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

    def add(
        channel: AlertChannel, target: str | None, audience: Audience, *, no_dsl: bool = False
    ) -> None:
        if not target:
            return
        existing = plans.get((channel, target))
        if existing is None or (no_dsl and not existing.no_dsl):
            plans[(channel, target)] = AlertPlan(
                channel, target, audience, urgent or escalation, no_dsl=no_dsl
            )

    route = ROUTES[category]
    roles: set[Role] = set()
    direct: set[Role] = set()
    every = categories | {category}
    for each in every:
        roles |= ROUTES[each].roles
        direct |= ROUTES[each].direct
    if escalation:
        roles |= ESCALATION_ROLES
    people = directory.with_roles(roles, school_key)
    # R6: with no DSL or deputy in post, the DSL's line of escalation hears in their place
    stand_ins = (
        dsl_stand_ins(directory, school_key)
        if restricted or any(ROUTES[each].dsl_fallback for each in every)
        else []
    )
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
        may_see = (
            not restricted
            or bool(directory.effective_roles(person) & RESTRICTED_VIEWERS)
            or person in stand_ins
        )
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
    for person in stand_ins:
        # by DM and email, with the content, and told plainly that no DSL is in post
        add(AlertChannel.SLACK, person.slack_user_id, Audience.FULL, no_dsl=True)
        add(AlertChannel.EMAIL, person.email, Audience.FULL, no_dsl=True)
    return list(plans.values())
