"""Reading reddit: listings, own posts, inbox, moderated communities, search, threads, fetch."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from connectors.base import (
    Capability,
    Fetched,
    Gone,
    Item,
    NotSupported,
    Page,
    Visibility,
)
from connectors.reddit.client import RedditClient
from connectors.reddit.convert import _AUTHOR_DELETED, MORECHILDREN_BATCH, _split
from connectors.reddit.listing import Key, _Gap, _key, _ListingCursor
from monitor.constants import ItemKind


class RedditReader(RedditClient):
    """The polling streams and ``fetch``."""

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
        walk = _ListingWalk(self, path, params, budget)
        if not state.started:
            walk.first_page(state)
            return self._ordered(walk.found), walk.used, False
        walk.fill_gap(state)
        if state.gap is not None or not walk.budget_left:
            # Gap still open, or just closed with no budget left to look above the top.
            return self._ordered(walk.found), walk.used, True
        walk.read_above_top(state)
        return self._ordered(walk.found), walk.used, state.gap is not None

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


Thing = tuple[str, dict[str, Any]]


class _ListingWalk:
    """One poll of a newest-first listing: the pages it reads and the things it finds."""

    def __init__(
        self, reader: RedditReader, path: str, params: Mapping[str, str | int], budget: int
    ) -> None:
        self._reader = reader
        self._path = path
        self._params = params
        self._budget = budget
        self.found: dict[str, tuple[Key, str, dict[str, Any]]] = {}
        self.used = 0

    @property
    def budget_left(self) -> bool:
        return self.used < self._budget

    def fetch(self, after: str | None) -> tuple[list[Thing], str | None]:
        """One page of the listing after ``after`` (from the top without it)."""
        query: dict[str, str | int] = {**self._params, "limit": self._reader.page_limit}
        if after:
            query["after"] = after
        self.used += 1
        listing = self._reader._get(self._path, query)
        data = listing["data"]
        return [(c["kind"], c["data"]) for c in data["children"]], data.get("after")

    def first_page(self, state: _ListingCursor) -> None:
        """First poll: today's page only; history before the bot started is not owed."""
        children, _ = self.fetch(None)
        for kind, data in children:
            self.found[data["name"]] = (_key(data), kind, data)
        state.started = True
        state.top = max((v[0] for v in self.found.values()), default=None)

    def fill_gap(self, state: _ListingCursor) -> None:
        """1. Fill an old gap first, so the cursor never holds more than one."""
        gap = state.gap
        anchor = gap.after if gap else None
        while gap is not None and self.budget_left:
            children, after = self.fetch(anchor)
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
                self.found[data["name"]] = (key, kind, data)
                gap.hi = key
            if closed:
                gap = None
            elif children:
                anchor = children[-1][1]["name"]
                gap.after = anchor
        state.gap = gap

    def read_above_top(self, state: _ListingCursor) -> None:
        """2. New items above the top; a new gap when the budget runs out first."""
        top = state.top
        newest: Key | None = None
        oldest: tuple[Key, str] | None = None
        anchor = None
        while self.budget_left:
            children, after = self.fetch(anchor)
            reached = after is None
            for kind, data in children:
                key = _key(data)
                if top is not None and key <= top:
                    reached = True
                    break
                self.found[data["name"]] = (key, kind, data)
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
