"""Reading Bluesky: own posts, replies, notifications, search and re-fetching."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from atproto import models

from connectors.base import (
    AuthError,
    Capability,
    ConnectorError,
    Fetched,
    Gone,
    Item,
    Page,
    RateLimited,
    TransientError,
    Visibility,
    raw_json,
)
from connectors.bluesky.client import BlueskyClient, _Entry
from connectors.bluesky.errors import TAKEDOWN_ERRORS, _error_message, _error_name
from connectors.bluesky.records import (
    _VIEW_KEYS,
    GET_POSTS_BATCH,
    MAX_THREAD_DEPTH,
    NOTIFICATION_REASONS,
    REMOVAL_LABELS,
    _author_did,
    _iso,
    _ms,
    _parse_time,
    _searchable_text,
    _sort_ms,
    _term_pattern,
    _thread_replies,
)
from monitor.constants import ItemKind


class BlueskyReader(BlueskyClient):
    """The polling streams and ``fetch``."""

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
