"""Reading Mastodon: own statuses, notifications, replies, search and re-fetching."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from connectors.base import (
    Capability,
    Fetched,
    Gone,
    Item,
    Page,
    Visibility,
)
from connectors.mastodon.client import CURSORS, MastodonClient
from connectors.mastodon.convert import MAX_PAGE_SIZE, MAX_SEARCH_GAPS, _aware, _id_key, _sid
from monitor.constants import ItemKind

log = logging.getLogger(__name__)
# a reply chain longer than this is a loop in the data, not a thread
_MAX_HOPS = 10_000


class MastodonReader(MastodonClient):
    """The polling streams and ``fetch``."""

    def poll_posts(self, cursor: str | None) -> Page:
        """The school's own new statuses (not boosts), oldest first, resuming at ``cursor``."""
        self.require(Capability.OWN_POSTS)
        state = CURSORS.load(cursor)
        start = str(state.get("after") or "0")
        before = self.requests_made
        rows, after, more, _ = self._page_after(
            lambda a: self._api.account_statuses(
                self.me_id, min_id=a, limit=self.page_size, exclude_reblogs=True
            ),
            start,
        )
        items = self._convert(lambda: tuple(self._item(row, ItemKind.POST) for row in rows))
        new_cursor = CURSORS.dump({"after": after}) if rows or cursor else None
        return Page(items=items, cursor=new_cursor, more=more, requests=self.requests_made - before)

    def poll_notifications(self, cursor: str | None) -> Page:
        """New mentions of the school: REPLY when answering the school, else MENTION."""
        self.require(Capability.NOTIFICATIONS)
        state = CURSORS.load(cursor)
        start = str(state.get("after") or "0")
        before = self.requests_made
        rows, after, more, _ = self._page_after(
            lambda a: self._api.notifications(types=["mention"], min_id=a, limit=self.page_size),
            start,
        )

        def convert() -> tuple[Item, ...]:
            out: dict[str, Item] = {}
            for note in rows:
                status = note.get("status")
                if note.get("type") != "mention" or not status or status.get("reblog"):
                    continue  # deleted since, or a type the server sent anyway
                if _sid(status["account"]["id"]) == self._me_id:
                    continue
                item = self._item(status, self._kind_for(status))
                out.setdefault(item.platform_id, item)
            return tuple(out.values())

        items = self._convert(convert)
        new_cursor = CURSORS.dump({"after": after}) if rows or cursor else None
        return Page(items=items, cursor=new_cursor, more=more, requests=self.requests_made - before)

    def poll_replies(self, post_ids: Sequence[str], cursor: str | None) -> Page:
        """New replies at any depth under the given own statuses."""
        # Federated replies can arrive late with an older id, so no id watermark is
        # trusted: per post the cursor keeps the replies seen within reply_window of
        # the newest one, and a reply older than that window counts as delivered.
        # At most max_contexts posts are read per poll; the rest continue next poll.
        self.require(Capability.REPLIES)
        state = CURSORS.load(cursor)
        posts_state: dict[str, Any] = dict(state.get("posts") or {})
        tracked = list(dict.fromkeys(_sid(p) for p in post_ids))
        tracked_set = set(tracked)
        resume = state.get("resume")
        start = tracked.index(resume) + 1 if resume in tracked_set else 0
        if start >= len(tracked):
            start = 0
        batch = tracked[start : start + self.max_contexts]
        end = start + len(batch)
        next_resume = batch[-1] if end < len(tracked) else None
        before = self.requests_made
        items: dict[str, Item] = {}
        for post_id in batch:
            try:
                context = self._read(partial(self._api.status_context, post_id))
            except Gone:
                posts_state.pop(post_id, None)  # the own post is gone: nothing more to watch
                continue
            new_items, post_state = self._convert(
                partial(self._replies_in, post_id, context, tracked_set, posts_state.get(post_id))
            )
            posts_state[post_id] = post_state
            for item in new_items:
                items.setdefault(item.platform_id, item)
        # Forget posts no longer tracked so the cursor stays bounded.
        posts_state = {p: s for p, s in posts_state.items() if p in tracked_set}
        ordered = tuple(
            sorted(items.values(), key=lambda i: (i.created_at, _id_key(i.platform_id)))
        )
        new_cursor = CURSORS.dump({"posts": posts_state, "resume": next_resume})
        return Page(
            items=ordered,
            cursor=new_cursor,
            more=next_resume is not None,
            requests=self.requests_made - before,
        )

    def _replies_in(
        self,
        post_id: str,
        context: Mapping[str, Any],
        tracked: set[str],
        post_state: Mapping[str, Any] | None,
    ) -> tuple[list[Item], dict[str, Any]]:
        """New replies in one post's context, and that post's next cursor state."""
        seen: dict[str, float] = dict((post_state or {}).get("seen") or {})
        floor = (post_state or {}).get("floor")
        ancestors = list(context.get("ancestors") or [])
        root_id = _sid(ancestors[0]["id"]) if ancestors else post_id
        descendants = list(context.get("descendants") or [])
        parent_of = {
            _sid(d["id"]): _sid(d["in_reply_to_id"]) for d in descendants if d.get("in_reply_to_id")
        }
        found: list[Item] = []
        newest = float(floor) if floor is not None else None
        for status in descendants:
            status_id = _sid(status["id"])
            if status.get("reblog") or self._owned_elsewhere(
                status_id, post_id, parent_of, tracked
            ):
                continue
            stamp = _aware(status["created_at"]).timestamp()
            newest = stamp if newest is None else max(newest, stamp)
            if _sid(status["account"]["id"]) == self._me_id:
                continue  # the school's own replies are posts, read by poll_posts
            if status_id in seen or (floor is not None and stamp < float(floor)):
                continue
            seen[status_id] = stamp
            found.append(self._item(status, ItemKind.REPLY, root_id=root_id))
        new_floor = floor
        if newest is not None:
            candidate = newest - self.reply_window.total_seconds()
            new_floor = candidate if floor is None else max(float(floor), candidate)
        if new_floor is not None:
            seen = {k: v for k, v in seen.items() if v >= float(new_floor)}
        return found, {"floor": new_floor, "seen": seen}

    @staticmethod
    def _owned_elsewhere(
        status_id: str, post_id: str, parent_of: Mapping[str, str], tracked: set[str]
    ) -> bool:
        """Whether a nearer tracked own post sits between this reply and ``post_id``."""
        current = parent_of.get(status_id)
        hops = 0
        while current is not None and current != post_id and hops < _MAX_HOPS:
            if current in tracked:
                return True  # that post's own context reports it, exactly once
            current = parent_of.get(current)
            hops += 1
        return False

    def poll_mentions(self, terms: Sequence[str], cursor: str | None) -> Page:
        """New public statuses containing any of ``terms`` (case-insensitive, post-filtered)."""
        # Per term the cursor keeps a high-water id and the id ranges still owed
        # when a page came back full (search returns the newest matches first).
        self.require(Capability.MENTIONS)
        state = CURSORS.load(cursor)
        old_terms: dict[str, Any] = dict(state.get("terms") or {})
        wanted = [t.strip() for t in terms if t and t.strip()]
        keys = list(dict.fromkeys(t.casefold() for t in wanted))
        before = self.requests_made
        found: dict[str, Item] = {}
        new_terms: dict[str, Any] = {}
        more = False
        for key in keys:
            term_state, term_more = self._search_term(key, old_terms.get(key), found)
            new_terms[key] = term_state
            more = more or term_more
        ordered = tuple(
            sorted(found.values(), key=lambda i: (i.created_at, _id_key(i.platform_id)))
        )
        return Page(
            items=ordered,
            cursor=CURSORS.dump({"terms": new_terms}),
            more=more,
            requests=self.requests_made - before,
        )

    def _search(self, term: str, *, min_id: str | None, max_id: str | None) -> list[Any]:
        result = self._read(
            lambda: self._api.search_v2(
                term,
                resolve=False,  # no webfinger lookups: this is a search, not a follow
                result_type="statuses",
                min_id=min_id,
                max_id=max_id,
                limit=MAX_PAGE_SIZE,
                exclude_unreviewed=False,  # hashtag-only flag; avoids a version probe
            )
        )
        return list(result.get("statuses") or [])

    def _search_term(
        self, key: str, term_state: Mapping[str, Any] | None, found: dict[str, Item]
    ) -> tuple[dict[str, Any], bool]:
        high = (term_state or {}).get("high")
        gaps: list[list[str]] = [list(g) for g in (term_state or {}).get("gaps") or []]
        # Fresh matches above the high-water mark.
        rows = self._search(key, min_id=high, max_id=None)
        new_high = high
        in_range = [r for r in rows if high is None or _id_key(_sid(r["id"])) > _id_key(high)]
        self._collect(key, in_range, found)
        if in_range:
            top = max(in_range, key=lambda r: _id_key(_sid(r["id"])))
            new_high = _sid(top["id"])
            bottom = min(in_range, key=lambda r: _id_key(_sid(r["id"])))
            if high is not None and len(rows) >= MAX_PAGE_SIZE:
                gaps.append([high, _sid(bottom["id"])])  # matches may remain between
        elif new_high is None and not rows:
            # Nothing matched at the first look: everything found later is new, all of it.
            new_high = "0"
        # Continue the oldest owed range, one page per poll.
        if gaps:
            low, upper = gaps.pop(0)
            rows = self._search(key, min_id=low, max_id=upper)
            between = [r for r in rows if _id_key(low) < _id_key(_sid(r["id"])) < _id_key(upper)]
            self._collect(key, between, found)
            if between and len(rows) >= MAX_PAGE_SIZE:
                lowest = min(_id_key(_sid(r["id"])) for r in between)
                gaps.insert(0, [low, str(lowest)])
            # A server that ignores min_id/max_id returns nothing in range: stop there.
        if len(gaps) > MAX_SEARCH_GAPS:
            # A flood outran the catch-up: give up the oldest ranges rather than grow forever.
            log.warning(
                "mastodon search for %r: dropping %d owed ranges", key, len(gaps) - MAX_SEARCH_GAPS
            )
            gaps = gaps[-MAX_SEARCH_GAPS:]
        return {"high": new_high, "gaps": gaps}, bool(gaps)

    def _collect(self, key: str, rows: Iterable[Any], found: dict[str, Item]) -> None:
        def convert() -> None:
            for status in rows:
                if status.get("reblog") or _sid(status["account"]["id"]) == self._me_id:
                    continue
                if self._kind_for(status) is ItemKind.REPLY:
                    continue  # a reply to the school: the replies and notifications streams own it
                item = self._item(status, ItemKind.MENTION)
                # Search may match markup, handles or stemmed words: keep real mentions only.
                if key in item.text.casefold():
                    found.setdefault(item.platform_id, item)

        self._convert(convert)

    def fetch(self, platform_id: str) -> Fetched:
        """Re-read a status: VISIBLE, HIDDEN (author limited), REMOVED (suspended) or NOT_FOUND."""
        try:
            status = self._read(lambda: self._api.status(platform_id))
        except Gone:
            # Mastodon answers 404 alike for deleted by the author and removed by a moderator.
            return Fetched(Visibility.NOT_FOUND)
        item = self._convert(lambda: self._item(status, self._fetched_kind(status)))
        account = status.get("account") or {}
        if account.get("suspended"):
            return Fetched(Visibility.REMOVED, item)
        if account.get("limited"):
            return Fetched(Visibility.HIDDEN, item)
        return Fetched(Visibility.VISIBLE, item)

    def _fetched_kind(self, status: Mapping[str, Any]) -> ItemKind:
        if _sid(status["account"]["id"]) == self._me_id:
            return ItemKind.POST
        return self._kind_for(status) if status.get("in_reply_to_id") else ItemKind.MENTION

    # ------------------------------------------------------------ acting
