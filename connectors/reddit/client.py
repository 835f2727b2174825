"""The reddit client: connecting with praw, requests within budget, errors, cursors, items."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, ClassVar

import praw
import prawcore
from praw.exceptions import PRAWException, RedditAPIException

from connectors.base import (
    AccountRef,
    AuthError,
    Author,
    Capability,
    Connector,
    ConnectorError,
    Gone,
    Item,
    NotSupported,
    RateLimited,
    TransientError,
)
from connectors.paging import CursorFormat
from connectors.reddit.convert import (
    _CONTEXT_LINK,
    _GONE_ERRORS,
    DEFAULT_MAX_PAGES,
    DEFAULT_PAGE_LIMIT,
    DEFAULT_TIMEOUT,
    DEFAULT_USER_AGENT,
    SITE,
    _retry_after,
    _wait_in,
)
from monitor.constants import ItemKind

log = logging.getLogger(__name__)


CURSORS = CursorFormat("reddit")


class RedditClient(Connector):
    """Reddit via praw: own posts, replies, inbox, moderated communities, search."""

    # Granted only where the account moderates one of the configured subreddits.
    MODERATOR_CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.REMOVE, Capability.APPROVE, Capability.COMMUNITY}
    )

    def __init__(self, account: AccountRef) -> None:
        super().__init__(account)
        options = account.options
        self.subreddits: tuple[str, ...] = tuple(options.get("subreddits") or ())
        self.search_subreddits: tuple[str, ...] = tuple(options.get("search_subreddits") or ())
        self.page_limit = max(1, min(100, int(options.get("page_limit", DEFAULT_PAGE_LIMIT))))
        self.max_pages = max(1, int(options.get("max_pages", DEFAULT_MAX_PAGES)))
        self.timeout = float(options.get("timeout", DEFAULT_TIMEOUT))
        self.moderated: frozenset[str] = frozenset()  # lower-case names
        self._moderated_names: tuple[str, ...] = ()
        self._reddit: Any = None
        self._requests = 0
        self._last_thread_pages = 0

    # ------------------------------------------------------------ connecting
    def connect(self) -> frozenset[Capability]:
        """Log in with the password grant and learn which listed subreddits we moderate."""
        creds = self.account.credentials
        missing = sorted(name for name in self.REQUIRED_CREDENTIALS if not creds.get(name))
        if missing:
            raise AuthError(f"reddit account {self.account.handle!r} lacks {', '.join(missing)}")
        options = self.account.options
        settings: dict[str, Any] = {
            "client_id": creds["client_id"],
            "client_secret": creds["client_secret"],
            "username": self.account.handle,
            "password": creds["password"],
            "user_agent": options.get("user_agent") or DEFAULT_USER_AGENT,
            "timeout": self.timeout,
            "check_for_updates": False,
            "check_for_async": False,
        }
        for name in ("oauth_url", "reddit_url", "short_url"):
            if options.get(name):
                settings[name] = options[name]
        with self._errors(acting=False):
            self._reddit = praw.Reddit(**settings)
            me = self._get("api/v1/me")
            mine = self._moderator_of()
        if str(me.get("name", "")).lower() != self.account.handle.lower():
            raise AuthError(f"reddit logged in as {me.get('name')!r}, not {self.account.handle!r}")
        listed = {name.lower(): name for name in self.subreddits}
        self.moderated = frozenset(name for name in mine if name in listed)
        self._moderated_names = tuple(sorted(mine[name] for name in self.moderated))
        unmoderated = sorted(set(listed) - self.moderated)
        if unmoderated:
            log.info("reddit %s does not moderate %s", self.account.handle, unmoderated)
        granted = set(self.CAPABILITIES - self.MODERATOR_CAPABILITIES)
        if self.moderated:
            granted |= self.MODERATOR_CAPABILITIES
        self.granted = frozenset(granted)
        return self.granted

    def _moderator_of(self) -> dict[str, str]:
        """Every subreddit the account moderates: lower-case name -> display name."""
        names: dict[str, str] = {}
        after: str | None = None
        for _ in range(self.max_pages * 10):  # 100 per page; reddit caps moderation at far less
            params: dict[str, str | int] = {"limit": 100}
            if after:
                params["after"] = after
            listing = self._get("subreddits/mine/moderator/", params)
            for child in listing["data"]["children"]:
                display = child["data"]["display_name"]
                names[display.lower()] = display
            after = listing["data"].get("after")
            if not after:
                break
        return names

    def close(self) -> None:
        """Drop the praw session."""
        self._reddit = None

    # ------------------------------------------------------------ plumbing
    @property
    def reddit(self) -> Any:
        if self._reddit is None:
            self.connect()
        return self._reddit

    def _get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        reddit = self.reddit
        self._within_budget()
        self._requests += 1
        return reddit.request(method="GET", path=path, params=dict(params or {}))

    def _within_budget(self) -> None:
        """Raise RateLimited when reddit's x-ratelimit headers say the budget is spent."""
        # prawcore paces requests with short sleeps (10 s at most), but once
        # x-ratelimit-remaining reaches 0 it would sleep the worker thread until
        # x-ratelimit-reset (up to reddit's 10-minute window): pause the account instead.
        # praw keeps its prawcore session in ``_core`` (no public getter); the session's
        # rate_limiter holds what the last response's x-ratelimit-* headers said.
        limiter = getattr(getattr(self._reddit, "_core", None), "rate_limiter", None)
        remaining = getattr(limiter, "remaining", None)
        due = getattr(limiter, "next_request_timestamp_ns", None)
        if not isinstance(remaining, int) or remaining > 0 or not isinstance(due, int):
            return
        wait = (due - time.monotonic_ns()) / 1e9
        if wait > 0:
            raise RateLimited(wait, "reddit request budget used up (x-ratelimit-remaining: 0)")

    @contextmanager
    def _errors(self, *, acting: bool) -> Iterator[None]:
        """Translate praw and prawcore errors into the connector's own."""
        if acting:
            self._within_budget()
        try:
            yield
        except (prawcore.PrawcoreException, PRAWException) as exc:
            error, keep_cause = _translate(exc, acting=acting)
            if keep_cause:
                raise error from exc
            raise error from None

    def _page(self, cursor: str | None) -> dict[str, Any]:
        return CURSORS.load_or_start(cursor, self.account.handle)

    @staticmethod
    def _cursor(value: Mapping[str, Any]) -> str:
        return CURSORS.dump(value)

    # ------------------------------------------------------------ items
    def _item(self, kind: str, data: Mapping[str, Any], item_kind: ItemKind) -> Item:
        author = str(data.get("author") or "[deleted]")
        if kind == "t3":
            text = str(data.get("title") or "")
            if data.get("selftext"):
                text = f"{text}\n\n{data['selftext']}"
            parent = root = None
        else:
            text = str(data.get("body") or "")
            parent = data.get("parent_id")
            root = data.get("link_id") or self._link_from_context(data)
        permalink = data.get("permalink") or str(data.get("context") or "").split("?", 1)[0]
        engagement = {"score": int(data.get("score") or 0)}
        if kind == "t3":
            engagement["num_comments"] = int(data.get("num_comments") or 0)
        return Item(
            platform=self.PLATFORM,
            platform_id=str(data.get("name") or f"{kind}_{data.get('id')}"),
            kind=item_kind,
            url=f"{SITE}{permalink}" if str(permalink).startswith("/") else str(permalink),
            author=Author(id=str(data.get("author_fullname") or ""), handle=author),
            text=text,
            created_at=datetime.fromtimestamp(float(data.get("created_utc") or 0.0), UTC),
            parent_id=str(parent) if parent else None,
            root_id=str(root) if root else None,
            is_own=author.lower() == self.account.handle.lower(),
            engagement=engagement,
            raw={"kind": kind, "data": dict(data)},
        )

    @staticmethod
    def _link_from_context(data: Mapping[str, Any]) -> str | None:
        match = _CONTEXT_LINK.search(str(data.get("context") or ""))
        return f"t3_{match.group(1)}" if match else None

    @staticmethod
    def _placeholder(kind: str, data: Mapping[str, Any]) -> bool:
        """A "[deleted]"/"[removed]" stub kept only to hold a thread together."""
        text = data.get("body") if kind == "t1" else data.get("selftext")
        return data.get("author") == "[deleted]" and text in ("[deleted]", "[removed]")


# Each translation says whether the library's error stays attached as the cause (a
# refusal of the credentials or a rate limit is reported without it).
Translated = tuple[ConnectorError, bool]


def _translate(exc: prawcore.PrawcoreException | PRAWException, *, acting: bool) -> Translated:
    """The connector's error for a praw or prawcore error."""
    if isinstance(exc, prawcore.ResponseException):
        return _translate_response(exc, acting=acting)
    if isinstance(exc, prawcore.OAuthException):
        return AuthError(f"reddit refused the credentials: {type(exc).__name__}"), False
    if isinstance(exc, prawcore.RequestException):
        return TransientError(f"reddit unreachable: {type(exc.original_exception).__name__}"), True
    if isinstance(exc, RedditAPIException):
        kinds = {item.error_type for item in exc.items}
        if "RATELIMIT" in kinds:
            return RateLimited(_wait_in(str(exc))), False
        if kinds & _GONE_ERRORS:
            return Gone(str(exc)), True
        return ConnectorError(f"reddit refused: {exc}"), True
    return ConnectorError(f"reddit client error: {type(exc).__name__}"), True


def _translate_response(exc: prawcore.ResponseException, *, acting: bool) -> Translated:
    """The connector's error for an error response."""
    if isinstance(exc, prawcore.TooManyRequests):
        return RateLimited(_retry_after(exc.response)), False
    if isinstance(exc, (prawcore.InvalidToken, prawcore.InsufficientScope)):
        return AuthError(f"reddit refused the credentials: {type(exc).__name__}"), False
    if isinstance(exc, prawcore.Forbidden):
        if acting:
            return NotSupported("reddit forbade this action for the account"), True
        return AuthError("reddit forbade the account this read"), False
    if isinstance(exc, prawcore.NotFound):
        return Gone("reddit has no such item"), True
    if isinstance(exc, prawcore.ServerError):
        return TransientError(f"reddit server error: {exc}"), True
    return _translate_status(exc)


def _translate_status(exc: prawcore.ResponseException) -> Translated:
    """The connector's error for any other error status."""
    status = exc.response.status_code
    if status == HTTPStatus.UNAUTHORIZED:
        return AuthError("reddit refused the OAuth client"), False
    if status == HTTPStatus.TOO_MANY_REQUESTS:
        # prawcore raises this (not TooManyRequests) for the token endpoint
        return RateLimited(_retry_after(exc.response)), False
    if status >= HTTPStatus.INTERNAL_SERVER_ERROR:
        return TransientError(f"reddit answered {status}"), True
    return ConnectorError(f"reddit answered {status}"), True
