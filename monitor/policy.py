"""The configured policy in the shapes the rules engine takes."""

from __future__ import annotations

from datetime import timedelta

from monitor.calendar import WorkingCalendar
from monitor.config_models import Config
from monitor.rules.engine import ItemPolicy
from monitor.rules.handling import HandlingTargets


def item_policy(config: Config, school_key: str) -> ItemPolicy:
    """The policy for items of one school (its timezone, the trust's targets).

    A school no longer configured (archived) keeps the trust's timezone: its stored items
    are still assessed, with the trust-wide rules.
    """
    targets = config.response_targets
    if config.has_school(school_key):
        timezone = config.timezone_of(school_key)
    else:
        timezone = config.organisation.timezone
    auto = config.classifier.auto_hide
    handling = config.handling_targets
    return ItemPolicy(
        calendar=WorkingCalendar.from_targets(targets, timezone),
        within=timedelta(seconds=targets.within),
        reminder_before=timedelta(seconds=targets.reminder_before),
        auto_hide_enabled=auto.enabled,
        auto_hide_dry_run=auto.dry_run,
        auto_hide_thresholds=dict(auto.thresholds),
        handling=HandlingTargets(
            first_action_within=timedelta(seconds=handling.first_action_within),
            removal_within=timedelta(seconds=handling.removal_within),
            reminder_before=timedelta(seconds=handling.reminder_before),
        ),
    )
