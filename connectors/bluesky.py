"""Bluesky (AT Protocol) connector, built on the ``atproto`` client library.

With an app password the connector logs in once and keeps the session string
in a session store: the core's (``use_session_store``: encrypted in the database,
shared by every process, so ``poll --once`` from cron imports it instead of
calling createSession), else one per process. The library refreshes the access
token before it expires and every refresh is stored; when a refresh is refused
(another process already used the refresh token), the stored session is read
again before logging in. Without credentials it
reads the public AppView: own posts, replies and search, nothing else.

Cursors are opaque JSON strings owned by this module. Listings on Bluesky run
newest first, so each newest-first stream remembers the newest sort time it
has delivered plus the URIs it has seen within an overlap window behind it:
late-indexed posts inside the window are caught, seen ones are never repeated,
and a backlog longer than ``max_pages`` continues on the next poll.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, ClassVar, TypeVar

import httpx
from atproto import Client, models
from atproto.exceptions import (
    AtProtocolError,
    BadRequestError,
    InvokeTimeoutError,
    LoginRequiredError,
    ModelError,
    NetworkError,
    RateLimitExceededError,
    RequestErrorBase,
    UnauthorizedError,
)
from atproto_client.client.session import Session, SessionEvent
from atproto_client.request import Request
from atproto_client.utils import facet_detection

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
    SessionStore,
    TransientError,
    Visibility,
    raw_json,
)
from connectors.retry import with_retries
from monitor.constants import ItemKind, Platform

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_SERVICE_URL = "https://bsky.social"
DEFAULT_PUBLIC_URL = "https://public.api.bsky.app"
WEB_URL = "https://bsky.app"

POST_COLLECTION = "app.bsky.feed.post"
THREADGATE_COLLECTION = "app.bsky.feed.threadgate"
BLOCK_COLLECTION = "app.bsky.graph.block"
MAX_HIDDEN_REPLIES = 300  # app.bsky.feed.threadgate#hiddenReplies maxLength
MAX_THREAD_DEPTH = 1000  # app.bsky.feed.getPostThread depth maximum
GET_POSTS_BATCH = 25  # app.bsky.feed.getPosts uris maximum
NOTIFICATION_REASONS: dict[str, ItemKind] = {
    "reply": ItemKind.REPLY,
    "mention": ItemKind.MENTION,
    "quote": ItemKind.MENTION,
}
# Labels with which Bluesky's own moderation hides a post from everyone.
REMOVAL_LABELS = frozenset({"!takedown", "!hide"})
# Error names that mean the access token, not the app password, is the problem.
TOKEN_ERRORS = frozenset({"ExpiredToken", "InvalidToken"})
TAKEDOWN_ERRORS = frozenset({"RepoTakendown", "AccountTakedown"})
NOT_FOUND_ERRORS = frozenset(
    {"NotFound", "RecordNotFound", "RepoNotFound", "ProfileNotFound", "AccountNotFound"}
    | TAKEDOWN_ERRORS
    | {"RepoDeactivated", "AccountDeactivated"}
)
REPORT_REASONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("spam",), "com.atproto.moderation.defs#reasonSpam"),
    (("threat", "violen"), "com.atproto.moderation.defs#reasonViolation"),
    (("sexual", "nud"), "com.atproto.moderation.defs#reasonSexual"),
    (("abus", "harass", "rude", "bully", "hate"), "com.atproto.moderation.defs#reasonRude"),
    (("mislead", "impersonat"), "com.atproto.moderation.defs#reasonMisleading"),
)
REASON_OTHER = "com.atproto.moderation.defs#reasonOther"

CURSOR_PREFIX = "bsky1:"


class MemorySessionStore:
    """A session store held in memory (tests, or one process reusing sessions)."""

    def __init__(self, value: str | None = None) -> None:
        self._value = value
        self.writes = 0  # how many times a session was stored (login or refresh)

    def get(self) -> str | None:
        """The stored session string, if any."""
        return self._value

    def set(self, value: str) -> None:
        """Keep a new or refreshed session string."""
        self._value = value
        self.writes += 1

    def __repr__(self) -> str:  # the session string is a credential
        return f"MemorySessionStore(stored={self._value is not None})"


# Without an injected store, connectors in one process share sessions per
# (service, identifier, password) so that a fresh connector per poll does not log in.
_PROCESS_STORES: dict[str, MemorySessionStore] = {}
_PROCESS_STORES_LOCK = threading.Lock()


def _process_store(service_url: str, identifier: str, password: str) -> MemorySessionStore:
    key = hashlib.sha256(
        "\0".join((service_url, identifier.lower(), password)).encode()
    ).hexdigest()
    with _PROCESS_STORES_LOCK:
        return _PROCESS_STORES.setdefault(key, MemorySessionStore())


@dataclass(frozen=True)
class _Entry:
    """One row of a newest-first listing: identity, sort time and what it carries."""

    uri: str
    ts: int  # sort time, epoch milliseconds
    payload: Any = None  # None: it orders the listing but is never delivered


@dataclass(frozen=True)
class _Walk:
    """What walking a newest-first listing found."""

    new: list[_Entry]
    mark: dict[str, Any]
    more: bool


class BlueskyConnector(Connector):
    """Bluesky through the PDS (app password) or the public AppView (read-only)."""

    PLATFORM: ClassVar[Platform] = Platform.BLUESKY
    CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.OWN_POSTS,
            Capability.REPLIES,
            Capability.NOTIFICATIONS,
            Capability.MENTIONS,
            Capability.HIDE,
            Capability.UNHIDE,
            Capability.BLOCK,
            Capability.MUTE,
            Capability.REPORT,
            Capability.REPLY,
            Capability.DELETE_OWN,
        }
    )
    PUBLIC_CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.OWN_POSTS, Capability.REPLIES, Capability.MENTIONS}
    )
    OPTIONAL_CREDENTIALS: ClassVar[frozenset[str]] = frozenset({"app_password"})
    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "service_url",
            "public_url",
            "search_lang",
            "timeout",
            "retries",
            "page_size",
            "max_pages",
            "max_threads_per_poll",
            "overlap_seconds",
            "backfill_days",
            "report_service_did",
        }
    )

    def __init__(self, account: AccountRef, *, session_store: SessionStore | None = None) -> None:
        super().__init__(account)
        options = account.options
        self.service_url = str(options.get("service_url") or DEFAULT_SERVICE_URL).rstrip("/")
        self.public_url = str(options.get("public_url") or DEFAULT_PUBLIC_URL).rstrip("/")
        self.search_lang: str | None = options.get("search_lang") or None
        self.timeout = float(options.get("timeout", 15.0))
        self.retries = int(options.get("retries", 2))
        self.page_size = int(options.get("page_size", 50))
        self.max_pages = max(1, int(options.get("max_pages", 5)))
        self.max_threads = max(1, int(options.get("max_threads_per_poll", 25)))
        self.overlap_ms = int(float(options.get("overlap_seconds", 600)) * 1000)
        self.backfill = timedelta(days=float(options.get("backfill_days", 7)))
        self.report_service_did: str | None = options.get("report_service_did") or None
        self._password = account.credentials.get("app_password") or None
        if self._password and session_store is None:
            session_store = _process_store(self.service_url, account.handle, self._password)
        self._store = session_store
        self._requests = 0
        self._client: Any = None  # PDS client (authenticated) or public AppView client
        self._public: Any = None  # public AppView client, for what blocks hide from us
        self.did: str | None = None
        self.handle = account.handle

    # ------------------------------------------------------------ session

    @property
    def authenticated(self) -> bool:
        """Whether this connector acts as the account (app password) or reads publicly."""
        return self._password is not None

    def _count(self, _request: httpx.Request) -> None:
        self._requests += 1

    def _new_client(self, base_url: str) -> Any:
        request = Request(timeout=self.timeout, event_hooks={"request": [self._count]})
        return Client(base_url=base_url, request=request)

    def connect(self) -> frozenset[Capability]:
        """Reuse the stored session (or log in once); public mode resolves the handle."""
        self.close()
        if not self._password:
            self._client = self._public = self._new_client(self.public_url)
            self.did = self._resolve_did(self.account.handle)
            self.granted = self.PUBLIC_CAPABILITIES
            return self.granted
        self._client = self._new_client(self.service_url)
        self._client.on_session_change(self._on_session_change)
        stored = self._store.get() if self._store else None
        if stored and self._session_matches(stored):
            # Importing makes no request; an expired token is refreshed on first use.
            self._client.login(session_string=stored, fetch_bsky_profile=False)
        else:
            self._login()
        session = self._client._session  # the library keeps the session here; no public getter
        self.did, self.handle = session.did, session.handle
        self.granted = self.CAPABILITIES
        return self.granted

    def _session_matches(self, stored: str) -> bool:
        try:
            session = Session.decode(stored)
        except ValueError:
            return False
        wanted = self.account.handle.lower().lstrip("@")
        return wanted in {session.handle.lower(), session.did.lower()}

    def use_session_store(self, store: SessionStore) -> None:
        """Keep the session in ``store`` (the core's persistent one); call before ``connect``."""
        if self._password:
            self._store = store

    def _on_session_change(self, event: SessionEvent, session: Session) -> None:
        if self._store is not None and event in (SessionEvent.CREATE, SessionEvent.REFRESH):
            self._store.set(session.export())

    def _login(self) -> None:
        # createSession goes to the entryway; the session then points at the account's PDS.
        self._client.update_base_url(self.service_url)
        try:
            self._client.login(
                login=self.account.handle.lstrip("@"),
                password=self._password,
                fetch_bsky_profile=False,
            )
        except (AtProtocolError, httpx.HTTPError) as exc:
            error = _translate(exc)
            if isinstance(error, (RateLimited, TransientError)):
                raise error from exc
            raise AuthError(f"Bluesky login failed for {self.account.handle!r}: {error}") from exc

    def _renew_session(self) -> None:
        """Refresh the session, else take a newer stored one, else log in again."""
        current = self._client._session.export() if self._client._session else None
        try:
            # The library refreshes by itself only shortly before expiry; this is its
            # own refresh call (no public one), used when the server refused the token.
            self._client._refresh_and_set_session()
            return
        except (AtProtocolError, httpx.HTTPError) as exc:
            error = _translate(exc)
            if isinstance(error, (RateLimited, TransientError)):
                raise error from exc
        # Refresh tokens are single-use: another process may have refreshed first and
        # stored the result. Take that session rather than spend a createSession.
        stored = self._store.get() if self._store else None
        if stored and stored != current and self._session_matches(stored):
            self._client.login(session_string=stored, fetch_bsky_profile=False)
            return
        self._login()

    def _connected(self) -> Any:
        if self._client is None:
            self.connect()
        return self._client

    def _public_client(self) -> Any:
        if self._public is None:
            self._public = self._new_client(self.public_url)
        return self._public

    def close(self) -> None:
        """Release the HTTP connections (the session stays in its store)."""
        for client in {id(c): c for c in (self._client, self._public) if c is not None}.values():
            client.request.close()
        self._client = self._public = None

    # ------------------------------------------------------------ calling

    def _call(self, fn: Callable[[], T], *, idempotent: bool = True) -> T:
        """Run one library call, translating errors; idempotent reads are retried."""
        if idempotent and self.retries > 0:
            return with_retries(lambda: self._guarded(fn), attempts=self.retries, base=0.25, cap=2)
        return self._guarded(fn)

    def _guarded(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (AtProtocolError, httpx.HTTPError) as exc:
            if not self._password:
                # No credentials to be wrong: the public API refuses this (Bluesky
                # often closes unauthenticated search), so it is not possible here.
                error = _translate(exc)
                if isinstance(error, AuthError):
                    raise NotSupported(
                        f"Bluesky refused an unauthenticated request ({error}); "
                        "give the account an app password"
                    ) from exc
                raise error from exc
            if not _token_problem(exc):
                raise _translate(exc) from exc
        # The access token expired or was rejected: renew once and try again.
        self._renew_session()
        try:
            return fn()
        except (AtProtocolError, httpx.HTTPError) as exc:
            error = _translate(exc)
            if _token_problem(exc):
                error = AuthError(f"Bluesky rejected the renewed session: {error}")
            raise error from exc

    def _resolve_did(self, actor: str) -> str:
        actor = actor.lstrip("@")
        if actor.startswith("did:"):
            return actor
        params = models.ComAtprotoIdentityResolveHandle.Params(handle=actor)
        try:
            response = self._call(lambda: self._client.com.atproto.identity.resolve_handle(params))
        except Gone as exc:
            raise AuthError(f"Bluesky handle {actor!r} does not resolve") from exc
        except ConnectorError as exc:
            if type(exc) is ConnectorError:  # 400 "Unable to resolve handle"
                raise AuthError(f"Bluesky handle {actor!r} does not resolve: {exc}") from exc
            raise
        return str(response.did)

    # ------------------------------------------------------------ cursors

    def _load(self, cursor: str | None) -> dict[str, Any]:
        if not cursor:
            return {}
        if cursor.startswith(CURSOR_PREFIX):
            try:
                state = json.loads(cursor[len(CURSOR_PREFIX) :])
            except ValueError:
                state = None
            if isinstance(state, dict):
                return state
        log.warning("ignoring an unreadable Bluesky cursor for %s", self.account.key)
        return {}

    @staticmethod
    def _dump(state: Mapping[str, Any]) -> str:
        return CURSOR_PREFIX + json.dumps(state, separators=(",", ":"), sort_keys=True)

    def _floor(self) -> int:
        return _ms(datetime.now(UTC) - self.backfill)

    def _walk(
        self,
        mark: Mapping[str, Any],
        fetch: Callable[[str | None], tuple[list[_Entry], str | None, bool]],
    ) -> _Walk:
        """Walk a newest-first listing down to what an earlier poll already saw.

        ``fetch(api_cursor)`` returns one page: entries, the next API cursor and
        whether the page was full. ``mark`` is this listing's part of the cursor.
        """
        top: int | None = mark.get("top")
        seen: dict[str, int] = dict(mark.get("seen", {}))
        back: Mapping[str, Any] = mark.get("back") or {}
        api_cursor: str | None = back.get("c")
        found: dict[str, int] = dict(back.get("acc", {}))  # entries met by this walk
        floor = top - self.overlap_ms if top is not None else int(mark.get("floor", self._floor()))
        new: list[_Entry] = []
        delivered: set[str] = set()
        for page in range(1, self.max_pages + 1):
            entries, next_cursor, full = fetch(api_cursor)
            ended = False
            for entry in entries:
                if entry.ts < floor:
                    ended = True
                    break
                found[entry.uri] = max(entry.ts, found.get(entry.uri, entry.ts))
                if entry.uri in seen or entry.uri in delivered or entry.payload is None:
                    continue
                delivered.add(entry.uri)
                new.append(entry)
            if found:  # keep only the overlap window behind the newest entry met
                newest = max(found.values())
                found = {u: t for u, t in found.items() if t >= newest - self.overlap_ms}
            if ended or not next_cursor or not full or not entries:
                break
            if page == self.max_pages:  # bounded work: continue this backlog next poll
                backlog = {"c": next_cursor, "acc": found}
                state = {"top": top, "seen": seen, "back": backlog}
                if top is None:
                    state["floor"] = floor
                return _Walk(new, state, more=True)
            api_cursor = next_cursor
        candidates = [t for t in (top, *found.values()) if t is not None]
        if not candidates:
            return _Walk(new, {"top": None, "seen": {}}, more=False)
        new_top = max(candidates)
        window = {**seen, **found}
        seen = {u: t for u, t in window.items() if t >= new_top - self.overlap_ms}
        return _Walk(new, {"top": new_top, "seen": seen}, more=False)

    # ------------------------------------------------------------ reading

    def poll_posts(self, cursor: str | None) -> Page:
        """The account's own new top-level posts (reposts and replies are left out)."""
        self.require(Capability.OWN_POSTS)
        client = self._connected()
        start = self._requests
        actor = self.did or self.account.handle

        def fetch(api_cursor: str | None) -> tuple[list[_Entry], str | None, bool]:
            params = models.AppBskyFeedGetAuthorFeed.Params(
                actor=actor, filter="posts_no_replies", limit=self.page_size, cursor=api_cursor
            )
            response = self._call(lambda: client.app.bsky.feed.get_author_feed(params))
            entries = []
            for row in response.feed:
                view = raw_json(row.post)
                reason = raw_json(row.reason) if row.reason is not None else {}
                if reason.get("$type", "").endswith("#reasonRepost"):
                    ts = _ms(_parse_time(reason.get("indexedAt")))
                    entries.append(_Entry(f"{view['uri']}#repost", ts))
                    continue
                entries.append(_Entry(view["uri"], _sort_ms(view), view))
            return entries, response.cursor, len(response.feed) >= self.page_size

        walk = self._walk(self._load(cursor), fetch)
        items = tuple(self._item(e.payload, ItemKind.POST) for e in walk.new)
        return Page(items, self._dump(walk.mark), walk.more, self._requests - start)

    def poll_replies(self, post_ids: Sequence[str], cursor: str | None) -> Page:
        """New replies at any depth under the given own posts (one thread read per post).

        At most ``max_threads_per_poll`` threads are read per poll; a sweep over
        more posts continues on the next poll (``more``), never-read posts first.
        """
        self.require(Capability.REPLIES)
        client = self._connected()
        start = self._requests
        state = self._load(cursor)
        threads: dict[str, dict[str, Any]] = dict(state.get("threads", {}))
        sweep = int(state.get("sweep", 0))
        watched = list(dict.fromkeys(post_ids))
        pending = [uri for uri in watched if threads.get(uri, {}).get("s", 0) < sweep]
        if not pending:
            sweep += 1
            pending = watched
        pending.sort(key=lambda uri: threads.get(uri, {}).get("s", 0))
        batch = pending[: self.max_threads]
        items: list[Item] = []
        for root_uri in batch:
            mark = threads.get(root_uri, {})
            params = models.AppBskyFeedGetPostThread.Params(
                uri=root_uri, depth=MAX_THREAD_DEPTH, parent_height=0
            )
            try:
                response = self._call(partial(client.app.bsky.feed.get_post_thread, params))
            except Gone:  # the post itself is gone: nothing left to read under it
                threads[root_uri] = {**mark, "s": sweep}
                continue
            replies = _thread_replies(raw_json(response.thread))
            new, mark = self._unseen(mark, replies)
            items += [self._item(view, ItemKind.REPLY) for view in new]
            threads[root_uri] = {**mark, "s": sweep}
        # Posts no longer watched are forgotten, which keeps the cursor bounded.
        threads = {uri: threads[uri] for uri in watched if uri in threads}
        more = len(pending) > len(batch)
        new_state = {"sweep": sweep, "threads": threads}
        return Page(tuple(items), self._dump(new_state), more, self._requests - start)

    def _unseen(
        self, mark: Mapping[str, Any], views: Iterable[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Replies not delivered before, by URI within the overlap window, by time before it.

        A thread is not ordered, so replies are told apart by the AppView's
        indexedAt (server time, so a late-indexed reply looks new, as it is).
        """
        top: int | None = mark.get("top")
        seen: dict[str, int] = dict(mark.get("seen", {}))
        floor = top - self.overlap_ms if top is not None else None
        new = []
        for view in views:
            ts = _ms(_parse_time(view.get("indexedAt")))
            if view["uri"] in seen or (floor is not None and ts < floor):
                continue
            seen[view["uri"]] = ts
            new.append(view)
        times = [t for t in (top, *seen.values()) if t is not None]
        if not times:
            return new, {}
        new_top = max(times)
        seen = {u: t for u, t in seen.items() if t >= new_top - self.overlap_ms}
        return new, {"top": new_top, "seen": seen}

    def poll_notifications(self, cursor: str | None) -> Page:
        """New replies, mentions and quotes addressed to the account."""
        self.require(Capability.NOTIFICATIONS)
        client = self._connected()
        start = self._requests

        def fetch(api_cursor: str | None) -> tuple[list[_Entry], str | None, bool]:
            params = models.AppBskyNotificationListNotifications.Params(
                limit=self.page_size, cursor=api_cursor, reasons=list(NOTIFICATION_REASONS)
            )
            response = self._call(lambda: client.app.bsky.notification.list_notifications(params))
            entries = []
            for notification in response.notifications:
                data = raw_json(notification)
                deliver = data if data.get("reason") in NOTIFICATION_REASONS else None
                entries.append(_Entry(data["uri"], _sort_ms(data), deliver))
            return entries, response.cursor, len(response.notifications) >= self.page_size

        walk = self._walk(self._load(cursor), fetch)
        notifications = [e.payload for e in walk.new]
        views = self._post_views([n["uri"] for n in notifications])
        items = []
        for note in notifications:
            kind = NOTIFICATION_REASONS[note["reason"]]
            # A post hidden from us (blocked author) still made a notification: keep it.
            view = views.get(note["uri"]) or {k: note[k] for k in _VIEW_KEYS if k in note}
            items.append(self._item(view, kind))
        return Page(tuple(items), self._dump(walk.mark), walk.more, self._requests - start)

    def poll_mentions(self, terms: Sequence[str], cursor: str | None) -> Page:
        """New public posts naming any of ``terms`` (search, then a case-insensitive check)."""
        self.require(Capability.MENTIONS)
        client = self._connected()
        start = self._requests
        state = self._load(cursor)
        marks: dict[str, Any] = dict(state.get("terms", {}))
        wanted = list(dict.fromkeys(t.strip() for t in terms if t.strip()))
        items: list[Item] = []
        delivered: set[str] = set()
        more = False
        new_marks: dict[str, Any] = {}
        for term in wanted:
            key = term.casefold()
            pattern = _term_pattern(term)
            mark = marks.get(key, {})
            top = mark.get("top")
            since = top - self.overlap_ms if top is not None else mark.get("floor", self._floor())
            walk = self._walk(mark, partial(self._search_page, client, term, since))
            new_marks[key] = walk.mark
            more = more or walk.more
            for entry in walk.new:
                view = entry.payload
                if entry.uri in delivered or _author_did(view) == self.did:
                    continue
                if not pattern.search(_searchable_text(view)):
                    continue  # search is looser than the school's terms
                delivered.add(entry.uri)
                items.append(self._item(view, ItemKind.MENTION))
        new_state = {"terms": new_marks}
        return Page(tuple(items), self._dump(new_state), more, self._requests - start)

    def _search_page(
        self, client: Any, term: str, since: int, api_cursor: str | None
    ) -> tuple[list[_Entry], str | None, bool]:
        params = models.AppBskyFeedSearchPosts.Params(
            q=term,
            sort="latest",
            limit=self.page_size,
            cursor=api_cursor,
            lang=self.search_lang,
            since=_iso(since),  # production search honours it; the local one ignores it
        )
        response = self._call(lambda: client.app.bsky.feed.search_posts(params))
        views = [raw_json(post) for post in response.posts]
        entries = [_Entry(view["uri"], _sort_ms(view), view) for view in views]
        if not self.authenticated:
            # The public AppView refuses search paging without a session, so a
            # public poll reads the newest page only (a busier term needs an app password).
            return entries, None, False
        return entries, response.cursor, len(views) >= self.page_size

    def fetch(self, platform_id: str) -> Fetched:
        """Re-read one post: visible, hidden by the root's threadgate, or gone and why."""
        client = self._connected()
        params = models.AppBskyFeedGetPostThread.Params(uri=platform_id, depth=0, parent_height=0)
        try:
            response = self._call(lambda: client.app.bsky.feed.get_post_thread(params))
        except Gone:
            return Fetched(self._why_gone(platform_id))
        thread = raw_json(response.thread)
        gate = raw_json(response.threadgate) if response.threadgate is not None else {}
        hidden = platform_id in gate.get("record", {}).get("hiddenReplies", [])
        kind_of = thread.get("$type", "")
        if kind_of.endswith("#notFoundPost"):
            return Fetched(self._why_gone(platform_id))
        view: dict[str, Any] | None = thread.get("post")
        if kind_of.endswith("#blockedPost") and self.authenticated:
            # A block between the school and the author hides the post from the
            # school only; the public view says whether it is still up.
            view = self._public_view(platform_id)
            if view is None:
                return Fetched(self._why_gone(platform_id))
        if view is None:
            return Fetched(Visibility.HIDDEN if hidden else Visibility.VISIBLE)
        labels = {label.get("val") for label in view.get("labels", [])}
        if labels & REMOVAL_LABELS:
            return Fetched(Visibility.REMOVED, self._item(view, self._kind_of(view)))
        visibility = Visibility.HIDDEN if hidden else Visibility.VISIBLE
        return Fetched(visibility, self._item(view, self._kind_of(view)))

    def _public_view(self, uri: str) -> dict[str, Any] | None:
        public = self._public_client()
        params = models.AppBskyFeedGetPostThread.Params(uri=uri, depth=0, parent_height=0)
        try:
            response = self._call(lambda: public.app.bsky.feed.get_post_thread(params))
        except Gone:
            return None
        post = raw_json(response.thread).get("post")
        return post if isinstance(post, dict) else None

    def _why_gone(self, uri: str) -> Visibility:
        """Ask the author's repository whether the record was deleted or withheld."""
        try:
            self._get_record(uri)
        except Gone as exc:
            cause = exc.__cause__
            name = _error_name(cause) if cause else None
            message = _error_message(cause).lower() if cause else ""
            if name in TAKEDOWN_ERRORS or "takendown" in message or "taken down" in message:
                return Visibility.REMOVED
            if name == "RecordNotFound":
                return Visibility.DELETED
            return Visibility.NOT_FOUND  # the whole repository is gone or unreachable
        except ConnectorError as exc:
            if isinstance(exc, (RateLimited, TransientError, AuthError)):
                raise
            return Visibility.NOT_FOUND
        # The record still exists but the AppView will not show it: moderated away.
        return Visibility.REMOVED

    def _post_views(self, uris: Sequence[str]) -> dict[str, dict[str, Any]]:
        views: dict[str, dict[str, Any]] = {}
        for start in range(0, len(uris), GET_POSTS_BATCH):
            params = models.AppBskyFeedGetPosts.Params(
                uris=list(uris[start : start + GET_POSTS_BATCH])
            )
            response = self._call(partial(self._client.app.bsky.feed.get_posts, params))
            for post in response.posts:
                view = raw_json(post)
                views[view["uri"]] = view
        return views

    # ------------------------------------------------------------ acting

    def _own_did(self) -> str:
        self._connected()
        if not self.did:
            raise AuthError("not logged in to Bluesky")
        return self.did

    def _get_record(self, uri: str) -> dict[str, Any]:
        """Read a record from its repository (strongly consistent on its own PDS)."""
        repo, collection, rkey = _split_uri(uri)
        params = models.ComAtprotoRepoGetRecord.Params(repo=repo, collection=collection, rkey=rkey)
        response = self._call(lambda: self._client.com.atproto.repo.get_record(params))
        return raw_json(response)

    def _gated_root(self, item: Item) -> str:
        """The root of the thread ``item`` replies in, which must be the account's own post."""
        did = self._own_did()
        root = item.root_id or item.parent_id
        if root is None:
            raise NotSupported("only replies can be hidden on Bluesky; this post is not a reply")
        if _split_uri(root)[0] != did:
            raise NotSupported(
                "Bluesky hides replies only in threads the account started "
                f"(thread root {root} belongs to someone else)"
            )
        return root

    def _read_gate(self, root_uri: str) -> tuple[dict[str, Any] | None, str | None]:
        did, _, rkey = _split_uri(root_uri)
        try:
            found = self._get_record(f"at://{did}/{THREADGATE_COLLECTION}/{rkey}")
        except Gone:
            return None, None
        return dict(found["value"]), str(found["cid"])

    def _write_gate(self, root_uri: str, record: dict[str, Any], swap: str | None) -> None:
        did, _, rkey = _split_uri(root_uri)
        client = self._client
        if swap is None:
            data = models.ComAtprotoRepoCreateRecord.Data(
                repo=did, collection=THREADGATE_COLLECTION, rkey=rkey, record=record
            )
            self._call(lambda: client.com.atproto.repo.create_record(data), idempotent=False)
        else:
            put = models.ComAtprotoRepoPutRecord.Data(
                repo=did,
                collection=THREADGATE_COLLECTION,
                rkey=rkey,
                record=record,
                swap_record=swap,
            )
            self._call(lambda: client.com.atproto.repo.put_record(put), idempotent=False)

    def _change_gate(self, root: str, change: Callable[[list[str]], list[str]]) -> None:
        """Rewrite the root post's threadgate hiddenReplies with ``change``."""
        for attempt in range(2):  # a concurrent edit makes the swap fail: re-read once
            record, cid = self._read_gate(root)
            hidden = list((record or {}).get("hiddenReplies", []))
            changed = change(hidden)
            if changed == hidden:
                return
            if record is None:
                self._get_record(root)  # raises Gone when the thread root was deleted
                record = {"$type": THREADGATE_COLLECTION, "post": root, "createdAt": _now_iso()}
            # Only hiddenReplies changes: "allow" (who may reply) is kept exactly,
            # and absent stays absent (an empty list would stop all replies).
            record["hiddenReplies"] = changed
            try:
                self._write_gate(root, record, cid)
                return
            except ConnectorError as exc:
                conflict = "InvalidSwap" in str(exc) or "already exists" in str(exc).lower()
                if attempt or not conflict or isinstance(exc, (AuthError, RateLimited)):
                    raise

    def hide(self, item: Item) -> None:
        """Hide a reply in the account's own thread via the root post's threadgate."""
        self.require(Capability.HIDE)
        root = self._gated_root(item)
        self._get_record(item.platform_id)  # raises Gone when the reply was deleted

        def add(hidden: list[str]) -> list[str]:
            if item.platform_id in hidden:
                return hidden
            if len(hidden) >= MAX_HIDDEN_REPLIES:
                raise NotSupported(
                    f"Bluesky allows at most {MAX_HIDDEN_REPLIES} hidden replies per thread; "
                    f"the thread {root} is full, so this reply cannot be hidden"
                )
            return [*hidden, item.platform_id]

        self._change_gate(root, add)

    def unhide(self, item: Item) -> None:
        """Take a reply off the root post's threadgate hidden list."""
        self.require(Capability.UNHIDE)
        root = self._gated_root(item)
        self._change_gate(root, lambda hidden: [u for u in hidden if u != item.platform_id])

    def _viewer(self, author: Author) -> dict[str, Any]:
        params = models.AppBskyActorGetProfile.Params(actor=author.id)
        profile = self._call(lambda: self._client.app.bsky.actor.get_profile(params))
        viewer: dict[str, Any] = raw_json(profile).get("viewer", {})
        return viewer

    def block(self, author: Author) -> None:
        """Block the author (a graph.block record); already blocked is fine."""
        self.require(Capability.BLOCK)
        did = self._own_did()
        if self._viewer(author).get("blocking"):
            return
        record = models.AppBskyGraphBlock.Record(subject=author.id, created_at=_now_iso())
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=did, collection=BLOCK_COLLECTION, record=record
        )
        self._call(lambda: self._client.com.atproto.repo.create_record(data), idempotent=False)

    def mute(self, author: Author) -> None:
        """Mute the author (private to the account); already muted is fine."""
        self.require(Capability.MUTE)
        self._own_did()
        if self._viewer(author).get("muted"):
            return
        data = models.AppBskyGraphMuteActor.Data(actor=author.id)
        self._call(lambda: self._client.app.bsky.graph.mute_actor(data), idempotent=False)

    def report(self, item: Item, *, reason: str) -> str | None:
        """Report the post to the moderation service; returns the report id."""
        self.require(Capability.REPORT)
        self._own_did()
        found = self._get_record(item.platform_id)  # raises Gone; gives the current cid
        subject = models.ComAtprotoRepoStrongRef.Main(uri=item.platform_id, cid=found["cid"])
        data = models.ComAtprotoModerationCreateReport.Data(
            reason_type=_reason_type(reason), reason=reason[:2000], subject=subject
        )
        if not self.report_service_did:  # the PDS sends it to its own report service
            create = self._client.com.atproto.moderation.create_report
            return str(self._call(partial(create, data), idempotent=False).id)
        labeler = self._client.AtprotoServiceType.ATPROTO_LABELER
        proxied = self._client.with_proxy(labeler, self.report_service_did)
        try:
            create = proxied.com.atproto.moderation.create_report
            return str(self._call(partial(create, data), idempotent=False).id)
        finally:
            proxied.request.close()

    def reply(self, item: Item, text: str) -> Item:
        """Reply publicly as the account; returns the new post."""
        self.require(Capability.REPLY)
        did = self._own_did()
        parent = self._get_record(item.platform_id)  # raises Gone
        parent_ref = {"uri": parent["uri"], "cid": parent["cid"]}
        root_ref = parent.get("value", {}).get("reply", {}).get("root") or parent_ref
        record: dict[str, Any] = {
            "$type": POST_COLLECTION,
            "text": text,
            "createdAt": _now_iso(),
            "langs": ["en"],
            "reply": {"root": root_ref, "parent": parent_ref},
        }
        facets = facet_detection.detect_facets(text)  # links and tags; no network
        if facets:
            record["facets"] = [raw_json(f) for f in facets]
        data = models.ComAtprotoRepoCreateRecord.Data(
            repo=did, collection=POST_COLLECTION, record=record
        )
        try:
            created = self._call(
                lambda: self._client.com.atproto.repo.create_record(data), idempotent=False
            )
        except ConnectorError as exc:
            if type(exc) is ConnectorError and "InvalidRecord" in str(exc):
                raise NotSupported(f"Bluesky refused the reply: {exc}") from exc
            raise
        view = {
            "uri": created.uri,
            "cid": created.cid,
            "author": {"did": did, "handle": self.handle},
            "record": record,
            "indexedAt": record["createdAt"],
        }
        return self._item(view, ItemKind.REPLY)

    def delete_own(self, item: Item) -> None:
        """Delete a post the account itself wrote."""
        self.require(Capability.DELETE_OWN)
        did = self._own_did()
        repo, collection, rkey = _split_uri(item.platform_id)
        if repo != did:
            raise NotSupported("Bluesky accounts can delete only their own posts")
        self._get_record(item.platform_id)  # raises Gone when already deleted
        data = models.ComAtprotoRepoDeleteRecord.Data(repo=did, collection=collection, rkey=rkey)
        self._call(lambda: self._client.com.atproto.repo.delete_record(data), idempotent=False)

    # ------------------------------------------------------------ items

    def _kind_of(self, view: Mapping[str, Any]) -> ItemKind:
        if view.get("record", {}).get("reply"):
            return ItemKind.REPLY
        return ItemKind.POST if _author_did(view) == self.did else ItemKind.MENTION

    def _item(self, view: Mapping[str, Any], kind: ItemKind) -> Item:
        """An Item from a post view (camelCase JSON, as the AppView sends it)."""
        record = view.get("record", {})
        author = view.get("author", {})
        did = str(author.get("did", _split_uri(view["uri"])[0]))
        handle = str(author.get("handle") or did)
        profile = did if handle in ("", "handle.invalid") else handle
        reply = record.get("reply") or {}
        created = _parse_time(record.get("createdAt"), fallback=view.get("indexedAt"))
        engagement = {
            "likes": int(view.get("likeCount") or 0),
            "reposts": int(view.get("repostCount") or 0),
            "replies": int(view.get("replyCount") or 0),
            "quotes": int(view.get("quoteCount") or 0),
        }
        return Item(
            platform=Platform.BLUESKY,
            platform_id=view["uri"],
            kind=kind,
            url=f"{WEB_URL}/profile/{profile}/post/{_split_uri(view['uri'])[2]}",
            author=Author(id=did, handle=handle, display_name=author.get("displayName") or None),
            text=str(record.get("text", "")),
            created_at=created,
            parent_id=(reply.get("parent") or {}).get("uri"),
            root_id=(reply.get("root") or {}).get("uri"),
            is_own=did == self.did,
            engagement=engagement,
            raw=dict(view),
        )


# ---------------------------------------------------------------- helpers

_VIEW_KEYS = ("uri", "cid", "author", "record", "indexedAt", "labels")


def _translate(exc: BaseException) -> ConnectorError:
    """Map an atproto or httpx error onto the connector errors."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, RateLimitExceededError):
        return RateLimited(_retry_after(exc), f"Bluesky rate limit: {exc}")
    if isinstance(exc, (InvokeTimeoutError, NetworkError)):
        cause = exc.__cause__ or exc
        return TransientError(f"Bluesky network error: {type(cause).__name__}: {cause}")
    if isinstance(exc, httpx.HTTPError):
        return TransientError(f"Bluesky network error: {type(exc).__name__}: {exc}")
    if isinstance(exc, LoginRequiredError):
        return AuthError("Bluesky session missing: log in again")
    if isinstance(exc, UnauthorizedError):
        return AuthError(f"Bluesky refused the credentials: {exc}")
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        status = exc.response.status_code
        if _not_found(exc):
            return Gone(f"Bluesky: {exc}")
        if status >= 500:
            return TransientError(f"Bluesky server error: {exc}")
        if _error_name(exc) in TOKEN_ERRORS:
            return AuthError(f"Bluesky session rejected: {exc}")
        return ConnectorError(f"Bluesky request failed: {exc}")
    if isinstance(exc, ModelError):
        return TransientError(f"Bluesky sent an unexpected response: {exc}")
    return ConnectorError(f"Bluesky error: {type(exc).__name__}: {exc}")


def _error_name(exc: BaseException) -> str | None:
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        content = exc.response.content
        name = getattr(content, "error", None)
        return str(name) if name else None
    return None


def _error_message(exc: BaseException) -> str:
    if isinstance(exc, RequestErrorBase) and exc.response is not None:
        return str(getattr(exc.response.content, "message", "") or "")
    return ""


def _token_problem(exc: BaseException) -> bool:
    """The access token (not the password) was refused: refreshing can help."""
    if isinstance(exc, LoginRequiredError):
        return True
    return isinstance(exc, BadRequestError) and _error_name(exc) in TOKEN_ERRORS


def _not_found(exc: RequestErrorBase) -> bool:
    if exc.response is None or exc.response.status_code not in (400, 404):
        return False
    if _error_name(exc) in NOT_FOUND_ERRORS:
        return True
    message = _error_message(exc).lower()
    return "not found" in message or "could not find" in message or "could not locate" in message


def _retry_after(exc: RateLimitExceededError) -> float:
    if exc.retry_after is not None:
        return float(exc.retry_after)
    reset_at: datetime | None = exc.reset_at
    if reset_at is not None:
        return max(0.0, (reset_at - datetime.now(UTC)).total_seconds())
    return 60.0  # no hint: the smallest Bluesky rate-limit window is minutes long


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
    if len(parts) != 3 or not all(parts):
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
