"""Reddit's constants and pure helpers: rate-limit waits and item ids."""

from __future__ import annotations

import re
from typing import Any

SITE = "https://www.reddit.com"
DEFAULT_USER_AGENT = "school-social-monitor/0.1"
DEFAULT_TIMEOUT = 16.0  # praw's own default, seconds
DEFAULT_PAGE_LIMIT = 100  # reddit's maximum listing page
DEFAULT_MAX_PAGES = 5  # pages per stream per poll before the rest waits for the next poll
DEFAULT_RETRY_AFTER = 60.0  # when a 429 names no wait
REPORT_REASON_MAX = 100  # reddit rejects longer report reasons
MORECHILDREN_BATCH = 100  # ids per /api/morechildren call
# removed_by_category values that mean the author deleted it; the rest are removals.
_AUTHOR_DELETED = frozenset({"deleted", "author"})
_GONE_ERRORS = frozenset(
    {"DELETED_COMMENT", "DELETED_LINK", "USER_DOESNT_EXIST", "TOO_OLD", "NO_THING_ID"}
)
_WAIT = re.compile(r"(\d+)\s*(second|minute|hour)", re.IGNORECASE)
_CONTEXT_LINK = re.compile(r"/comments/([a-z0-9]+)/")


def _retry_after(response: Any) -> float:
    headers = getattr(response, "headers", {}) or {}
    for name in ("retry-after", "x-ratelimit-reset"):
        value = headers.get(name)
        if value:
            try:
                return float(value)
            except ValueError:
                continue
    return DEFAULT_RETRY_AFTER


def _wait_in(message: str) -> float:
    """Seconds in "you are doing that too much. try again in 5 minutes."."""
    match = _WAIT.search(message or "")
    if not match:
        return DEFAULT_RETRY_AFTER
    unit = {"second": 1, "minute": 60, "hour": 3600}[match.group(2).lower()]
    return float(match.group(1)) * unit


def _split(platform_id: str) -> tuple[str, str]:
    """("t1", "abc") from "t1_abc"; a bare id is taken as a submission."""
    if "_" in platform_id and platform_id[:2] in ("t1", "t3"):
        kind, id36 = platform_id.split("_", 1)
        return kind, id36
    return "t3", platform_id
