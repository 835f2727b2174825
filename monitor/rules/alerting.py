"""Which alerts a case produces, and for whom (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from monitor.constants import AlertChannel, CaseState, Category, Role
from monitor.rules.routing import ESCALATION_ROLES, ROUTES
from monitor.rules.staff import StaffDirectory
from monitor.rules.visibility import ContentAccess as ContentAccess
from monitor.rules.visibility import dsl_stand_ins, may_see_content
from monitor.rules.visibility import dsls_in_post as dsls_in_post
from monitor.rules.visibility import restricted_access as restricted_access


class Audience(StrEnum):
    """How much of a case an alert may show."""

    FULL = "full"  # content, author and scores
    # no content: "escalated to the DSL" (safeguarding), or what was exposed in words
    # (personal data) in shared channels
    RESTRICTED_NOTE = "restricted_note"


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


def plan_case_alerts(
    directory: StaffDirectory,
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
        # safeguarding content never appears in a shared channel: it only sees that the DSL
        # has it; a personal-data case is described there in words (R6, R12); a media
        # enquiry shows only that one arrived and who holds it (R11)
        shared = may_see_content(
            directory, None, school_key=school_key, category=category, restricted=restricted
        )
        add(
            AlertChannel.SLACK,
            directory.channel_for(school_key, category),
            Audience.FULL
            if shared.allowed and not route.channel_note
            else Audience.RESTRICTED_NOTE,
        )
    for person in people:
        sight = may_see_content(
            directory, person, school_key=school_key, category=category, restricted=restricted
        )
        if not sight.allowed:
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


# State changes shown only by editing the case's Slack messages in place, with no thread reply
# (which would notify the thread): the policy closing a case that was already answered or
# judged not a concern. Nothing is left to do and nobody did anything new; the message itself
# still shows the case closed. A person's own change keeps its "by whom" note.
QUIET_POLICY_CHANGES: frozenset[tuple[CaseState, CaseState]] = frozenset(
    {
        (CaseState.RESPONDED, CaseState.CLOSED),
        (CaseState.DISMISSED, CaseState.CLOSED),
    }
)
POLICY_ACTOR = "policy"  # the actor the worker's housekeeping records


def state_change_is_quiet(before: CaseState, after: CaseState, *, actor: str) -> bool:
    """True when a state change edits the case's messages without a thread reply."""
    return actor == POLICY_ACTOR and (before, after) in QUIET_POLICY_CHANGES
