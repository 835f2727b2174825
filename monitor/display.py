"""Showing times to people: Europe/London (or the school's zone), never UTC internals."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from monitor.constants import DEFAULT_TIMEZONE


def when(value: datetime | None, timezone: str = DEFAULT_TIMEZONE) -> str:
    """``Mon 23 Nov 14:05`` in the local zone, or an em dash when unknown."""
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %Y %H:%M %Z")
