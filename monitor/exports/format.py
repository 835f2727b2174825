"""How exported values are written: times, escaped HTML, safe CSV cells and JSON."""

from __future__ import annotations

import csv
import io
import json
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

from monitor.clock import require_aware
from monitor.constants import DEFAULT_TIMEZONE

LONDON = ZoneInfo(DEFAULT_TIMEZONE)
IN_CHUNK = 500  # ids per IN (...) list
# Unicode categories that render as nothing or change layout: control, format (bidi
# overrides, zero-width), private use, surrogates, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"})
_VISIBLE_CONTROLS = frozenset("\n\t")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def normalise_handle(handle: str) -> str:
    """The form handles are compared in: trimmed, leading ``@`` removed, case-folded."""
    return handle.strip().lstrip("@").casefold()


def utc_text(value: datetime | None) -> str:
    """``2026-11-23 09:30:00 UTC``, or empty when unknown."""
    if value is None:
        return ""
    return require_aware(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def london_text(value: datetime | None) -> str:
    """``2026-11-23 09:30:00 GMT`` (or BST) in Europe/London, or empty when unknown."""
    if value is None:
        return ""
    return require_aware(value).astimezone(LONDON).strftime("%Y-%m-%d %H:%M:%S %Z")


def _parse_time(value: Any) -> datetime | None:
    # snapshot times are ISO strings; anything else is shown as given
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def times(name: str, value: datetime | str | None) -> dict[str, str]:
    """``{name_utc, name_london}`` for a datetime or an ISO string."""
    when = value if isinstance(value, datetime) else _parse_time(value)
    if when is None and isinstance(value, str):
        return {f"{name}_utc": value, f"{name}_london": ""}
    return {f"{name}_utc": utc_text(when), f"{name}_london": london_text(when)}


def shown(value: Any) -> Markup:
    """HTML for untrusted text: escaped, with invisible characters made visible."""
    text = "" if value is None else str(value)
    parts: list[str] = []
    for char in text:
        if char not in _VISIBLE_CONTROLS and unicodedata.category(char) in _HIDDEN_CATEGORIES:
            parts.append(f'<span class="cp" title="hidden character">U+{ord(char):04X}</span>')
        else:
            parts.append(str(escape(char)))
    return Markup("".join(parts))  # noqa: S704 - every piece above is escaped or fixed markup


def visible(value: Any) -> str:
    """Plain text for a printed page: invisible characters written as ``[U+XXXX]``."""
    text = "" if value is None else str(value)
    return "".join(
        f"[U+{ord(char):04X}]"
        if char not in _VISIBLE_CONTROLS and unicodedata.category(char) in _HIDDEN_CATEGORIES
        else char
        for char in text
    )


def safe_link(url: Any) -> Markup:
    """A link for http(s) URLs; anything else (``javascript:``, ``data:``) as plain text."""
    text = "" if url is None else str(url)
    if re.match(r"^https?://", text, flags=re.IGNORECASE):
        return Markup('<a href="{0}" rel="noopener noreferrer nofollow">{1}</a>').format(
            text, shown(text)
        )
    return shown(text)


def pretty(value: Any) -> str:
    """Indented JSON for showing a structured value (escape it with ``shown``)."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def compact(value: Any) -> str:
    """One-line JSON for a small structured value (escape it with ``shown``)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = str(value)
    # a spreadsheet would run these as formulas (CSV injection); the JSON keeps the original
    return "'" + text if text.startswith(_FORMULA_START) else text


def encode(text: str) -> bytes:
    # backslashreplace: a lone surrogate (possible in SQLite text) cannot become UTF-8;
    # inside JSON the replacement is the standard \udxxx escape, so nothing is lost
    return text.encode("utf-8", errors="backslashreplace")


def to_csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    """CSV with a header row, UTF-8 with a byte-order mark (so Excel reads it as UTF-8)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return b"\xef\xbb\xbf" + encode(buffer.getvalue())


def to_json(document: Any) -> bytes:
    """Indented JSON, UTF-8, keys in a stable order."""
    return encode(json.dumps(document, ensure_ascii=False, indent=2, default=str) + "\n")


def column_order(rows: Sequence[Mapping[str, Any]], preferred: Sequence[str]) -> list[str]:
    seen = dict.fromkeys(preferred)
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def chunks(ids: Iterable[int]) -> Iterator[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), IN_CHUNK):
        yield ordered[start : start + IN_CHUNK]
