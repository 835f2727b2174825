"""Pure conversions for Mastodon: status HTML to text, options, ids and times."""

from __future__ import annotations

import html
import ipaddress
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

from connectors.base import (
    ConnectorError,
)

#: Mastodon caps list endpoints (statuses, notifications, search) at 40 per page.
MAX_PAGE_SIZE = 40
#: used when a 429 carries no usable X-RateLimit-Reset: the production window is 5 minutes.
DEFAULT_RETRY_AFTER = 300.0
#: owed search ranges kept per term (each costs one request per poll until filled).
MAX_SEARCH_GAPS = 20
#: Mastodon caps a report comment at 1,000 characters.
MAX_REPORT_COMMENT = 1000
#: Role permission bits (app/models/user_role.rb): administrator implies every flag.
PERMISSION_ADMINISTRATOR = 1 << 0
PERMISSION_MANAGE_REPORTS = 1 << 4
PERMISSION_MANAGE_USERS = 1 << 10
#: admin account actions ``remove`` may take; both are reversible through ``approve``.
REMOVE_ACTIONS: dict[str, str] = {"suspend": "unsuspend", "silence": "unsilence"}
REPLY_VISIBILITIES = ("public", "unlisted", "private", "direct")


# ---------------------------------------------------------------- HTML to text


class _TextExtractor(HTMLParser):
    """Collect the visible text of Mastodon status HTML (p, br, links, spans)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002 - HTMLParser's signature
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in {"p", "li", "blockquote", "pre"}:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        # Link text keeps the "invisible" URL parts Mastodon wraps in spans, so
        # the full address survives (it matters for evidence and link rules).
        self.parts.append(data)


def html_to_text(content: str) -> str:
    """Plain text of a status's HTML content: tags dropped, entities decoded, paragraphs kept."""
    parser = _TextExtractor()
    parser.feed(content or "")
    parser.close()
    lines = "".join(parser.parts).replace("\r\n", "\n").split("\n")
    text = "\n".join(line.rstrip() for line in lines)
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    # convert_charrefs handles entities in data; unescape catches any left in odd markup.
    return html.unescape(text).strip()


# ---------------------------------------------------------------- small helpers


def _as_bool(value: Any, *, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
    raise ConnectorError(f"expected a boolean, got {value!r}")


def _as_number(value: Any, *, default: float, low: float, high: float, name: str) -> float:
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ConnectorError(f"mastodon option {name!r} must be a number, got {value!r}") from exc
    if not low <= number <= high:
        raise ConnectorError(f"mastodon option {name!r} must be between {low:g} and {high:g}")
    return number


def _sid(value: Any) -> str:
    """A Mastodon id as the decimal string the API uses."""
    return str(value)


def _id_key(value: str) -> int:
    """Order Mastodon ids (decimal strings, snowflakes on real servers) numerically."""
    return int(value)


def _aware(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        raise TypeError(f"not a timestamp: {value!r}")
    if moment.tzinfo is None:  # the API always sends an offset; treat a bare one as UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
