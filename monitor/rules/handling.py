"""Handling abuse and threats (R5, R8): what handles a case, its targets and its clock (pure).

A reply that is abusive or threatening needs a person to act on it, not an answer. Hiding,
removing, or reporting and blocking it handles it: any response clock it carried (an abusive
reply that also asked something) stops, and it no longer counts as open. Until then it runs
on a handling clock from detection: a reminder, an escalation to SLT when nobody acted by the
first-action target, and a second one when removal was not sought by the removal target.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from monitor.constants import ActionKind, CaseState, Category, Platform

A = ActionKind
S = CaseState

# Cases that get a handling target from detection (R8).
HANDLING_CATEGORIES: frozenset[Category] = frozenset({Category.ABUSIVE, Category.THREAT})

# Platform actions that handle the content of a case once carried out. Blocking counts: where
# the platform cannot hide, report and block (or mute) is all the school can do.
HANDLING_ACTIONS: frozenset[ActionKind] = frozenset({A.HIDE, A.REMOVE, A.REPORT, A.BLOCK})

# States that show a person has looked at the case (its first action was taken).
ACTED_STATES: frozenset[CaseState] = frozenset(
    {S.ACKNOWLEDGED, S.ACTIONED, S.RESPONDED, S.DISMISSED, S.CLOSED}
)
# States in which nothing more is owed on the content (a person judged it, or it is done).
SETTLED_STATES: frozenset[CaseState] = frozenset({S.DISMISSED, S.CLOSED})


class DueCalendar(Protocol):
    """The working calendar (monitor.calendar.WorkingCalendar)."""

    @property
    def timezone(self) -> str: ...

    def is_working_day(self, day: date) -> bool: ...

    def end_of_working_day(self, day: date) -> datetime: ...

    def due_at(self, received: datetime, *, within: timedelta) -> datetime: ...

    def reminder_at(
        self, due: datetime, received: datetime, *, before: timedelta
    ) -> datetime | None: ...


@dataclass(frozen=True)
class HandlingTargets:
    """The configured handling targets (``handling_targets`` in the config)."""

    first_action_within: timedelta = timedelta(hours=2)  # counted in working hours only
    day_starts: time = time(8, 0)  # working hours: this local time to the calendar's end of day
    removal_within: timedelta = timedelta(hours=24)  # elapsed, from detection
    reminder_before: timedelta = timedelta(minutes=30)


@dataclass(frozen=True)
class HandlingClock:
    """When a case's first action and removal are due, and when to remind."""

    first_action_due: datetime
    remind_at: datetime | None
    removal_due: datetime

    def to_json(self) -> dict[str, str | None]:
        """As stored in a case's details."""
        return {
            "first_action_due": self.first_action_due.isoformat(),
            "remind_at": self.remind_at.isoformat() if self.remind_at else None,
            "removal_due": self.removal_due.isoformat(),
        }

    @classmethod
    def from_json(cls, value: Any) -> HandlingClock | None:
        """The clock stored in a case's details, or None."""
        if not isinstance(value, dict):
            return None
        try:
            remind = value.get("remind_at")
            return cls(
                datetime.fromisoformat(value["first_action_due"]),
                datetime.fromisoformat(remind) if isinstance(remind, str) else None,
                datetime.fromisoformat(value["removal_due"]),
            )
        except (KeyError, TypeError, ValueError):
            return None


def needs_handling(categories: Iterable[Category], *, addressed: bool) -> bool:
    """True for an abusive or threatening reply or comment on the school's own account."""
    return addressed and bool(HANDLING_CATEGORIES & frozenset(categories))


def working_hours_due(
    detected: datetime, *, within: timedelta, calendar: DueCalendar, day_starts: time
) -> datetime:
    """``within`` of working hours from ``detected`` (aware UTC).

    Working hours run from ``day_starts`` to the calendar's end of day on working days: an
    abusive comment found at 22:00 on a Friday is due two working hours after 08:00 on
    Monday (or the next working day after a bank holiday or closure), not at midnight.
    """
    if within <= timedelta(0):
        raise ValueError("within must be a positive duration")
    zone = ZoneInfo(calendar.timezone)
    cursor = detected.astimezone(UTC)
    day = cursor.astimezone(zone).date()
    left = within
    for _ in range(3660):  # ten years of days: a calendar closed for longer is a mistake
        if calendar.is_working_day(day):
            opens = datetime.combine(day, day_starts, tzinfo=zone).astimezone(UTC)
            closes = calendar.end_of_working_day(day)
            start = max(cursor, opens)
            if start < closes:
                if start + left <= closes:
                    return start + left
                left -= closes - start
        day += timedelta(days=1)
    raise ValueError("the working calendar has no working hours in the next ten years")


def handling_clock(
    *, detected: datetime, calendar: DueCalendar, targets: HandlingTargets
) -> HandlingClock:
    """The handling clock of a case detected at ``detected``."""
    first = working_hours_due(
        detected,
        within=targets.first_action_within,
        calendar=calendar,
        day_starts=targets.day_starts,
    )
    remind = calendar.reminder_at(first, detected, before=targets.reminder_before)
    return HandlingClock(first, remind, max(first, detected + targets.removal_within))


def handles(kind: ActionKind) -> bool:
    """True when carrying out ``kind`` handles the content of a case."""
    return kind in HANDLING_ACTIONS


def is_handled(*, state: CaseState, handled_at: datetime | None) -> bool:
    """True when nothing more is owed on the case's content."""
    return handled_at is not None or state in SETTLED_STATES


class HandlingStep(StrEnum):
    """What the handling clock asks for now."""

    NONE = "none"
    REMIND = "remind"
    FIRST_ACTION_MISSED = "first_action_missed"  # escalate to SLT: nobody acted
    REMOVAL_MISSED = "removal_missed"  # escalate to SLT: acted on, but removal not sought


def handling_step(
    clock: HandlingClock,
    *,
    state: CaseState,
    handled: bool,
    reminded: bool,
    first_missed: bool,
    removal_missed: bool,
    now: datetime,
) -> HandlingStep:
    """The next step of a handling clock; each step once, nothing once handled."""
    if handled or state in SETTLED_STATES:
        return HandlingStep.NONE
    acted = state in ACTED_STATES
    if now >= clock.first_action_due and not acted and not (first_missed or removal_missed):
        return HandlingStep.FIRST_ACTION_MISSED
    # one escalation per case: SLT already told that nobody acted hear nothing more of it
    if now >= clock.removal_due and acted and not (first_missed or removal_missed):
        return HandlingStep.REMOVAL_MISSED
    if (
        clock.remind_at is not None
        and clock.remind_at <= now < clock.first_action_due
        and not (reminded or acted)
    ):
        return HandlingStep.REMIND
    return HandlingStep.NONE


# Who can remove a reply the school cannot hide (R5, R8).
REMOVERS: dict[Platform, str] = {
    Platform.MASTODON: "the moderators of the author's Mastodon instance",
    Platform.REDDIT: "the moderators of the subreddit (or Reddit's own safety team)",
    Platform.BLUESKY: "Bluesky's moderation service",
}


def still_public_note(platform: Platform, *, reported: bool, blocked: bool) -> str:
    """In words: the reply is still public, what the school did, and who can remove it."""
    did = ("reported it" if reported else "could not report it") + (
        " and blocked the author" if blocked else ""
    )
    remover = REMOVERS.get(platform, "the platform's moderators")
    return (
        f"The reply is still public: {platform.value} does not let the school hide it. "
        f"We {did}; only {remover} can remove it. Nothing more is needed unless it gets worse."
    )


class StillPublicTold(StrEnum):
    """When the thread hears that a reply the school cannot hide is still public."""

    ON_ACTION = "on_action"  # with the outcome of the report and block that stood in for a hide
    ON_VERIFICATION = "on_verification"  # when the removal check finds it still visible


# Told once, as the report and block is carried out: the platform's answer ("cannot hide")
# already says the reply stays public, so the clicker learns at once why it was not hidden,
# and the removal check a day later, which finds what the note said, adds no second message.
# A case acted on before this rule (no note yet) is still told by its removal check.
STILL_PUBLIC_TOLD: StillPublicTold = StillPublicTold.ON_ACTION


def still_public_on_action(
    platform: Platform, result: Mapping[str, Any], *, told: StillPublicTold = STILL_PUBLIC_TOLD
) -> str | None:
    """The still-public note to give with a carried-out action's outcome, or None.

    ``result`` is the connector's result of the action: ``cannot_hide`` when report and block
    stood in for the hide, with ``reported``, ``block`` and ``mute`` saying what was done.
    """
    if told is not StillPublicTold.ON_ACTION or not result.get("cannot_hide"):
        return None
    return still_public_note(
        platform,
        reported=bool(result.get("reported")),
        blocked=bool(result.get("block") or result.get("mute")),
    )
