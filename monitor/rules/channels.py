"""Routes that need a channel that is not configured (``monitor check-config`` warnings; pure)."""

from __future__ import annotations

from dataclasses import dataclass

from monitor.config_models import Config, StaffMember
from monitor.constants import Category, Role
from monitor.rules.routing import ROUTES

R = Role
DSL_ROLES = frozenset({R.DSL, R.DEPUTY_DSL})
# What reaches people only as a post in a school's Slack channel (not urgent, nobody direct).
CHANNEL_ONLY: tuple[Category, ...] = tuple(
    category
    for category, route in ROUTES.items()
    if route.school_channel and not route.urgent and not route.direct
)


@dataclass(frozen=True)
class ChannelWarning:
    """One route that cannot be delivered as configured: where, and what happens."""

    field: str  # e.g. ``staff[1]`` or ``routing``
    message: str


def _active(member: StaffMember) -> bool:
    return member.active


def channel_warnings(config: Config, *, slack: bool, email: bool) -> list[ChannelWarning]:
    """Every route that needs a channel this configuration and these settings do not give.

    ``slack``: ``SLACK_BOT_TOKEN`` is set; ``email``: ``SMTP_HOST`` is set.
    """
    warnings: list[ChannelWarning] = []
    routing = config.routing
    only_slack = ", ".join(c.value for c in CHANNEL_ONLY)
    for index, member in enumerate(config.staff):
        if not _active(member):
            continue
        roles = set(member.roles)
        if roles & DSL_ROLES:
            reachable = (slack and member.slack_user_id) or (email and member.email)
            if not member.slack_user_id and not member.email:
                warnings.append(
                    ChannelWarning(
                        f"staff[{index}]",
                        f"{member.id} is a DSL or deputy DSL with neither a slack_user_id nor "
                        "an email: safeguarding alerts cannot reach them",
                    )
                )
            elif not reachable:
                missing = [
                    setting
                    for setting, needed in (
                        ("SLACK_BOT_TOKEN", member.slack_user_id),
                        ("SMTP_HOST", member.email),
                    )
                    if needed
                ]
                warnings.append(
                    ChannelWarning(
                        f"staff[{index}]",
                        f"{member.id} is a DSL or deputy DSL reachable only by a channel that is "
                        f"not configured (set {' or '.join(missing)}): their safeguarding "
                        "alerts wait",
                    )
                )
    channels = bool(
        routing.slack_default_channel
        or routing.slack_it_channel
        or any(s.default or s.by_category for s in routing.schools.values())
    )
    if not slack and channels:
        warnings.append(
            ChannelWarning(
                "routing",
                "Slack channels are routed but SLACK_BOT_TOKEN is not set: channel posts "
                f"({only_slack}) wait for Slack; people hear of them only by email, 15 minutes "
                "later, and only if SMTP_HOST is set",
            )
        )
    for school in config.schools:
        own = routing.schools.get(school.key)
        missing_for = [
            c.value
            for c in CHANNEL_ONLY
            if not (
                (own and (own.by_category.get(c) or own.default)) or routing.slack_default_channel
            )
        ]
        if missing_for:
            warnings.append(
                ChannelWarning(
                    "routing",
                    f"no Slack channel for {school.key}'s {', '.join(missing_for)} alerts "
                    "(routing.slack_default_channel or routing.schools): nobody is told of them",
                )
            )
    if not slack and not email:
        warnings.append(
            ChannelWarning(
                "routing",
                "neither SLACK_BOT_TOKEN nor SMTP_HOST is set: every alert waits until one is",
            )
        )
    it_staff = [m for m in config.staff if _active(m) and R.IT_ADMIN in m.roles]
    if not any((slack and m.slack_user_id) or (email and m.email) for m in it_staff):
        warnings.append(
            ChannelWarning(
                "staff",
                "no active it_admin reachable by a configured channel: nobody hears of "
                "alerts that cannot be delivered or of jobs that keep failing",
            )
        )
    return warnings
