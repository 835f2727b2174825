"""R5, R8: handling targets for abuse and threats, as table rows."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from monitor.calendar import WorkingCalendar
from monitor.constants import ActionKind, CaseState, Category, Platform
from monitor.rules.handling import (
    STILL_PUBLIC_TOLD,
    HandlingClock,
    HandlingStep,
    HandlingTargets,
    StillPublicTold,
    handles,
    handling_clock,
    handling_step,
    is_handled,
    needs_handling,
    still_public_note,
    still_public_on_action,
)

MONDAY = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)
CAL = WorkingCalendar()


@pytest.mark.parametrize(
    ("categories", "addressed", "expected"),
    [
        ({Category.ABUSIVE}, True, True),
        ({Category.THREAT}, True, True),
        ({Category.ABUSIVE, Category.NEEDS_RESPONSE}, True, True),
        ({Category.NEEDS_RESPONSE}, True, False),
        ({Category.SAFEGUARDING}, True, False),
        ({Category.ABUSIVE}, False, False),  # a public mention: not the school's to hide
    ],
)
def test_which_cases_get_a_handling_target(
    categories: set[Category], addressed: bool, expected: bool
) -> None:
    assert needs_handling(categories, addressed=addressed) is expected


@pytest.mark.parametrize(
    ("detected", "first", "remind", "removal"),
    [
        # a working day: two hours of working time, reminded half an hour before
        (
            MONDAY,
            MONDAY + timedelta(hours=2),
            MONDAY + timedelta(minutes=90),
            MONDAY + timedelta(hours=24),
        ),
        # a Saturday: two working hours from Monday 08:00, removal sought no earlier than that
        (
            SATURDAY,
            datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
            datetime(2026, 11, 30, 9, 30, tzinfo=UTC),
            datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
        ),
    ],
)
def test_the_default_handling_clock(
    detected: datetime, first: datetime, remind: datetime, removal: datetime
) -> None:
    clock = handling_clock(detected=detected, calendar=CAL, targets=HandlingTargets())
    assert (clock.first_action_due, clock.remind_at, clock.removal_due) == (first, remind, removal)
    assert HandlingClock.from_json(clock.to_json()) == clock


def london(year: int, month: int, day: int, hour: int, minute: int) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("Europe/London"))


@pytest.mark.parametrize(
    ("detected", "due"),
    [
        # inside working hours: two hours of elapsed time
        (london(2026, 11, 24, 10, 0), london(2026, 11, 24, 12, 0)),
        # late afternoon: what is left of the day, then the rest from 08:00 the next day
        (london(2026, 11, 24, 16, 0), london(2026, 11, 25, 9, 0)),
        (london(2026, 11, 24, 17, 0), london(2026, 11, 25, 10, 0)),
        # an evening or the early morning: two working hours from 08:00
        (london(2026, 11, 24, 19, 30), london(2026, 11, 25, 10, 0)),
        (london(2026, 11, 25, 2, 0), london(2026, 11, 25, 10, 0)),
        (london(2026, 11, 25, 7, 59), london(2026, 11, 25, 10, 0)),
        # Friday evening and the weekend: Monday morning
        (london(2026, 11, 27, 18, 0), london(2026, 11, 30, 10, 0)),
        (london(2026, 11, 29, 23, 0), london(2026, 11, 30, 10, 0)),
        # a bank holiday (Christmas, Boxing Day on a Saturday: substitute Monday 28th)
        (london(2026, 12, 24, 16, 30), london(2026, 12, 29, 9, 30)),
        (london(2026, 12, 25, 9, 0), london(2026, 12, 29, 10, 0)),
        # summer time: 08:00 local is 07:00 UTC
        (london(2026, 6, 5, 20, 0), london(2026, 6, 8, 10, 0)),
    ],
)
def test_first_action_is_due_in_working_hours(detected: datetime, due: datetime) -> None:
    clock = handling_clock(detected=detected, calendar=CAL, targets=HandlingTargets())
    assert clock.first_action_due == due
    assert clock.first_action_due.tzinfo is not None


def test_working_hours_start_is_configurable() -> None:
    targets = HandlingTargets(day_starts=time(9, 0))
    clock = handling_clock(detected=london(2026, 11, 24, 20, 0), calendar=CAL, targets=targets)
    assert clock.first_action_due == london(2026, 11, 25, 11, 0)


CLOCK = HandlingClock(
    MONDAY + timedelta(hours=2), MONDAY + timedelta(minutes=90), MONDAY + timedelta(hours=24)
)
S = CaseState
H = HandlingStep


@pytest.mark.parametrize(
    ("state", "handled", "reminded", "first_missed", "removal_missed", "after", "step"),
    [
        (S.NEW, False, False, False, False, timedelta(minutes=60), H.NONE),
        (S.NEW, False, False, False, False, timedelta(minutes=90), H.REMIND),
        (S.NEW, False, True, False, False, timedelta(minutes=100), H.NONE),
        (S.ACKNOWLEDGED, False, False, False, False, timedelta(minutes=90), H.NONE),
        (S.NEW, False, True, False, False, timedelta(hours=2), H.FIRST_ACTION_MISSED),
        (S.ESCALATED, False, True, True, False, timedelta(hours=3), H.NONE),
        (S.ACKNOWLEDGED, False, False, False, False, timedelta(hours=3), H.NONE),
        # acknowledged but never hidden, removed or reported: removal not sought
        (S.ACKNOWLEDGED, False, False, False, False, timedelta(hours=24), H.REMOVAL_MISSED),
        # SLT already told nobody acted: not told again (one escalation per case)
        (S.ESCALATED, False, True, True, False, timedelta(hours=24), H.NONE),
        (S.ESCALATED, False, True, True, True, timedelta(days=9), H.NONE),
        # both targets passed at once (found in a holiday): nobody acted is what SLT hear
        (S.NEW, False, False, False, False, timedelta(hours=24), H.FIRST_ACTION_MISSED),
        # handled (hidden, removed, reported and blocked) or judged: nothing, ever
        (S.ACTIONED, True, False, False, False, timedelta(hours=24), H.NONE),
        (S.NEW, True, False, False, False, timedelta(hours=2), H.NONE),
        (S.DISMISSED, False, False, False, False, timedelta(hours=24), H.NONE),
        (S.CLOSED, False, False, False, False, timedelta(hours=24), H.NONE),
    ],
)
def test_handling_steps(
    state: CaseState,
    handled: bool,
    reminded: bool,
    first_missed: bool,
    removal_missed: bool,
    after: timedelta,
    step: HandlingStep,
) -> None:
    got = handling_step(
        CLOCK,
        state=state,
        handled=handled,
        reminded=reminded,
        first_missed=first_missed,
        removal_missed=removal_missed,
        now=MONDAY + after,
    )
    assert got is step


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (ActionKind.HIDE, True),
        (ActionKind.REMOVE, True),
        (ActionKind.REPORT, True),
        (ActionKind.BLOCK, True),
        (ActionKind.MUTE, False),
        (ActionKind.ACKNOWLEDGE, False),
        (ActionKind.UNHIDE, False),
        (ActionKind.REPLY, False),
    ],
)
def test_what_handles_a_case(kind: ActionKind, expected: bool) -> None:
    assert handles(kind) is expected


def test_a_judged_case_is_handled() -> None:
    assert is_handled(state=S.DISMISSED, handled_at=None)
    assert not is_handled(state=S.ESCALATED, handled_at=None)
    assert is_handled(state=S.ESCALATED, handled_at=MONDAY)


@pytest.mark.parametrize(
    ("platform", "reported", "blocked", "words"),
    [
        (Platform.MASTODON, True, True, "the moderators of the author's Mastodon instance"),
        (Platform.REDDIT, True, False, "the moderators of the subreddit"),
        (Platform.MASTODON, False, True, "could not report it"),
    ],
)
def test_still_public_says_who_can_remove_it(
    platform: Platform, reported: bool, blocked: bool, words: str
) -> None:
    note = still_public_note(platform, reported=reported, blocked=blocked)
    assert note.startswith("The reply is still public") and words in note
    assert "failed" not in note


@pytest.mark.parametrize(
    ("platform", "result", "told", "words"),
    [
        # report and block stood in for the hide: said with the outcome, once
        (
            Platform.REDDIT,
            {"cannot_hide": True, "reported": True, "block": True},
            StillPublicTold.ON_ACTION,
            "reported it and blocked the author; only the moderators of the subreddit",
        ),
        (
            Platform.MASTODON,
            {"cannot_hide": True, "reported": False, "mute": True},
            StillPublicTold.ON_ACTION,
            "could not report it and blocked the author",
        ),
        # hidden as asked: nothing to say beyond the message's new state
        (Platform.BLUESKY, {"visibility": "hidden"}, StillPublicTold.ON_ACTION, None),
        # told by the removal check instead
        (
            Platform.REDDIT,
            {"cannot_hide": True, "reported": True},
            StillPublicTold.ON_VERIFICATION,
            None,
        ),
    ],
)
def test_still_public_is_told_with_the_report_and_block(
    platform: Platform, result: dict[str, object], told: StillPublicTold, words: str | None
) -> None:
    note = still_public_on_action(platform, result, told=told)
    if words is None:
        assert note is None
    else:
        assert note is not None and words in note and note.startswith("The reply is still public")


def test_the_still_public_note_is_given_with_the_action_by_default() -> None:
    assert STILL_PUBLIC_TOLD is StillPublicTold.ON_ACTION
