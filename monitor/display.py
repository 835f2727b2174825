"""Showing things to people: times in Europe/London (or the school's zone), never UTC
internals; text from platforms made safe for a terminal."""

from __future__ import annotations

import unicodedata
from datetime import datetime
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
