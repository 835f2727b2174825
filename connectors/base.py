"""The connector contract: what every platform module provides and returns.

Platform data crosses into the core only as the frozen dataclasses below, and
library errors are translated at this edge into the few typed errors below.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar, Protocol

from monitor.constants import ItemKind, Platform


class Capability(StrEnum):
    """What a platform (class attribute) or an account (after connect) can do."""

    OWN_POSTS = "own_posts"  # read the account's own posts
    REPLIES = "replies"  # read replies at any depth under the account's posts
    NOTIFICATIONS = "notifications"  # replies and mentions addressed to the account
    MENTIONS = "mentions"  # public search for the school's names and terms
    COMMUNITY = "community"  # new posts and comments in a community the account moderates
    STREAM = "stream"  # the platform offers a push stream
    HIDE = "hide"  # hide a reply under the account's own post
    UNHIDE = "unhide"
    REMOVE = "remove"  # moderator removal (e.g. Reddit in a moderated subreddit)
    APPROVE = "approve"  # reverse a moderator removal
    BLOCK = "block"
    MUTE = "mute"
    REPORT = "report"  # report to the platform's moderators
    REPLY = "reply"
    DELETE_OWN = "delete_own"  # delete a post the account itself wrote
    ADMIN = "admin"  # instance administration (own Mastodon server)


class Stream(StrEnum):
    """The polling streams; each has its own cursor per account."""

    POSTS = "posts"
    REPLIES = "replies"
    NOTIFICATIONS = "notifications"
    MENTIONS = "mentions"
    COMMUNITY = "community"


STREAM_CAPABILITY: dict[Stream, Capability] = {
    Stream.POSTS: Capability.OWN_POSTS,
    Stream.REPLIES: Capability.REPLIES,
    Stream.NOTIFICATIONS: Capability.NOTIFICATIONS,
    Stream.MENTIONS: Capability.MENTIONS,
    Stream.COMMUNITY: Capability.COMMUNITY,
}


class Visibility(StrEnum):
    """What a re-fetch found; removal verification reads this."""

    VISIBLE = "visible"
    HIDDEN = "hidden"  # still exists, hidden from the thread by the school
    REMOVED = "removed"  # removed by a moderator or the platform
    DELETED = "deleted"  # deleted by its author
    NOT_FOUND = "not_found"  # gone, reason unknown


GONE_VISIBILITIES: frozenset[Visibility] = frozenset(
    {Visibility.REMOVED, Visibility.DELETED, Visibility.NOT_FOUND}
)


# ---------------------------------------------------------------- errors


class ConnectorError(Exception):
    """Base of every error a connector raises; library errors never escape."""


class AuthError(ConnectorError):
    """Credentials are missing, wrong or revoked: stop polling, tell IT."""


class RateLimited(ConnectorError):
    """The platform asked us to wait ``retry_after`` seconds."""

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(f"{message} (retry after {retry_after:.0f}s)")
        self.retry_after = max(0.0, float(retry_after))


class TransientError(ConnectorError):
    """A network fault or server error: back off with jitter and try later."""


class NotSupported(ConnectorError):
    """The platform, or this account on it, cannot do this."""


class Gone(ConnectorError):
    """The target of an action no longer exists."""


# ---------------------------------------------------------------- clean text

REPLACEMENT = "\ufffd"
RAW_ORIGINAL_KEY = "_original_json"  # the raw payload as sent, as escaped (ASCII) JSON
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _join_pair(match: re.Match[str]) -> str:
    pair = match.group()
    return pair.encode("utf-16-le", "surrogatepass").decode("utf-16-le")


def clean_text(value: str) -> str:
    """``value`` with NUL and lone surrogates replaced by U+FFFD; nothing else is altered.

    Neither can be stored (PostgreSQL refuses NUL in text and JSON; no UTF-8 encoder
    takes a lone surrogate). A high and low surrogate that arrive as two code points
    are joined into the character they encode.
    """
    if _UNSTORABLE.search(value) is None:
        return value
    value = _SURROGATE_PAIR.sub(_join_pair, value)
    return _UNSTORABLE.sub(REPLACEMENT, value)


def _clean_json(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, Mapping):
        return {clean_text(str(k)): _clean_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_json(v) for v in value]
    return value


def _has_unstorable(value: Any) -> bool:
    if isinstance(value, str):
        return _UNSTORABLE.search(value) is not None
    if isinstance(value, Mapping):
        return any(_has_unstorable(str(k)) or _has_unstorable(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return any(_has_unstorable(v) for v in value)
    return False


def escaped_json(value: Any) -> str:
    """``value`` as JSON in plain ASCII: every NUL and lone surrogate kept as a \\u escape."""
    return json.dumps(value, ensure_ascii=True, sort_keys=True, default=str)


def clean_raw(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A storable copy of a raw payload; when anything had to be replaced, the payload
    as sent is kept alongside under ``_original_json`` as escaped JSON (lossless)."""
    if not _has_unstorable(raw):
        return dict(raw)
    cleaned: dict[str, Any] = _clean_json(raw)
    cleaned[RAW_ORIGINAL_KEY] = escaped_json(raw)
    return cleaned


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Author:
    """Who wrote an item, as the platform identifies them (text cleaned, see ``clean_text``)."""

    id: str
    handle: str
    display_name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", clean_text(self.id))
        object.__setattr__(self, "handle", clean_text(self.handle))
        if self.display_name is not None:
            object.__setattr__(self, "display_name", clean_text(self.display_name))


@dataclass(frozen=True)
class Item:
    """A post, reply or mention, as the core sees it.

    Every text field is cleaned on construction (NUL and lone surrogates replaced,
    see ``clean_text``) and ``raw`` made storable (``clean_raw``): one bad character
    from a platform never makes the item, or the page it came in, unstorable.
    """

    platform: Platform
    platform_id: str
    kind: ItemKind
    url: str
    author: Author
    text: str
    created_at: datetime
    parent_id: str | None = None
    root_id: str | None = None
    is_own: bool = False  # written by the school's own account
    engagement: Mapping[str, int] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.created_at.tzinfo is None:
            raise ValueError("Item.created_at must be timezone-aware")
        object.__setattr__(self, "created_at", self.created_at.astimezone(UTC))
        for name in ("platform_id", "url", "text"):
            object.__setattr__(self, name, clean_text(getattr(self, name)))
        for name in ("parent_id", "root_id"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, clean_text(value))
        object.__setattr__(self, "raw", clean_raw(self.raw))


@dataclass(frozen=True)
class Page:
    """What one poll of one stream returned.

    ``cursor`` is opaque and owned by the connector: store it with the items
    (in one transaction) and pass it back on the next poll. ``more`` says a
    backlog remains and the next poll will continue it with no gap.
    """

    items: tuple[Item, ...]
    cursor: str | None
    more: bool = False
    requests: int = 0  # platform requests this poll made (for tests and logs)

    def __post_init__(self) -> None:
        if self.cursor is not None:  # stored with the items: it must be storable too
            object.__setattr__(self, "cursor", clean_text(self.cursor))


@dataclass(frozen=True)
class Fetched:
    """The result of re-fetching one item."""

    visibility: Visibility
    item: Item | None = None


@dataclass(frozen=True)
class AccountRef:
    """The account a connector works for; credentials are never printed."""

    key: str
    platform: Platform
    handle: str
    options: Mapping[str, Any] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)


def raw_json(value: Any) -> dict[str, Any]:
    """Turn a library object into plain JSON data for evidence (lossless for JSON types)."""
    text = json.dumps(value, default=_json_default, sort_keys=True)
    data = json.loads(text)
    return data if isinstance(data, dict) else {"value": data}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", by_alias=True, exclude_none=True)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    return str(value)


# ---------------------------------------------------------------- contract


class SessionStore(Protocol):
    """Where a login session lives between connector instances and processes.

    The core gives a connector one per account (``Connector.use_session_store``) that
    keeps the session encrypted in the database, so a new process (``poll --once`` from
    cron, a restart) reuses the session instead of logging in again.
    """

    def get(self) -> str | None:
        """The stored session string, if any."""
        ...

    def set(self, value: str) -> None:
        """Keep a new or refreshed session string."""
        ...


class Connector(ABC):
    """One platform. Subclasses declare CAPABILITIES and implement what they support."""

    PLATFORM: ClassVar[Platform]
    CAPABILITIES: ClassVar[frozenset[Capability]]
    #: credential names this platform needs (empty set: can run read-only without any)
    REQUIRED_CREDENTIALS: ClassVar[frozenset[str]] = frozenset()
    OPTIONAL_CREDENTIALS: ClassVar[frozenset[str]] = frozenset()
    #: the account ``options`` this platform reads (any other name is a configuration error)
    OPTIONS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, account: AccountRef) -> None:
        self.account = account
        self.granted: frozenset[Capability] = frozenset()

    def use_session_store(self, store: SessionStore) -> None:  # noqa: B027 - optional hook
        """Keep login sessions in ``store`` (call before ``connect``); ignored by platforms
        whose credentials need no login session."""

    @abstractmethod
    def connect(self) -> frozenset[Capability]:
        """Log in (or reuse a session) and work out what this account may do."""

    def require(self, capability: Capability) -> None:
        """Raise NotSupported unless this account may do ``capability``."""
        allowed = self.granted if self.granted else self.CAPABILITIES
        if capability not in allowed:
            raise NotSupported(
                f"{self.PLATFORM} account {self.account.handle!r} cannot {capability.value}"
            )

    def streams(self) -> tuple[Stream, ...]:
        """The streams this account can poll, in polling order."""
        allowed = self.granted if self.granted else self.CAPABILITIES
        return tuple(s for s, cap in STREAM_CAPABILITY.items() if cap in allowed)

    # --- reading ---------------------------------------------------------
    def poll_posts(self, cursor: str | None) -> Page:
        """The account's own new posts since ``cursor``."""
        raise NotSupported(f"{self.PLATFORM} cannot list own posts")

    def poll_replies(self, post_ids: Sequence[str], cursor: str | None) -> Page:
        """New replies at any depth under the given own posts."""
        raise NotSupported(f"{self.PLATFORM} cannot list replies")

    def poll_notifications(self, cursor: str | None) -> Page:
        """New replies and mentions addressed to the account."""
        raise NotSupported(f"{self.PLATFORM} has no notifications")

    def poll_mentions(self, terms: Sequence[str], cursor: str | None) -> Page:
        """New public posts containing any of ``terms`` (post-filtered)."""
        raise NotSupported(f"{self.PLATFORM} cannot search public posts")

    def poll_community(self, cursor: str | None) -> Page:
        """New posts and comments in communities the account moderates."""
        raise NotSupported(f"{self.PLATFORM} has no moderated communities")

    def fetch(self, platform_id: str) -> Fetched:
        """Re-read one item and say whether it is still visible."""
        raise NotSupported(f"{self.PLATFORM} cannot fetch items")

    # --- acting ----------------------------------------------------------
    def hide(self, item: Item) -> None:
        """Hide a reply under the account's own post."""
        raise NotSupported(f"{self.PLATFORM} cannot hide replies")

    def unhide(self, item: Item) -> None:
        """Reverse ``hide``."""
        raise NotSupported(f"{self.PLATFORM} cannot unhide replies")

    def remove(self, item: Item, *, spam: bool = False) -> None:
        """Remove as a moderator."""
        raise NotSupported(f"{self.PLATFORM} cannot remove items")

    def approve(self, item: Item) -> None:
        """Reverse a moderator removal."""
        raise NotSupported(f"{self.PLATFORM} cannot approve items")

    def block(self, author: Author) -> None:
        """Block the author from the account."""
        raise NotSupported(f"{self.PLATFORM} cannot block")

    def mute(self, author: Author) -> None:
        """Mute the author for the account."""
        raise NotSupported(f"{self.PLATFORM} cannot mute")

    def report(self, item: Item, *, reason: str) -> str | None:
        """Report to the platform's moderators; returns the platform's report id if any."""
        raise NotSupported(f"{self.PLATFORM} cannot report")

    def reply(self, item: Item, text: str) -> Item:
        """Reply publicly as the account; returns the new post."""
        raise NotSupported(f"{self.PLATFORM} cannot reply")

    def delete_own(self, item: Item) -> None:
        """Delete a post the account itself wrote."""
        raise NotSupported(f"{self.PLATFORM} cannot delete posts")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release sessions and connections."""
