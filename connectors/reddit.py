"""Reddit, through praw 8 as a script app (the school's own account and OAuth client).

Reads go through ``praw.Reddit.request`` so the raw JSON reddit sent is kept as evidence
and paging stays under our control; actions use praw's models. Listings are newest-first
and an ``after``/``before`` anchor that has since been removed or deleted yields an empty
page, so cursors never rely on an anchor for new items: each poll reads from the top and
stops at the newest item already returned. A backlog larger than ``max_pages`` pages is
finished on later polls (``Page.more``) from a stored gap, re-walking from the top if the
gap's anchor has vanished.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
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
    Fetched,
    Gone,
    Item,
    NotSupported,
    Page,
    RateLimited,
    TransientError,
    Visibility,
    raw_json,
)
from monitor.constants import ItemKind, Platform

log = logging.getLogger(__name__)

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

Key = tuple[float, int]


def _key(data: Mapping[str, Any]) -> Key:
    """Newest-first order of a listing: creation second, then the base-36 id."""
    return (float(data.get("created_utc") or 0.0), int(str(data.get("id") or "0"), 36))


def _as_key(value: Sequence[Any]) -> Key:
    return (float(value[0]), int(value[1]))


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


class _Gap:
    """Items newer than ``lo`` and older than ``hi`` still owed; ``after`` pages to them."""

    def __init__(self, lo: Key | None, hi: Key, after: str | None) -> None:
        self.lo, self.hi, self.after = lo, hi, after

    def dump(self) -> list[Any]:
        return [list(self.lo) if self.lo else None, list(self.hi), self.after]

    @classmethod
    def load(cls, value: Any) -> _Gap | None:
        if not value:
            return None
        lo, hi, after = value
        return cls(_as_key(lo) if lo else None, _as_key(hi), after)


class _ListingCursor:
    """Where one newest-first listing stands: the newest key returned, and any gap."""

    def __init__(self, top: Key | None = None, gap: _Gap | None = None, *, started: bool) -> None:
        self.top, self.gap, self.started = top, gap, started

    def dump(self) -> dict[str, Any]:
        return {
            "top": list(self.top) if self.top else None,
            "gap": self.gap.dump() if self.gap else None,
        }

    @classmethod
    def load(cls, value: Any) -> _ListingCursor:
        if not isinstance(value, dict):
            return cls(started=False)
        top = _as_key(value["top"]) if value.get("top") else None
        return cls(top, _Gap.load(value.get("gap")), started=True)


class RedditConnector(Connector):
    """Reddit via praw: own posts, replies, inbox, moderated communities, search."""

    PLATFORM: ClassVar[Platform] = Platform.REDDIT
    CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.OWN_POSTS,
            Capability.REPLIES,
            Capability.NOTIFICATIONS,
            Capability.MENTIONS,
            Capability.COMMUNITY,
            Capability.REMOVE,
            Capability.APPROVE,
            Capability.BLOCK,
            Capability.REPORT,
            Capability.REPLY,
            Capability.DELETE_OWN,
        }
    )
    REQUIRED_CREDENTIALS: ClassVar[frozenset[str]] = frozenset(
        {"client_id", "client_secret", "password"}
    )
    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "subreddits",
            "search_subreddits",
            "user_agent",
            "page_limit",
            "max_pages",
            "timeout",
            "oauth_url",
            "reddit_url",
            "short_url",
        }
    )
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
        except prawcore.TooManyRequests as exc:
            raise RateLimited(_retry_after(exc.response)) from None
        except (prawcore.OAuthException, prawcore.InvalidToken, prawcore.InsufficientScope) as exc:
            raise AuthError(f"reddit refused the credentials: {type(exc).__name__}") from None
        except prawcore.Forbidden as exc:
            if acting:
                raise NotSupported("reddit forbade this action for the account") from exc
            raise AuthError("reddit forbade the account this read") from None
        except prawcore.NotFound as exc:
            raise Gone("reddit has no such item") from exc
        except prawcore.ServerError as exc:
            raise TransientError(f"reddit server error: {exc}") from exc
        except prawcore.RequestException as exc:
            raise TransientError(
                f"reddit unreachable: {type(exc.original_exception).__name__}"
            ) from exc
        except prawcore.ResponseException as exc:
            status = exc.response.status_code
            if status == 401:
                raise AuthError("reddit refused the OAuth client") from None
            if status == 429:  # prawcore raises this (not TooManyRequests) for the token endpoint
                raise RateLimited(_retry_after(exc.response)) from None
            if status >= 500:
                raise TransientError(f"reddit answered {status}") from exc
            raise ConnectorError(f"reddit answered {status}") from exc
        except RedditAPIException as exc:
            kinds = {item.error_type for item in exc.items}
            if "RATELIMIT" in kinds:
                raise RateLimited(_wait_in(str(exc))) from None
            if kinds & _GONE_ERRORS:
                raise Gone(str(exc)) from exc
            raise ConnectorError(f"reddit refused: {exc}") from exc
        except (prawcore.PrawcoreException, PRAWException) as exc:
            raise ConnectorError(f"reddit client error: {type(exc).__name__}") from exc

    def _page(self, cursor: str | None) -> dict[str, Any]:
        if not cursor:
            return {}
        try:
            value = json.loads(cursor)
        except ValueError:
            log.warning("reddit %s: unreadable cursor ignored", self.account.handle)
            return {}
        return value if isinstance(value, dict) else {}

    @staticmethod
    def _cursor(value: Mapping[str, Any]) -> str:
        return json.dumps(value, separators=(",", ":"), sort_keys=True)

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

    # ------------------------------------------------------------ listings
    def _poll_listing(
        self,
        path: str,
        params: Mapping[str, str | int],
        state: _ListingCursor,
        budget: int,
    ) -> tuple[list[tuple[str, dict[str, Any]]], int, bool]:
        """New things of a newest-first listing since ``state`` (updated in place).

        Returns (things oldest first, pages used, more to read). Never returns a thing
        twice across polls; leaves ``state.gap`` set when the budget ran out first.
        """
        found: dict[str, tuple[Key, str, dict[str, Any]]] = {}
        used = 0

        def fetch(after: str | None) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
            nonlocal used
            query: dict[str, str | int] = {**params, "limit": self.page_limit}
            if after:
                query["after"] = after
            used += 1
            listing = self._get(path, query)
            data = listing["data"]
            return [(c["kind"], c["data"]) for c in data["children"]], data.get("after")

        if not state.started:
            # First poll: today's page only; history before the bot started is not owed.
            children, _ = fetch(None)
            for kind, data in children:
                found[data["name"]] = (_key(data), kind, data)
            state.started = True
            state.top = max((v[0] for v in found.values()), default=None)
            return self._ordered(found), used, False

        # 1. Fill an old gap first, so the cursor never holds more than one.
        gap = state.gap
        anchor = gap.after if gap else None
        while gap is not None and used < budget:
            children, after = fetch(anchor)
            if not children and anchor is not None:
                # The anchor left the listing (removed or deleted): walk again from the top.
                anchor = gap.after = None
                continue
            closed = after is None
            for kind, data in children:
                key = _key(data)
                if key >= gap.hi:
                    continue  # returned already, or newer than top (step 2 takes it)
                if gap.lo is not None and key <= gap.lo:
                    closed = True
                    break
                found[data["name"]] = (key, kind, data)
                gap.hi = key
            if closed:
                gap = None
            elif children:
                anchor = children[-1][1]["name"]
                gap.after = anchor
        state.gap = gap
        if gap is not None or used >= budget:
            # Gap still open, or just closed with no budget left to look above the top.
            return self._ordered(found), used, True

        # 2. New items above the top.
        top = state.top
        newest: Key | None = None
        oldest: tuple[Key, str] | None = None
        anchor = None
        while used < budget:
            children, after = fetch(anchor)
            reached = after is None
            for kind, data in children:
                key = _key(data)
                if top is not None and key <= top:
                    reached = True
                    break
                found[data["name"]] = (key, kind, data)
                newest = key if newest is None else max(newest, key)
                oldest = (key, data["name"])
            if reached or not children:
                break
            anchor = children[-1][1]["name"]
        else:
            if oldest is not None:
                state.gap = _Gap(top, oldest[0], oldest[1])
        if newest is not None:
            state.top = newest if top is None else max(top, newest)
        return self._ordered(found), used, state.gap is not None

    @staticmethod
    def _ordered(
        found: Mapping[str, tuple[Key, str, dict[str, Any]]],
    ) -> list[tuple[str, dict[str, Any]]]:
        return [(kind, data) for _, kind, data in sorted(found.values(), key=lambda v: v[0])]

    def _poll_streams(
        self,
        cursor: str | None,
        streams: Sequence[tuple[str, str, Mapping[str, str | int]]],
        convert: Callable[[str, dict[str, Any]], Item | None],
    ) -> Page:
        """Poll named listings with one cursor; each gets its own page budget."""
        saved = self._page(cursor)
        items: list[Item] = []
        state: dict[str, Any] = {}
        more = False
        used = 0
        with self._errors(acting=False):
            for name, path, params in streams:
                listing_state = _ListingCursor.load(saved.get(name))
                things, pages, backlog = self._poll_listing(
                    path, params, listing_state, self.max_pages
                )
                used += pages
                for kind, data in things:
                    item = convert(kind, data)
                    if item is not None:
                        items.append(item)
                state[name] = listing_state.dump()
                more = more or backlog
        return Page(tuple(items), self._cursor(state), more=more, requests=used)

    # ------------------------------------------------------------ streams
    def poll_posts(self, cursor: str | None) -> Page:
        """The account's own submissions, newest first on reddit, oldest first here."""
        self.require(Capability.OWN_POSTS)
        path = f"user/{self.account.handle}/submitted"
        return self._poll_streams(
            cursor,
            [("submitted", path, {"sort": "new"})],
            lambda kind, data: self._item(kind, data, ItemKind.POST) if kind == "t3" else None,
        )

    def poll_notifications(self, cursor: str | None) -> Page:
        """Comment replies and username mentions from the inbox (left unread)."""
        self.require(Capability.NOTIFICATIONS)

        def convert(kind: str, data: dict[str, Any]) -> Item | None:
            if kind != "t1" or self._placeholder(kind, data):
                return None  # private messages (t4) are not monitored content
            mention = data.get("type") == "username_mention"
            return self._item(kind, data, ItemKind.MENTION if mention else ItemKind.REPLY)

        # mark=false: reading the inbox must not mark it read for the school's staff.
        inbox = ("inbox", "message/inbox/", {"mark": "false"})
        return self._poll_streams(cursor, [inbox], convert)

    def poll_community(self, cursor: str | None) -> Page:
        """New comments and posts in the listed subreddits the account moderates."""
        self.require(Capability.COMMUNITY)
        if not self._moderated_names:
            raise NotSupported(f"reddit {self.account.handle!r} moderates no listed subreddit")
        multi = "+".join(self._moderated_names)

        def convert(kind: str, data: dict[str, Any]) -> Item | None:
            if self._placeholder(kind, data):
                return None
            if kind == "t1":
                return self._item(kind, data, ItemKind.REPLY)
            own = str(data.get("author", "")).lower() == self.account.handle.lower()
            return self._item(kind, data, ItemKind.POST if own else ItemKind.MENTION)

        return self._poll_streams(
            cursor,
            [("comments", f"r/{multi}/comments/", {}), ("posts", f"r/{multi}/new", {})],
            convert,
        )

    def poll_mentions(self, terms: Sequence[str], cursor: str | None) -> Page:
        """Submissions matching any term (reddit search, then filtered here)."""
        self.require(Capability.MENTIONS)
        wanted = [t.strip() for t in terms if t.strip()]
        if not wanted:
            return Page((), cursor, requests=0)
        query = " OR ".join('"{}"'.format(t.replace('"', " ")) for t in wanted)
        scope = "+".join(self.search_subreddits) if self.search_subreddits else "all"
        params: dict[str, str | int] = {
            "q": query,
            "sort": "new",
            "syntax": "lucene",
            "t": "all",
            "restrict_sr": "on" if self.search_subreddits else "",
            "type": "link",
        }
        lowered = [t.casefold() for t in wanted]

        def convert(kind: str, data: dict[str, Any]) -> Item | None:
            # Reddit search stems and tokenises; keep only real matches.
            haystack = f"{data.get('title', '')}\n{data.get('selftext', '')}".casefold()
            if kind != "t3" or not any(t in haystack for t in lowered):
                return None
            if self._placeholder(kind, data):
                return None
            own = str(data.get("author", "")).lower() == self.account.handle.lower()
            return self._item(kind, data, ItemKind.POST if own else ItemKind.MENTION)

        return self._poll_streams(cursor, [("search", f"r/{scope}/search/", params)], convert)

    def poll_replies(self, post_ids: Sequence[str], cursor: str | None) -> Page:
        """Comments at any depth under the given own submissions, one request per post.

        Comment ids are sequential, so the cursor keeps, per post, the highest id below
        which everything was returned. A thread longer than one comments page hides the
        rest behind "load more" stubs: those never returned are expanded first (up to
        ``max_pages`` /api/morechildren calls), and while some remain the cursor stays
        below the lowest of them, keeping the ids already returned above it (bounded by
        the thread) so nothing is returned twice. Known stubs are re-expanded with any
        budget left, to find new answers deep in long threads; a thread needing more than
        ``max_pages`` calls for that may show such answers late or, beyond reddit's
        listing, only through the inbox or the community stream.
        """
        self.require(Capability.REPLIES)
        saved = self._page(cursor).get("posts", {})
        state: dict[str, Any] = {}
        items: list[Item] = []
        more = False
        used = 0
        for post_id in dict.fromkeys(post_ids):
            kind, id36 = _split(post_id)
            if kind != "t3":
                continue
            name = f"t3_{id36}"
            previous = saved.get(name) or {}
            top = int(previous.get("top") or 0)
            returned = set(previous.get("returned") or ())

            def known(id36: str, top: int = top, returned: set[str] = returned) -> bool:
                return int(id36, 36) <= top or id36 in returned

            try:
                with self._errors(acting=False):
                    comments, owed = self._thread(id36, previous.get("owed") or [], known)
            except Gone:
                continue  # the post is gone: nothing more will arrive under it
            finally:
                used += self._last_thread_pages
            fresh = [c for c in comments if not known(str(c["id"]))]
            for data in sorted(fresh, key=_key):
                if not self._placeholder("t1", data):
                    items.append(self._item("t1", data, ItemKind.REPLY))
            returned |= {str(c["id"]) for c in fresh}
            if owed:
                # Hidden comments descend from the stubs, so all have ids >= the lowest.
                floor = max(top, min(int(s, 36) for s in owed) - 1)
                kept = sorted(i for i in returned if int(i, 36) > floor)
                state[name] = {"top": floor, "returned": kept, "owed": owed}
                more = True
            else:
                highest = max([top, *(int(str(c["id"]), 36) for c in comments)])
                state[name] = {"top": highest}
        return Page(tuple(items), self._cursor({"posts": state}), more=more, requests=used)

    def _thread(
        self, id36: str, owed: Sequence[str], known: Callable[[str], bool]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """A thread's comments and the unknown "more" ids left unexpanded (budget spent)."""
        self._last_thread_pages = 1
        tree = self._get(f"comments/{id36}/", {"sort": "new", "limit": 500})
        comments: dict[str, dict[str, Any]] = {}
        stubs: list[str] = list(owed)

        def walk(things: Any) -> None:
            for child in things:
                if child["kind"] == "more":
                    stubs.extend(str(c) for c in child["data"].get("children") or [])
                    continue
                data = child["data"]
                comments[str(data["id"])] = data
                replies = data.get("replies")
                if isinstance(replies, dict):
                    walk(replies["data"]["children"])

        def waiting() -> list[str]:
            left = [s for s in dict.fromkeys(stubs) if s not in comments]
            return [s for s in left if not known(s)] + [s for s in left if known(s)]

        walk(tree[1]["data"]["children"])
        queue = waiting()
        # The thread read itself is not counted against the morechildren budget.
        while queue and self._last_thread_pages <= self.max_pages:
            batch = queue[:MORECHILDREN_BATCH]
            self._last_thread_pages += 1
            self._within_budget()
            self._requests += 1
            answer = self.reddit.request(
                method="POST",
                path="api/morechildren/",
                data={
                    "api_type": "json",
                    "children": ",".join(batch),
                    "link_id": f"t3_{id36}",
                    "sort": "new",
                },
            )
            walk(answer["json"]["data"]["things"])
            stubs[:] = [s for s in stubs if s not in batch]
            queue = waiting()
        return list(comments.values()), [s for s in queue if not known(s)]

    # ------------------------------------------------------------ fetch
    def fetch(self, platform_id: str) -> Fetched:
        """Re-read one item: visible, removed (moderator or reddit) or deleted (author)."""
        kind, id36 = _split(platform_id)
        with self._errors(acting=False):
            listing = self._get("api/info/", {"id": f"{kind}_{id36}"})
        children = listing["data"]["children"]
        if not children:
            return Fetched(Visibility.NOT_FOUND)
        data = children[0]["data"]
        visibility = self._visibility(kind, data)
        item_kind = ItemKind.POST if kind == "t3" else ItemKind.REPLY
        if kind == "t3" and str(data.get("author", "")).lower() != self.account.handle.lower():
            item_kind = ItemKind.MENTION
        return Fetched(visibility, self._item(kind, data, item_kind))

    @staticmethod
    def _visibility(kind: str, data: Mapping[str, Any]) -> Visibility:
        text = data.get("body") if kind == "t1" else data.get("selftext")
        category = data.get("removed_by_category")
        if category in _AUTHOR_DELETED or text == "[deleted]":
            return Visibility.DELETED
        if category or text == "[removed]":
            return Visibility.REMOVED
        # Moderators see the original text with the removal flags beside it.
        if data.get("removed") or data.get("spam"):
            return Visibility.REMOVED
        if data.get("banned_by") and not data.get("approved_by"):
            return Visibility.REMOVED
        return Visibility.VISIBLE

    # ------------------------------------------------------------ actions
    def _model(self, item: Item) -> Any:
        kind, id36 = _split(item.platform_id)
        return self.reddit.comment(id36) if kind == "t1" else self.reddit.submission(id36)

    def _subreddit_of(self, item: Item) -> str:
        data = item.raw.get("data") if isinstance(item.raw.get("data"), dict) else None
        name = (data or {}).get("subreddit")
        if name:
            return str(name)
        fetched = self.fetch(item.platform_id)
        if fetched.item is None:
            raise Gone(f"{item.platform_id} no longer exists")
        return str(fetched.item.raw["data"].get("subreddit") or "")

    def _require_moderator(self, capability: Capability, item: Item) -> None:
        self.require(capability)
        subreddit = self._subreddit_of(item)
        if subreddit.lower() not in self.moderated:
            raise NotSupported(
                f"reddit {self.account.handle!r} does not moderate r/{subreddit}: "
                f"cannot {capability.value} {item.platform_id}"
            )

    def remove(self, item: Item, *, spam: bool = False) -> None:
        """Remove as a moderator (only in a subreddit the account moderates)."""
        self._require_moderator(Capability.REMOVE, item)
        with self._errors(acting=True):
            self._model(item).mod.remove(spam=spam)

    def approve(self, item: Item) -> None:
        """Reverse a removal (only in a subreddit the account moderates)."""
        self._require_moderator(Capability.APPROVE, item)
        with self._errors(acting=True):
            self._model(item).mod.approve()

    def report(self, item: Item, *, reason: str) -> str | None:
        """Report to the subreddit's moderators; reddit returns no report id."""
        self.require(Capability.REPORT)
        with self._errors(acting=True):
            self._model(item).report(reason[:REPORT_REASON_MAX])
        return None

    def block(self, author: Author) -> None:
        """Block the author from the school's account."""
        self.require(Capability.BLOCK)
        if not author.handle or author.handle == "[deleted]":
            raise Gone("the author's account is deleted")
        with self._errors(acting=True):
            self.reddit.redditor(author.handle).block()

    def reply(self, item: Item, text: str) -> Item:
        """Reply publicly as the account."""
        self.require(Capability.REPLY)
        with self._errors(acting=True):
            made = self._model(item).reply(body=text)
        if made is None:
            raise Gone(f"reddit would not accept a reply to {item.platform_id}")
        fields = {k: v for k, v in vars(made).items() if not k.startswith("_")}
        fields["author"] = self.account.handle
        fields["subreddit"] = str(getattr(made.subreddit, "display_name", made.subreddit))
        fields.pop("replies", None)
        return self._item("t1", raw_json(fields), ItemKind.REPLY)

    def delete_own(self, item: Item) -> None:
        """Delete a post or comment the account itself wrote."""
        self.require(Capability.DELETE_OWN)
        if not item.is_own and item.author.handle.lower() != self.account.handle.lower():
            raise NotSupported(f"{item.platform_id} was not written by {self.account.handle!r}")
        with self._errors(acting=True):
            self._model(item).delete()
