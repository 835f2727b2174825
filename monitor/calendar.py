"""Working calendar and response due times under policy R2 (pure: the time is always passed in)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

from monitor.clock import require_aware
from monitor.constants import DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from monitor.config_models import ResponseTargets

# config region -> subdivision of the holidays package's "GB" (United Kingdom) calendar;
# England and Wales share one list of bank holidays
REGION_SUBDIVISIONS: dict[str, str] = {
    "england_wales": "ENG",
    "scotland": "SCT",
    "northern_ireland": "NIR",
}
_SATURDAY = 5


@lru_cache(maxsize=512)
def bank_holidays(region: str, year: int) -> frozenset[date]:
    """The bank holidays (substitute days included) of ``region`` in ``year``."""
    # Building a holidays object costs far more than a set lookup, and due times are
    # computed for every item, so each (region, year) is built once per process.
    # Years the package does not cover (before 1872, after 2100) give an empty set.
    subdiv = REGION_SUBDIVISIONS.get(region)
    if subdiv is None:
        raise ValueError(f"unknown region {region!r} (one of {', '.join(REGION_SUBDIVISIONS)})")
    return frozenset(holidays.country_holidays("GB", subdiv=subdiv, years=year).keys())


def expand_closures(
    days: Iterable[date], ranges: Iterable[tuple[date, date]] = ()
) -> frozenset[date]:
    """Single closure days plus every day of each inclusive ``(first, last)`` range."""
    result = {_plain_date(day) for day in days}
    for first, last in ranges:
        first, last = _plain_date(first), _plain_date(last)
        if last < first:
            raise ValueError(f"closure range {first}..{last} ends before it starts")
        result.update(first + timedelta(days=n) for n in range((last - first).days + 1))
    return frozenset(result)


def _plain_date(value: date) -> date:
    """``value`` if it is a date; a datetime is refused because it never equals a date."""
    if isinstance(value, datetime) or not isinstance(value, date):
        raise TypeError(f"expected a date, got {type(value).__name__}")
    return value


def _first_instant_at_or_after(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The first UTC instant at which the local clock on ``day`` reads ``wall`` or later."""
    naive = datetime.combine(day, wall)
    earlier = naive.replace(tzinfo=zone, fold=0)
    later = naive.replace(tzinfo=zone, fold=1)
    candidates = [
        candidate.astimezone(UTC)
        for candidate in (earlier, later)
        if candidate.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive
    ]
    if candidates:
        # One candidate: an ordinary time. Two: a repeated (ambiguous) time after the clocks
        # went back; its first occurrence is when the local clock first shows it.
        return min(candidates)
    # A skipped (non-existent) time: the clocks jumped over it, so the first instant at or
    # after it is the moment of the jump. fold=1 reads it with the offset after the jump (an
    # instant before the jump), fold=0 with the offset before (an instant after the jump);
    # bisect between them to the microsecond.
    low = later.astimezone(UTC)  # local clock still before `wall`
    high = earlier.astimezone(UTC)  # local clock already past `wall`
    step = timedelta(microseconds=1)
    while high - low > step:
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= naive:
            high = middle
        else:
            low = middle
    return high


@dataclass(frozen=True)
class WorkingCalendar:
    """Working days (Mon-Fri, not a bank holiday of the region, not a closure) in one zone."""

    timezone: str = DEFAULT_TIMEZONE
    region: str = "england_wales"
    closures: frozenset[date] = frozenset()
    end_of_day: time = time(17, 0)

    def __post_init__(self) -> None:
        """Refuse an unknown zone or region and an end of day tied to a UTC offset."""
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        if self.region not in REGION_SUBDIVISIONS:
            raise ValueError(
                f"unknown region {self.region!r} (one of {', '.join(REGION_SUBDIVISIONS)})"
            )
        if not isinstance(self.end_of_day, time):
            raise TypeError(f"end_of_day must be a time, got {type(self.end_of_day).__name__}")
        if self.end_of_day.tzinfo is not None:
            # the end of the day is a local wall-clock time; a fixed offset would be wrong
            # for half the year
            raise ValueError("end_of_day must be a local time without a timezone or offset")
        # accept any iterable of dates, but store a frozenset so the calendar stays hashable
        object.__setattr__(self, "closures", expand_closures(self.closures))
        object.__setattr__(self, "end_of_day", self.end_of_day.replace(fold=0))

    @classmethod
    def from_targets(cls, targets: ResponseTargets, timezone: str) -> WorkingCalendar:
        """The calendar described by the ``response_targets`` config, in ``timezone``."""
        calendar = targets.calendar
        return cls(
            timezone=timezone,
            region=calendar.region,
            closures=expand_closures(calendar.closures, calendar.closure_ranges),
            end_of_day=targets.end_of_day,
        )

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's timezone (ZoneInfo caches instances, so this is cheap)."""
        return ZoneInfo(self.timezone)

    def local_date(self, moment: datetime) -> date:
        """The calendar date of an aware ``moment`` in the calendar's zone."""
        return require_aware(moment).astimezone(self.zone).date()

    def is_working_day(self, day: date) -> bool:
        """Mon-Fri, not a bank holiday of the region and not a closure day."""
        day = _plain_date(day)
        return (
            day.weekday() < _SATURDAY
            and day not in self.closures
            and day not in bank_holidays(self.region, day.year)
        )

    def next_working_day(self, day: date) -> date:
        """The first working day strictly after ``day``."""
        candidate = _plain_date(day) + timedelta(days=1)
        while not self.is_working_day(candidate):
            candidate += timedelta(days=1)
        return candidate

    def end_of_working_day(self, day: date) -> datetime:
        """The UTC instant of ``end_of_day`` local time on ``day``."""
        return _first_instant_at_or_after(_plain_date(day), self.end_of_day, self.zone)

    def due_at(self, received: datetime, *, within: timedelta) -> datetime:
        """When the response to an item received at ``received`` is due (aware UTC)."""
        if within <= timedelta(0):
            raise ValueError("within must be a positive duration")
        received_utc = require_aware(received)
        day = received_utc.astimezone(self.zone).date()
        if self.is_working_day(day):
            # elapsed time: added in UTC, so a clock change in between does not shift it
            return received_utc + within
        return self.end_of_working_day(self.next_working_day(day))

    def reminder_at(
        self, due: datetime, received: datetime, *, before: timedelta
    ) -> datetime | None:
        """``before`` ahead of ``due`` (aware UTC), or None if that is before ``received``."""
        if before <= timedelta(0):
            raise ValueError("before must be a positive duration")
        reminder = require_aware(due) - before
        return None if reminder < require_aware(received) else reminder
