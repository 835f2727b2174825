"""Showing things to people: times in Europe/London (or the school's zone), never UTC
internals; text from platforms made safe for a terminal."""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.markup import escape

from monitor.constants import DEFAULT_TIMEZONE

# Control characters (ESC starts a terminal escape sequence), format characters (bidi
# overrides reorder what is shown) and line/paragraph separators. The zero-width joiners
# only join letters and emoji, so they stay.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_JOINERS = frozenset({"\u200c", "\u200d"})


def when(value: datetime | None, timezone: str = DEFAULT_TIMEZONE) -> str:
    """``Mon 23 Nov 14:05`` in the local zone, or an em dash when unknown."""
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %Y %H:%M %Z")


def terminal_text(
    value: object,
    *,
    markup: bool = True,
    newlines: bool = False,
    limit: int | None = None,
) -> str:
    """Untrusted text (a comment, handle, URL, platform error) safe to print with rich.

    Control, format and separator characters become spaces, so no escape sequence reaches
    the terminal and nothing is reordered (``newlines`` keeps line breaks in a comment's
    body). With ``markup`` (the default: the text goes into a rich markup string or table
    cell) ``[bold]`` or ``[link=...]`` is escaped and shows as written. ``limit`` cuts long
    text with an ellipsis. Every CLI view that prints platform text uses this.
    """
    text = "" if value is None else str(value)
    kept = "\n" if newlines else ""
    cleaned = "".join(
        c
        if c in kept or c in _JOINERS or unicodedata.category(c) not in _UNSAFE_CATEGORIES
        else " "
        for c in text
    )
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    return escape(cleaned) if markup else cleaned


def console() -> Console:
    """A console for views that show platform text: no ``:emoji:`` codes are expanded."""
    return Console(emoji=False)


# R15: engagement counts as each platform names them, in words (singular, plural)
ENGAGEMENT_WORDS: dict[str, tuple[str, str]] = {
    "likes": ("like", "likes"),
    "favourites": ("like", "likes"),
    "reposts": ("repost", "reposts"),
    "reblogs": ("repost", "reposts"),
    "quotes": ("quote", "quotes"),
    "replies": ("reply", "replies"),
    "num_comments": ("reply", "replies"),
    "score": ("point", "points"),
}


def engagement_text(engagement: Mapping[str, Any]) -> str | None:
    """``{"likes": 3, "reposts": 1, "replies": 2}`` -> ``"3 likes, 1 repost, 2 replies"``."""
    parts = []
    for key, (one, many) in ENGAGEMENT_WORDS.items():
        value = engagement.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            parts.append(f"{value} {one if value == 1 else many}")
    return ", ".join(parts) or None
