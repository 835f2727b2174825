"""Working calendar (R2): bank holidays, closures, due times across clock changes, reminders."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.calendar import WorkingCalendar, bank_holidays, expand_closures
from monitor.config_models import Calendar, ResponseTargets

LONDON = ZoneInfo("Europe/London")
DAY = timedelta(hours=24)
EW = WorkingCalendar()
SCOTLAND = WorkingCalendar(region="scotland")
NI = WorkingCalendar(region="northern_ireland")
# a school's Christmas holiday: Saturday 19 Dec 2026 to Sunday 3 Jan 2027
CHRISTMAS = expand_closures([], [(date(2026, 12, 19), date(2027, 1, 3))])


def london(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, fold: int = 0
) -> datetime:
    """An aware Europe/London datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=LONDON, fold=fold)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    """An aware UTC datetime."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


# --- bank holidays -----------------------------------------------------------------------------

# Every Monday-to-Friday bank holiday of 2026, per region, as the holidays package gives them.
WEEKDAY_HOLIDAYS_2026 = {
    "england_wales": {
        date(2026, 1, 1),  # New Year's Day
        date(2026, 4, 3),  # Good Friday
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 4),  # Early May
        date(2026, 5, 25),  # Spring
        date(2026, 8, 31),  # Summer (E&W: last Monday of August)
        date(2026, 12, 25),  # Christmas Day
        date(2026, 12, 28),  # substitute for Boxing Day (Saturday)
    },
    "scotland": {
        date(2026, 1, 1),
        date(2026, 1, 2),  # 2 January
        date(2026, 4, 3),  # Good Friday (no Easter Monday in Scotland)
        date(2026, 5, 4),
        date(2026, 5, 25),
        date(2026, 6, 15),  # one-off holiday for Scotland at the 2026 World Cup
        date(2026, 8, 3),  # Summer (Scotland: first Monday of August)
        date(2026, 11, 30),  # St Andrew's Day (a Monday in 2026)
        date(2026, 12, 25),
        date(2026, 12, 28),
    },
    "northern_ireland": {
        date(2026, 1, 1),
        date(2026, 3, 17),  # St Patrick's Day
        date(2026, 4, 3),
        date(2026, 4, 6),
        date(2026, 5, 4),
        date(2026, 5, 25),
        date(2026, 7, 13),  # Battle of the Boyne (12 July is a Sunday)
        date(2026, 8, 31),
        date(2026, 12, 25),
        date(2026, 12, 28),
    },
}


@pytest.mark.parametrize("region", sorted(WEEKDAY_HOLIDAYS_2026))
def test_non_working_weekdays_of_2026_are_exactly_the_bank_holidays(region: str) -> None:
    calendar = WorkingCalendar(region=region)
    days = [date(2026, 1, 1) + timedelta(days=n) for n in range(365)]
    non_working = {d for d in days if d.weekday() < 5 and not calendar.is_working_day(d)}
    assert non_working == WEEKDAY_HOLIDAYS_2026[region]
    assert not any(calendar.is_working_day(d) for d in days if d.weekday() >= 5)


def test_england_and_wales_share_one_list_and_substitute_days_are_included() -> None:
    assert date(2026, 12, 26) in bank_holidays("england_wales", 2026)  # Boxing Day, a Saturday
    assert date(2026, 12, 28) in bank_holidays("england_wales", 2026)
    # 2022 had two one-off holidays: the Platinum Jubilee and the Queen's state funeral
    assert {date(2022, 6, 3), date(2022, 9, 19)} <= bank_holidays("england_wales", 2022)
    assert date(2027, 1, 4) in bank_holidays("scotland", 2027)  # 2 Jan 2027 is a Saturday
    assert date(2027, 1, 4) not in bank_holidays("england_wales", 2027)


def test_next_working_day_is_strictly_after() -> None:
    assert EW.next_working_day(date(2026, 6, 8)) == date(2026, 6, 9)  # Monday -> Tuesday
    assert EW.next_working_day(date(2026, 6, 5)) == date(2026, 6, 8)  # Friday -> Monday
    assert EW.next_working_day(date(2026, 4, 2)) == date(2026, 4, 7)  # over Easter
    assert SCOTLAND.next_working_day(date(2026, 4, 2)) == date(2026, 4, 6)
    assert EW.next_working_day(date(2026, 12, 24)) == date(2026, 12, 29)


# --- due times -----------------------------------------------------------------------------------

DUE_CASES = [
    # id, calendar, received, expected due (UTC)
    ("monday 10:00 BST: +24h", EW, london(2026, 6, 8, 10), utc(2026, 6, 9, 9)),
    ("friday 16:00 GMT: +24h into saturday", EW, london(2026, 1, 16, 16), utc(2026, 1, 17, 16)),
    ("saturday 11:00: monday 17:00 BST", EW, london(2026, 6, 6, 11), utc(2026, 6, 8, 16)),
    ("saturday 11:00: monday 17:00 GMT", EW, london(2026, 1, 17, 11), utc(2026, 1, 19, 17)),
    ("sunday before may day: tuesday", EW, london(2026, 5, 3, 12), utc(2026, 5, 5, 16)),
    ("sunday before spring bank holiday", EW, london(2026, 5, 24, 9), utc(2026, 5, 26, 16)),
    ("good friday e&w: tuesday", EW, london(2026, 4, 3, 9), utc(2026, 4, 7, 16)),
    ("good friday scotland: easter monday", SCOTLAND, london(2026, 4, 3, 9), utc(2026, 4, 6, 16)),
    ("easter monday scotland is working", SCOTLAND, london(2026, 4, 6, 9), utc(2026, 4, 7, 8)),
    ("saturday before aug 3 e&w", EW, london(2026, 8, 1, 10), utc(2026, 8, 3, 16)),
    ("saturday before aug 3 scotland", SCOTLAND, london(2026, 8, 1, 10), utc(2026, 8, 4, 16)),
    ("saturday before aug 31 e&w", EW, london(2026, 8, 29, 10), utc(2026, 9, 1, 16)),
    ("saturday before aug 31 scotland", SCOTLAND, london(2026, 8, 29, 10), utc(2026, 8, 31, 16)),
    ("st andrew's weekend e&w", EW, london(2026, 11, 28, 10), utc(2026, 11, 30, 17)),
    ("st andrew's weekend scotland", SCOTLAND, london(2026, 11, 28, 10), utc(2026, 12, 1, 17)),
    ("new year's day e&w: 2 jan", EW, london(2026, 1, 1, 10), utc(2026, 1, 2, 17)),
    ("new year's day scotland: 5 jan", SCOTLAND, london(2026, 1, 1, 10), utc(2026, 1, 5, 17)),
    ("st patrick's day ni", NI, london(2026, 3, 17, 10), utc(2026, 3, 18, 17)),
    ("st patrick's day e&w is working", EW, london(2026, 3, 17, 10), utc(2026, 3, 18, 10)),
    ("christmas eve (working) +24h", EW, london(2026, 12, 24, 12), utc(2026, 12, 25, 12)),
    ("christmas day: 29 dec", EW, london(2026, 12, 25, 12), utc(2026, 12, 29, 17)),
    # midnight: the local date decides, not the UTC date
    ("saturday 00:00 BST (friday in UTC)", EW, london(2026, 6, 6, 0), utc(2026, 6, 8, 16)),
    ("monday 00:00 BST (sunday in UTC)", EW, london(2026, 6, 8, 0), utc(2026, 6, 8, 23)),
    ("friday 23:59:59 BST", EW, london(2026, 6, 5, 23, 59, 59), utc(2026, 6, 6, 22, 59, 59)),
    ("saturday 00:00 GMT", EW, london(2026, 1, 17, 0), utc(2026, 1, 19, 17)),
    ("monday 00:00 GMT", EW, london(2026, 1, 19, 0), utc(2026, 1, 20, 0)),
    # clock changes: 29 Mar 2026 (GMT -> BST) and 25 Oct 2026 (BST -> GMT), both Sundays
    ("saturday before spring change", EW, london(2026, 3, 28, 11), utc(2026, 3, 30, 16)),
    ("sunday of spring change", EW, london(2026, 3, 29, 3), utc(2026, 3, 30, 16)),
    ("saturday before autumn change", EW, london(2026, 10, 24, 11), utc(2026, 10, 26, 17)),
    ("sunday 01:30 (first) autumn", EW, london(2026, 10, 25, 1, 30), utc(2026, 10, 26, 17)),
    (
        "sunday 01:30 (second) autumn",
        EW,
        london(2026, 10, 25, 1, 30, fold=1),
        utc(2026, 10, 26, 17),
    ),
    # elapsed time across a clock change: 48 real hours, not 48 wall-clock hours
    ("friday +24h over spring change", EW, london(2026, 3, 27, 12), utc(2026, 3, 28, 12)),
]


@pytest.mark.parametrize(
    ("calendar", "received", "expected"),
    [case[1:] for case in DUE_CASES],
    ids=[case[0] for case in DUE_CASES],
)
def test_due_at(calendar: WorkingCalendar, received: datetime, expected: datetime) -> None:
    due = calendar.due_at(received, within=DAY)
    assert due == expected
    assert due.tzinfo is UTC
    assert calendar.due_at(received.astimezone(UTC), within=DAY) == expected


def test_elapsed_time_is_added_in_utc_not_on_the_wall_clock() -> None:
    # Friday 12:00 GMT + 48h is Sunday 12:00 UTC, which is 13:00 BST on the wall clock
    due = EW.due_at(london(2026, 3, 27, 12), within=timedelta(hours=48))
    assert due == utc(2026, 3, 29, 12)
    assert due.astimezone(LONDON).hour == 13
    due = EW.due_at(london(2026, 10, 23, 12), within=timedelta(hours=48))
    assert due == utc(2026, 10, 25, 11)
    assert due.astimezone(LONDON).hour == 11


@pytest.mark.parametrize(
    ("received", "expected", "region"),
    [
        (london(2026, 12, 21, 10), utc(2027, 1, 4, 17), "england_wales"),  # term over: a Monday
        (london(2026, 12, 18, 16), utc(2026, 12, 19, 16), "england_wales"),  # last day of term
        (london(2027, 1, 3, 20), utc(2027, 1, 4, 17), "england_wales"),  # last closure day
        (london(2026, 12, 21, 10), utc(2027, 1, 5, 17), "scotland"),  # 4 Jan 2027 is a holiday
    ],
)
def test_christmas_closure_range(received: datetime, expected: datetime, region: str) -> None:
    calendar = WorkingCalendar(region=region, closures=CHRISTMAS)
    assert calendar.due_at(received, within=DAY) == expected


def test_from_targets_expands_closures_and_uses_end_of_day() -> None:
    targets = ResponseTargets(
        end_of_day=time(15, 30),
        calendar=Calendar(
            region="scotland",
            closures=[date(2026, 6, 8)],
            closure_ranges=[(date(2026, 7, 1), date(2026, 7, 3))],
        ),
    )
    calendar = WorkingCalendar.from_targets(targets, "Europe/London")
    assert calendar.region == "scotland"
    assert calendar.closures == {
        date(2026, 6, 8),
        date(2026, 7, 1),
        date(2026, 7, 2),
        date(2026, 7, 3),
    }
    assert not calendar.is_working_day(date(2026, 7, 2))
    assert calendar.is_working_day(date(2026, 7, 6))
    # Saturday -> Monday 8 June is closed -> Tuesday 9 June 15:30 BST
    assert calendar.due_at(london(2026, 6, 6, 9), within=DAY) == utc(2026, 6, 9, 14, 30)
    # defaults: England & Wales, 17:00
    default = WorkingCalendar.from_targets(ResponseTargets(), "Europe/London")
    assert default == WorkingCalendar()


def test_closures_accept_any_iterable_and_stay_hashable() -> None:
    calendar = WorkingCalendar(closures=[date(2026, 6, 9)])  # type: ignore[arg-type]
    assert isinstance(calendar.closures, frozenset)
    assert hash(calendar) == hash(WorkingCalendar(closures=frozenset({date(2026, 6, 9)})))
    assert calendar.next_working_day(date(2026, 6, 8)) == date(2026, 6, 10)


# --- explicit handling of skipped and repeated local times -------------------------------------


def test_uk_end_of_day_is_never_skipped_or_repeated() -> None:
    # 17:00 exists exactly once on every day, so it is the plain conversion
    for day in (date(2026, 3, 29), date(2026, 10, 25), date(2026, 6, 1), date(2026, 12, 1)):
        expected = datetime.combine(day, time(17), tzinfo=LONDON).astimezone(UTC)
        assert EW.end_of_working_day(day) == expected


def test_end_of_day_in_a_skipped_hour_is_the_moment_of_the_jump() -> None:
    # Cairo moves its clocks 00:00 -> 01:00 on Friday 26 April 2024 (a working day here).
    calendar = WorkingCalendar(
        timezone="Africa/Cairo", closures=frozenset({date(2024, 4, 25)}), end_of_day=time(0, 30)
    )
    # 00:30 does not exist; the local clock first passes it at the jump, 22:00 UTC Thursday
    assert calendar.end_of_working_day(date(2024, 4, 26)) == utc(2024, 4, 25, 22)
    received = datetime(2024, 4, 25, 10, tzinfo=ZoneInfo("Africa/Cairo"))  # closed Thursday
    assert calendar.due_at(received, within=DAY) == utc(2024, 4, 25, 22)


def test_end_of_day_in_a_repeated_hour_is_its_first_occurrence() -> None:
    # Cairo repeats 23:00-24:00 on Thursday 31 October 2024 (EEST, then EET)
    calendar = WorkingCalendar(
        timezone="Africa/Cairo", closures=frozenset({date(2024, 10, 30)}), end_of_day=time(23, 30)
    )
    assert calendar.end_of_working_day(date(2024, 10, 31)) == utc(2024, 10, 31, 20, 30)
    ordinary = WorkingCalendar(timezone="Africa/Cairo").end_of_working_day(date(2024, 10, 30))
    assert ordinary == utc(2024, 10, 30, 14)  # 17:00 EEST


# --- reminders ---------------------------------------------------------------------------------


def test_reminder_is_before_due_but_never_before_receipt() -> None:
    received = london(2026, 6, 8, 10)
    due = EW.due_at(received, within=DAY)
    assert EW.reminder_at(due, received, before=timedelta(hours=4)) == utc(2026, 6, 9, 5)
    assert EW.reminder_at(due, received, before=DAY) == received  # exactly at receipt: allowed
    assert EW.reminder_at(due, received, before=DAY + timedelta(seconds=1)) is None
    assert EW.reminder_at(due, received, before=timedelta(hours=4)).tzinfo is UTC  # type: ignore[union-attr]


# --- bad input -----------------------------------------------------------------------------------


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        EW.due_at(datetime(2026, 6, 8, 10), within=DAY)
    with pytest.raises(ValueError, match="naive"):
        EW.reminder_at(datetime(2026, 6, 8, 10), utc(2026, 6, 8, 9), before=DAY)
    with pytest.raises(ValueError, match="naive"):
        EW.reminder_at(utc(2026, 6, 8, 10), datetime(2026, 6, 8, 9), before=DAY)
    with pytest.raises(ValueError, match="within"):
        EW.due_at(utc(2026, 6, 8, 10), within=timedelta(0))
    with pytest.raises(ValueError, match="before"):
        EW.reminder_at(utc(2026, 6, 8, 10), utc(2026, 6, 8, 9), before=-DAY)
    with pytest.raises(ValueError, match="timezone"):
        WorkingCalendar(timezone="Europe/Londn")
    with pytest.raises(ValueError, match="region"):
        WorkingCalendar(region="wales")
    with pytest.raises(ValueError, match="offset"):
        WorkingCalendar(end_of_day=time(17, tzinfo=UTC))
    with pytest.raises(ValueError, match="ends before it starts"):
        expand_closures([], [(date(2026, 12, 31), date(2026, 12, 1))])
    with pytest.raises(TypeError, match="date"):
        EW.is_working_day(datetime(2026, 6, 8, tzinfo=UTC))
    with pytest.raises(TypeError, match="date"):
        WorkingCalendar(closures=frozenset({datetime(2026, 6, 8, tzinfo=UTC)}))


# --- properties ----------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=300, derandomize=True, database=None, deadline=None)
receipts = st.datetimes(
    min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)
calendars = st.builds(
    WorkingCalendar,
    region=st.sampled_from(["england_wales", "scotland", "northern_ireland"]),
    closures=st.frozensets(
        st.dates(min_value=date(2024, 1, 1), max_value=date(2031, 1, 31)), max_size=40
    ),
    end_of_day=st.times(min_value=time(6), max_value=time(23, 59)),
)
durations = st.timedeltas(min_value=timedelta(minutes=1), max_value=timedelta(days=7))


@PROPERTY_SETTINGS
@given(calendar=calendars, received=receipts, within=durations)
def test_property_due_times(
    calendar: WorkingCalendar, received: datetime, within: timedelta
) -> None:
    due = calendar.due_at(received, within=within)
    assert due.tzinfo is UTC
    assert due > received
    assert calendar.due_at(received.astimezone(LONDON), within=within) == due
    received_day = received.astimezone(LONDON).date()
    if calendar.is_working_day(received_day):
        assert due - received == within
    else:
        local = due.astimezone(LONDON)
        assert calendar.is_working_day(local.date())
        assert local.timetz().replace(tzinfo=None) == calendar.end_of_day
        # it is the *next* working day: nothing in between was a working day
        between = range(1, (local.date() - received_day).days)
        assert not any(calendar.is_working_day(received_day + timedelta(days=n)) for n in between)


@PROPERTY_SETTINGS
@given(calendar=calendars, received=receipts, within=durations, before=durations)
def test_property_reminders(
    calendar: WorkingCalendar, received: datetime, within: timedelta, before: timedelta
) -> None:
    due = calendar.due_at(received, within=within)
    reminder = calendar.reminder_at(due, received, before=before)
    if reminder is None:
        assert due - before < received
    else:
        assert reminder.tzinfo is UTC
        assert received <= reminder < due
        assert reminder == due - before


# --- properties: the clock changes and bank holidays --------------------------------------------


def last_sunday(year: int, month: int) -> date:
    """The last Sunday of ``month`` (the UK clocks change at 01:00 UTC on it)."""
    day = date(year, month + 1, 1) - timedelta(days=1)
    return day - timedelta(days=(day.weekday() - 6) % 7)


def package_holidays(region: str, year: int) -> set[date]:
    """The region's bank holidays straight from the holidays package (not via the calendar)."""
    subdiv = {"england_wales": "ENG", "scotland": "SCT", "northern_ireland": "NIR"}[region]
    return set(holidays.country_holidays("GB", subdiv=subdiv, years=year))


change_weekends = st.tuples(st.integers(2024, 2035), st.sampled_from([3, 10]))


@PROPERTY_SETTINGS
@given(weekend=change_weekends, seconds=st.integers(0, 2 * 24 * 3600 - 1))
def test_property_weekend_of_a_clock_change_is_due_at_five_on_the_wall_clock(
    weekend: tuple[int, int], seconds: int
) -> None:
    year, month = weekend
    sunday = last_sunday(year, month)
    saturday_start = datetime.combine(sunday - timedelta(days=1), time(0), tzinfo=LONDON)
    monday_start = datetime.combine(sunday + timedelta(days=1), time(0), tzinfo=LONDON)
    received = saturday_start.astimezone(UTC) + timedelta(seconds=seconds)
    if received >= monday_start.astimezone(UTC):  # the weekend is an hour short in March
        received -= timedelta(hours=1)
    assert received.astimezone(LONDON).weekday() in (5, 6)
    due = EW.due_at(received, within=DAY)
    local = due.astimezone(LONDON)
    expected_day = sunday + timedelta(days=1)
    while expected_day in package_holidays("england_wales", year):  # Easter Monday in March
        expected_day += timedelta(days=1)
    assert local.date() == expected_day and (local.hour, local.minute) == (17, 0)
    # after the change: BST (UTC+1) in March, GMT (UTC+0) in October
    assert local.utcoffset() == timedelta(hours=1 if month == 3 else 0)
    assert due == datetime.combine(expected_day, time(17), tzinfo=LONDON).astimezone(UTC)
    assert due > received


@PROPERTY_SETTINGS
@given(
    weekend=change_weekends,
    minutes=st.integers(0, 24 * 60 - 1),
    within=st.timedeltas(min_value=timedelta(hours=1), max_value=timedelta(hours=72)),
)
def test_property_a_working_day_receipt_is_due_after_real_elapsed_time_across_a_change(
    weekend: tuple[int, int], minutes: int, within: timedelta
) -> None:
    year, month = weekend
    sunday = last_sunday(year, month)
    friday = datetime.combine(sunday - timedelta(days=2), time(0), tzinfo=LONDON)
    received = friday.astimezone(UTC) + timedelta(minutes=minutes)
    if not EW.is_working_day(received.astimezone(LONDON).date()):
        return  # Good Friday: covered by the bank holiday property
    due = EW.due_at(received, within=within)
    assert due - received == within  # real hours, whatever the clocks do
    change = datetime(sunday.year, sunday.month, sunday.day, 1, tzinfo=UTC)
    wall = due.astimezone(LONDON).replace(tzinfo=None) - received.astimezone(LONDON).replace(
        tzinfo=None
    )
    shift = timedelta(hours=1 if month == 3 else -1) if received < change <= due else timedelta(0)
    assert wall == within + shift


bank_holiday_days = sorted(
    (region, day)
    for region in ("england_wales", "scotland", "northern_ireland")
    for year in range(2024, 2031)
    for day in package_holidays(region, year)
)


@PROPERTY_SETTINGS
@given(
    holiday=st.sampled_from(bank_holiday_days),
    seconds=st.integers(0, 23 * 3600),
    end_of_day=st.times(min_value=time(6), max_value=time(23, 59)),
)
def test_property_a_bank_holiday_receipt_is_due_at_the_end_of_the_next_working_day(
    holiday: tuple[str, date], seconds: int, end_of_day: time
) -> None:
    region, day = holiday
    calendar = WorkingCalendar(region=region, end_of_day=end_of_day)
    received = datetime.combine(day, time(0), tzinfo=LONDON).astimezone(UTC) + timedelta(
        seconds=seconds
    )
    assert not calendar.is_working_day(received.astimezone(LONDON).date())
    due = calendar.due_at(received, within=DAY)
    local = due.astimezone(LONDON)
    assert due > received
    assert local.timetz().replace(tzinfo=None) == end_of_day
    official = package_holidays(region, local.year)
    assert local.weekday() < 5 and local.date() not in official
    # the *next* working day: every day in between is a weekend or a bank holiday
    for n in range(1, (local.date() - day).days):
        between = day + timedelta(days=n)
        assert between.weekday() >= 5 or between in package_holidays(region, between.year)
