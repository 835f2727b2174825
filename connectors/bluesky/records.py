"""Pure helpers over Bluesky's JSON views and at:// URIs (no network)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from monitor.constants import ItemKind

DEFAULT_SERVICE_URL = "https://bsky.social"
DEFAULT_PUBLIC_URL = "https://public.api.bsky.app"
WEB_URL = "https://bsky.app"

POST_COLLECTION = "app.bsky.feed.post"
THREADGATE_COLLECTION = "app.bsky.feed.threadgate"
BLOCK_COLLECTION = "app.bsky.graph.block"
MAX_HIDDEN_REPLIES = 300  # app.bsky.feed.threadgate#hiddenReplies maxLength
MAX_THREAD_DEPTH = 1000  # app.bsky.feed.getPostThread depth maximum
GET_POSTS_BATCH = 25  # app.bsky.feed.getPosts uris maximum
_RECORD_URI_PARTS = 3  # at://repo/collection/rkey
NOTIFICATION_REASONS: dict[str, ItemKind] = {
    "reply": ItemKind.REPLY,
    "mention": ItemKind.MENTION,
    "quote": ItemKind.MENTION,
}
# Labels with which Bluesky's own moderation hides a post from everyone.
REMOVAL_LABELS = frozenset({"!takedown", "!hide"})

REPORT_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("spam",), "com.atproto.moderation.defs#reasonSpam"),
    (("threat", "violen"), "com.atproto.moderation.defs#reasonViolation"),
    (("sexual", "nud"), "com.atproto.moderation.defs#reasonSexual"),
    (("abus", "harass", "rude", "bully", "hate"), "com.atproto.moderation.defs#reasonRude"),
    (("mislead", "impersonat"), "com.atproto.moderation.defs#reasonMisleading"),
)
REASON_OTHER = "com.atproto.moderation.defs#reasonOther"


_VIEW_KEYS = ("uri", "cid", "author", "record", "indexedAt", "labels")


def _reason_type(reason: str) -> str:
    text = reason.lower()
    for words, reason_type in REPORT_REASONS:
        if any(word in text for word in words):
            return reason_type
    return REASON_OTHER


def _split_uri(uri: str) -> tuple[str, str, str]:
    """(repo, collection, rkey) of an at:// URI."""
    if not uri.startswith("at://"):
        raise ValueError(f"not an at:// URI: {uri!r}")
    parts = uri[len("at://") :].split("/")
    if len(parts) != _RECORD_URI_PARTS or not all(parts):
        raise ValueError(f"not an at:// record URI: {uri!r}")
    return parts[0], parts[1], parts[2]


def _author_did(view: Mapping[str, Any]) -> str | None:
    did = view.get("author", {}).get("did")
    return str(did) if did else None


def _thread_replies(node: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    """Every visible reply post under a thread node, at any depth."""
    stack = list(node.get("replies", []) or [])
    while stack:
        child = stack.pop()
        post = child.get("post")
        if isinstance(post, dict):  # NotFoundPost and BlockedPost carry no post
            yield post
        stack.extend(child.get("replies", []) or [])


def _term_pattern(term: str) -> re.Pattern[str]:
    """Case-insensitive match of a whole term (not inside a longer word)."""
    words = [re.escape(w) for w in term.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _searchable_text(view: Mapping[str, Any]) -> str:
    record = view.get("record", {})
    parts = [str(record.get("text", ""))]
    embed = record.get("embed") or {}
    external = embed.get("external") or (embed.get("media") or {}).get("external") or {}
    parts += [str(external.get("title", "")), str(external.get("description", ""))]
    for image in embed.get("images", []) or []:
        parts.append(str(image.get("alt", "")))
    return "\n".join(p for p in parts if p)


def _parse_time(value: Any, fallback: Any = None) -> datetime:
    """An aware UTC datetime from an atproto timestamp (naive means UTC)."""
    for candidate in (value, fallback):
        if not candidate:
            continue
        text = str(candidate).strip()
        text = re.sub(r"(\.\d{6})\d+", r"\1", text)  # fromisoformat takes 6 digits at most
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            continue
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return datetime.fromtimestamp(0, UTC)


def _sort_ms(view: Mapping[str, Any]) -> int:
    """The AppView's sort time: the earlier of createdAt and indexedAt."""
    indexed = _parse_time(view.get("indexedAt"))
    created = _parse_time(view.get("record", {}).get("createdAt"), fallback=view.get("indexedAt"))
    return _ms(min(indexed, created))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
