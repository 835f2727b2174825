"""ISO weeks in a local timezone (Europe/London by default) and their UTC bounds."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from monitor.clock import require_aware
from monitor.constants import DEFAULT_TIMEZONE

_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def monday_of(week: str) -> date:
    """The Monday of ``week`` ("2026-W47"); ValueError names the expected form."""
    match = _WEEK.match(week)
    if not match:
        raise ValueError(f"not an ISO week: {week!r} (expected e.g. 2026-W47)")
    try:
        return date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError as exc:
        raise ValueError(f"no such ISO week: {week!r}") from exc


def week_name(day: date) -> str:
    """The ISO week containing ``day``."""
    year, number, _ = day.isocalendar()
    return f"{year}-W{number:02d}"


def local_midnight(day: date, timezone: str) -> datetime:
    """00:00 local time on ``day``, in UTC (midnight always exists in Europe/London)."""
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def week_bounds(week: str, timezone: str = DEFAULT_TIMEZONE) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00, local time, as UTC (167-169 hours long)."""
    monday = monday_of(week)
    return local_midnight(monday, timezone), local_midnight(monday + timedelta(days=7), timezone)


def week_containing(moment: datetime, timezone: str = DEFAULT_TIMEZONE) -> str:
    """The ISO week (local time) that ``moment`` falls in."""
    return week_name(require_aware(moment).astimezone(ZoneInfo(timezone)).date())


def shift(week: str, weeks: int) -> str:
    """The week ``weeks`` after (negative: before) ``week``."""
    return week_name(monday_of(week) + timedelta(weeks=weeks))


def last_complete_week(now: datetime, timezone: str = DEFAULT_TIMEZONE) -> str:
    """The most recent week that has ended by ``now``."""
    return shift(week_containing(now, timezone), -1)
