"""The one place that reads the real clock; everything else is given ``now``."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def require_aware(value: datetime) -> datetime:
    """``value`` in UTC; refuses naive datetimes, which are ambiguous."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: pass an aware datetime (UTC)")
    return value.astimezone(UTC)
