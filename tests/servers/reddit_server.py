"""A local, stateful stand-in for reddit.com that real ``praw`` talks to over loopback.

No Reddit emulator exists, so this answers the endpoints the bot and its tests use the way
reddit.com does: the same JSON shapes and field names (checked against praw's recorded
cassettes by tests/connectors/test_reddit_server.py), OAuth password grants (a bad password
is HTTP 200 ``{"error": "invalid_grant"}``), bearer checks (401 with ``www-authenticate``),
``x-ratelimit-*`` headers on every response, newest-first listings with
``before``/``after``/``limit``/``count`` paging (an anchor that is no longer in the listing
gives an empty page, as on reddit), moderator-only fields, removal versus deletion markers,
reports, blocks and the inbox. Faults (429, 503, timeouts, revoked credentials) can be
injected for one OAuth client.

Point praw at it with ``praw.Reddit(..., oauth_url=server.url, reddit_url=server.url,
short_url=server.url)``.
"""

from __future__ import annotations

import base64
import copy
import html
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

FAULT_KINDS = ("ratelimit", "server_error", "timeout", "auth")
SITE = "https://www.reddit.com"
ICON = "https://www.redditstatic.com/avatars/defaults/v2/avatar_default_1.png"
# Reddit's listing cap: no listing pages further back than this many items.
LISTING_CAP = 1000
_MENTION = re.compile(r"(?<![\w/])/?u/([A-Za-z0-9_-]{3,20})")


def to36(number: int) -> str:
    """Base 36, as reddit ids are written."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


def slug(title: str) -> str:
    """The permalink slug reddit makes from a title."""
    words = re.sub(r"[^a-z0-9 ]", "", title.lower()).split()
    return "_".join(words)[:50].rstrip("_") or "_"


def body_html(text: str) -> str:
    """Markdown rendered the simple way (paragraphs), as raw_json=1 returns it."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()] or [""]
    inner = "\n\n".join(f"<p>{html.escape(p, quote=False)}</p>" for p in paragraphs)
    return f'<!-- SC_OFF --><div class="md">{inner}\n</div><!-- SC_ON -->'


# ------------------------------------------------------------------ state


@dataclass
class User:
    """A reddit account."""

    name: str
    id36: str
    password: str
    created: float
    blocked: set[str] = field(default_factory=set)  # lower-case names this user blocked

    @property
    def fullname(self) -> str:
        return f"t2_{self.id36}"


@dataclass
class Subreddit:
    """A community with its moderators."""

    name: str
    id36: str
    created: float
    moderators: list[str] = field(default_factory=list)  # lower-case names, in order
    subscribers: int = 1

    @property
    def fullname(self) -> str:
        return f"t5_{self.id36}"


@dataclass
class Thing:
    """A submission (t3) or comment (t1)."""

    kind: str
    id36: str
    author: str  # exact-case name
    subreddit: str  # exact-case name
    created: float
    title: str = ""
    text: str = ""  # selftext or comment body
    link_id: str = ""  # t3 fullname (comments)
    parent_id: str = ""  # t1/t3 fullname (comments)
    deleted: bool = False
    removed: bool = False
    spam: bool = False
    removed_by: str | None = None  # moderator name
    removed_at: int | None = None
    removal_category: str | None = None  # "moderator", "reddit", ...
    approved_by: str | None = None
    approved_at: int | None = None
    reports: list[tuple[str, str]] = field(default_factory=list)  # (reporter, reason)
    score: int = 1
    edited: float | bool = False

    @property
    def fullname(self) -> str:
        return f"{self.kind}_{self.id36}"

    @property
    def sort_key(self) -> tuple[float, int]:
        return (self.created, int(self.id36, 36))


@dataclass
class InboxEntry:
    """One comment in a user's inbox (reply or username mention)."""

    recipient: str  # lower-case
    comment: str  # t1 fullname
    type: str  # comment_reply | post_reply | username_mention
    created: float
    new: bool = True


@dataclass
class Fault:
    """An injected failure for the next ``remaining`` responses to one client."""

    kind: str
    remaining: int
    client_id: str | None


class RedditState:
    """Everything the server knows, guarded by one lock."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.users: dict[str, User] = {}
        self.apps: dict[str, str] = {}  # client_id -> secret
        self.tokens: dict[str, tuple[str, str, float]] = {}  # token -> (user, client, expiry)
        self.subreddits: dict[str, Subreddit] = {}
        self.things: dict[str, Thing] = {}  # fullname -> thing, in creation order
        self.inbox: list[InboxEntry] = []
        self._ids = {
            "t1": itertools.count(int("mq10000", 36)),
            "t2": itertools.count(int("1a2b3c4d", 36)),
            "t3": itertools.count(int("1kz0000", 36)),
            "t5": itertools.count(int("8xw000", 36)),
        }

    def now(self) -> float:
        """Reddit timestamps are whole seconds."""
        return float(int(self.clock()))

    def next_id(self, kind: str) -> str:
        with self.lock:
            return to36(next(self._ids[kind]))

    # --- set-up, used by tests and harnesses -----------------------------------
    def add_app(self, client_id: str, secret: str) -> None:
        with self.lock:
            self.apps[client_id] = secret

    def add_user(self, name: str, password: str) -> User:
        with self.lock:
            user = User(name, self.next_id("t2"), password, self.now())
            self.users[name.lower()] = user
            return user

    def add_subreddit(self, name: str, moderators: Iterable[str] = ()) -> Subreddit:
        with self.lock:
            sub = Subreddit(name, self.next_id("t5"), self.now())
            sub.moderators = [m.lower() for m in moderators]
            self.subreddits[name.lower()] = sub
            return sub

    def user(self, name: str) -> User | None:
        return self.users.get(name.lower())

    def thing(self, fullname: str) -> Thing | None:
        return self.things.get(fullname)

    def is_mod(self, viewer: str | None, subreddit: str) -> bool:
        sub = self.subreddits.get(subreddit.lower())
        return bool(viewer and sub and viewer.lower() in sub.moderators)

    # --- writes, as reddit performs them ---------------------------------------
    def submit(self, author: str, subreddit: str, title: str, text: str) -> Thing:
        with self.lock:
            sub = self.subreddits[subreddit.lower()]
            post = Thing("t3", self.next_id("t3"), author, sub.name, self.now(), title, text)
            self.things[post.fullname] = post
            return post

    def comment(self, author: str, parent_fullname: str, text: str) -> Thing:
        with self.lock:
            parent = self.things[parent_fullname]
            link_id = parent.fullname if parent.kind == "t3" else parent.link_id
            com = Thing(
                "t1",
                self.next_id("t1"),
                author,
                parent.subreddit,
                self.now(),
                text=text,
                link_id=link_id,
                parent_id=parent.fullname,
            )
            self.things[com.fullname] = com
            self._notify(com, parent)
            return com

    def _notify(self, com: Thing, parent: Thing) -> None:
        author = com.author.lower()
        told: set[str] = set()
        recipient = parent.author.lower()
        if not parent.deleted and recipient != author and not self._blocks(recipient, author):
            kind = "post_reply" if parent.kind == "t3" else "comment_reply"
            self.inbox.append(InboxEntry(recipient, com.fullname, kind, com.created))
            told.add(recipient)
        for match in _MENTION.finditer(com.text):
            name = match.group(1).lower()
            if name in told or name == author or name not in self.users:
                continue
            if self._blocks(name, author):
                continue
            told.add(name)
            self.inbox.append(InboxEntry(name, com.fullname, "username_mention", com.created))

    def _blocks(self, who: str, whom: str) -> bool:
        user = self.users.get(who)
        return bool(user and whom in user.blocked)

    def delete(self, actor: str, fullname: str) -> None:
        with self.lock:
            thing = self.things.get(fullname)
            if thing is not None and thing.author.lower() == actor.lower():
                thing.deleted = True

    def remove(self, moderator: str, fullname: str, *, spam: bool) -> None:
        with self.lock:
            thing = self.things[fullname]
            thing.removed, thing.spam = True, spam
            thing.removed_by, thing.removed_at = moderator, int(self.now())
            thing.removal_category = "moderator"
            thing.approved_by = thing.approved_at = None

    def admin_remove(self, fullname: str) -> None:
        """Reddit's own staff (anti-evil) remove something."""
        with self.lock:
            thing = self.things[fullname]
            thing.removed, thing.removal_category = True, "reddit"
            thing.removed_by, thing.removed_at = None, int(self.now())

    def approve(self, moderator: str, fullname: str) -> None:
        with self.lock:
            thing = self.things[fullname]
            thing.removed = thing.spam = False
            thing.removed_by = thing.removed_at = thing.removal_category = None
            thing.approved_by, thing.approved_at = moderator, int(self.now())

    def report(self, reporter: str, fullname: str, reason: str) -> None:
        with self.lock:
            thing = self.things.get(fullname)
            if thing is not None:
                thing.reports.append((reporter, reason))

    def block(self, who: str, whom: str) -> User | None:
        with self.lock:
            target = self.user(whom)
            if target is not None:
                self.users[who.lower()].blocked.add(target.name.lower())
            return target

    # --- reads -------------------------------------------------------------------
    def hidden_from(self, thing: Thing, viewer: str | None) -> bool:
        """Removed things leave listings for everyone but their author and the mods."""
        if thing.deleted:
            return True
        if not thing.removed:
            return False
        if viewer and viewer.lower() == thing.author.lower():
            return False
        return not self.is_mod(viewer, thing.subreddit)

    def newest_first(self, things: Iterable[Thing]) -> list[Thing]:
        return sorted(things, key=lambda t: t.sort_key, reverse=True)[:LISTING_CAP]

    def children_of(self, fullname: str) -> list[Thing]:
        return [t for t in self.things.values() if t.kind == "t1" and t.parent_id == fullname]


# ------------------------------------------------------------------ rendering

_AUTHOR_FLAIR: dict[str, Any] = {
    "author_flair_background_color": None,
    "author_flair_css_class": None,
    "author_flair_richtext": [],
    "author_flair_template_id": None,
    "author_flair_text": None,
    "author_flair_text_color": None,
    "author_flair_type": "text",
    "author_patreon_flair": False,
    "author_premium": False,
}


class Renderer:
    """Turns state into reddit's JSON for one viewer."""

    def __init__(self, state: RedditState, viewer: str | None) -> None:
        self.state = state
        self.viewer = viewer

    def _author(self, thing: Thing, masked: bool) -> dict[str, Any]:
        if masked:
            return {"author": "[deleted]", **_AUTHOR_FLAIR}
        user = self.state.user(thing.author)
        blocked = bool(
            self.viewer
            and user
            and user.name.lower() in self.state.users[self.viewer.lower()].blocked
        )
        return {
            "author": thing.author,
            "author_fullname": user.fullname if user else "t2_0",
            "author_is_blocked": blocked,
            **_AUTHOR_FLAIR,
        }

    def _moderation(self, thing: Thing) -> dict[str, Any]:
        mod = self.state.is_mod(self.viewer, thing.subreddit)
        counts: dict[str, int] = {}
        for _, reason in thing.reports:
            counts[reason] = counts.get(reason, 0) + 1
        out: dict[str, Any] = {
            "approved_at_utc": thing.approved_at if mod else None,
            "approved_by": thing.approved_by if mod else None,
            "banned_at_utc": thing.removed_at if mod else None,
            "banned_by": thing.removed_by if mod and thing.removed else None,
            "can_mod_post": mod,
            "mod_note": None,
            "mod_reason_by": None,
            "mod_reason_title": None,
            "mod_reports": [],
            "num_reports": len(thing.reports) if mod else None,
            "removal_reason": None,
            "report_reasons": list(counts) if mod else None,
            "user_reports": [[r, n, False, False] for r, n in counts.items()] if mod else [],
        }
        if mod:
            out.update(
                approved=thing.approved_by is not None,
                ignore_reports=False,
                removed=thing.removed and not thing.spam,
                spam=thing.spam,
            )
        return out

    def _sub(self, thing: Thing) -> dict[str, Any]:
        sub = self.state.subreddits[thing.subreddit.lower()]
        return {
            "subreddit": sub.name,
            "subreddit_id": sub.fullname,
            "subreddit_name_prefixed": f"r/{sub.name}",
            "subreddit_type": "public",
        }

    def permalink(self, thing: Thing) -> str:
        post = thing if thing.kind == "t3" else self.state.things[thing.link_id]
        base = f"/r/{post.subreddit}/comments/{post.id36}/{slug(post.title)}/"
        return base if thing.kind == "t3" else f"{base}{thing.id36}/"

    def _visible_text(self, thing: Thing) -> tuple[str, bool]:
        """(text, author masked) as this viewer sees them."""
        if thing.deleted:
            return "[deleted]", True
        if thing.removed and self.state.hidden_from(thing, self.viewer):
            # Reddit keeps a removed post's author but hides a removed comment's.
            return "[removed]", thing.kind == "t1"
        return thing.text, False

    def submission(self, post: Thing) -> dict[str, Any]:
        text, masked = self._visible_text(post)
        comments = [
            c
            for c in self.state.things.values()
            if c.kind == "t1" and c.link_id == post.fullname and not c.deleted
        ]
        permalink = self.permalink(post)
        category = None
        if post.deleted:
            category = "deleted"
        elif post.removed and (
            self.state.hidden_from(post, self.viewer)
            or self.state.is_mod(self.viewer, post.subreddit)
        ):
            category = post.removal_category
        sub = self.state.subreddits[post.subreddit.lower()]
        data: dict[str, Any] = {
            **self._author(post, masked),
            **self._moderation(post),
            **self._sub(post),
            "all_awardings": [],
            "allow_live_comments": False,
            "archived": False,
            "awarders": [],
            "can_gild": False,
            "category": None,
            "clicked": False,
            "content_categories": None,
            "contest_mode": False,
            "created": post.created,
            "created_utc": post.created,
            "discussion_type": None,
            "distinguished": None,
            "domain": f"self.{post.subreddit}",
            "downs": 0,
            "edited": post.edited,
            "gilded": 0,
            "gildings": {},
            "hidden": False,
            "hide_score": False,
            "id": post.id36,
            "is_created_from_ads_ui": False,
            "is_crosspostable": not (post.deleted or post.removed),
            "is_meta": False,
            "is_original_content": False,
            "is_reddit_media_domain": False,
            "is_robot_indexable": not (post.deleted or post.removed),
            "is_self": True,
            "is_video": False,
            "likes": True if self._own(post) else None,
            "link_flair_background_color": "",
            "link_flair_css_class": None,
            "link_flair_richtext": [],
            "link_flair_text": None,
            "link_flair_text_color": "dark",
            "link_flair_type": "text",
            "locked": False,
            "media": None,
            "media_embed": {},
            "media_only": False,
            "name": post.fullname,
            "no_follow": True,
            "num_comments": len(comments),
            "num_crossposts": 0,
            "over_18": False,
            "permalink": permalink,
            "pinned": False,
            "pwls": 6,
            "quarantine": False,
            "removed_by": None,
            "removed_by_category": category,
            "saved": False,
            "score": post.score,
            "secure_media": None,
            "secure_media_embed": {},
            "selftext": text,
            "selftext_html": body_html(text) if text else None,
            "send_replies": True,
            "spoiler": False,
            "stickied": False,
            "subreddit_subscribers": sub.subscribers,
            "suggested_sort": None,
            "thumbnail": "self",
            "thumbnail_height": None,
            "thumbnail_width": None,
            "title": post.title,
            "top_awarded_type": None,
            "total_awards_received": 0,
            "treatment_tags": [],
            "ups": post.score,
            "upvote_ratio": 1.0,
            "url": f"{SITE}{permalink}",
            "view_count": None,
            "visited": False,
            "wls": 6,
        }
        if masked:
            data.pop("author_fullname", None)
            data["author_is_blocked"] = False
        return data

    def _own(self, thing: Thing) -> bool:
        return bool(self.viewer and self.viewer.lower() == thing.author.lower())

    def comment(self, com: Thing, *, context: str, depth: int = 0) -> dict[str, Any]:
        """A t1: context is "listing" (/r/x/comments, /api/comment), "tree" or "info"."""
        text, masked = self._visible_text(com)
        post = self.state.things[com.link_id]
        permalink = self.permalink(com)
        data: dict[str, Any] = {
            **self._author(com, masked),
            **self._moderation(com),
            **self._sub(com),
            "all_awardings": [],
            "archived": False,
            "associated_award": None,
            "awarders": [],
            "body": text,
            "body_html": body_html(text),
            "can_gild": False,
            "collapsed": masked,
            "collapsed_because_crowd_control": None,
            "collapsed_reason": None,
            "collapsed_reason_code": "DELETED" if masked else None,
            "comment_type": None,
            "controversiality": 0,
            "created": com.created,
            "created_utc": com.created,
            "distinguished": None,
            "downs": 0,
            "edited": com.edited,
            "gilded": 0,
            "gildings": {},
            "id": com.id36,
            "is_submitter": (not masked) and com.author.lower() == post.author.lower(),
            "likes": True if self._own(com) else None,
            "link_id": com.link_id,
            "locked": False,
            "name": com.fullname,
            "no_follow": True,
            "parent_id": com.parent_id,
            "permalink": permalink,
            "replies": "",
            "saved": False,
            "score": com.score,
            "score_hidden": False,
            "send_replies": True,
            "stickied": False,
            "top_awarded_type": None,
            "total_awards_received": 0,
            "treatment_tags": [],
            "unrepliable_reason": None,
            "ups": com.score,
        }
        if masked:
            data.pop("author_fullname", None)
            data["author_is_blocked"] = False
        if context == "listing":
            post_link = f"{SITE}{self.permalink(post)}"
            data.update(
                link_author="[deleted]" if post.deleted else post.author,
                link_permalink=post_link,
                link_title=post.title,
                link_url=post_link,
                num_comments=self.submission(post)["num_comments"],
                over_18=False,
                quarantine=False,
            )
        elif context == "tree":
            data["depth"] = depth
        return data

    def inbox_comment(self, entry: InboxEntry) -> dict[str, Any]:
        com = self.state.things[entry.comment]
        post = self.state.things[com.link_id]
        text, masked = self._visible_text(com)
        subject = {
            "comment_reply": "comment reply",
            "post_reply": "post reply",
            "username_mention": "username mention",
        }[entry.type]
        user = self.state.user(com.author)
        return {
            "associated_awarding_id": None,
            "author": "[deleted]" if masked else com.author,
            "author_fullname": user.fullname if user and not masked else "t2_0",
            "body": text,
            "body_html": body_html(text),
            "context": f"{self.permalink(com)}?context=3",
            "created": com.created,
            "created_utc": com.created,
            "dest": self.state.users[entry.recipient].name,
            "distinguished": None,
            "first_message": None,
            "first_message_name": None,
            "id": com.id36,
            "likes": None,
            "link_title": post.title,
            "name": com.fullname,
            "new": entry.new,
            "num_comments": self.submission(post)["num_comments"],
            "parent_id": com.parent_id,
            "replies": "",
            "score": com.score,
            "subject": subject,
            "subreddit": com.subreddit,
            "subreddit_name_prefixed": f"r/{com.subreddit}",
            "type": entry.type,
            "was_comment": True,
        }

    def subreddit(self, sub: Subreddit) -> dict[str, Any]:
        data = copy.deepcopy(T5_TEMPLATE)
        mod = bool(self.viewer and self.viewer.lower() in sub.moderators)
        data.update(
            created=sub.created,
            created_utc=sub.created,
            display_name=sub.name,
            display_name_prefixed=f"r/{sub.name}",
            id=sub.id36,
            name=sub.fullname,
            subscribers=sub.subscribers,
            title=sub.name,
            url=f"/r/{sub.name}/",
            user_is_moderator=mod,
            user_is_subscriber=mod,
        )
        if mod:
            data["mod_permissions"] = ["all"]
        return data

    def user_subreddit(self, user: User) -> dict[str, Any]:
        data: dict[str, Any] = copy.deepcopy(ME_TEMPLATE["subreddit"])
        data.update(
            display_name=f"u_{user.name}",
            display_name_prefixed=f"u/{user.name}",
            name=f"t5_{user.id36}",
            url=f"/user/{user.name}/",
            user_is_moderator=bool(self.viewer and self.viewer.lower() == user.name.lower()),
        )
        return data

    def me(self, user: User, client_id: str) -> dict[str, Any]:
        data = copy.deepcopy(ME_TEMPLATE)
        moderates = any(user.name.lower() in s.moderators for s in self.state.subreddits.values())
        unread = sum(1 for e in self.state.inbox if e.recipient == user.name.lower() and e.new)
        data.update(
            created=user.created,
            created_utc=user.created,
            has_mail=unread > 0,
            id=user.id36,
            inbox_count=unread,
            is_mod=moderates,
            name=user.name,
            oauth_client_id=client_id,
            subreddit=self.user_subreddit(user),
        )
        return data

    def about(self, user: User) -> dict[str, Any]:
        viewer = self.state.user(self.viewer) if self.viewer else None
        return {
            "accept_followers": True,
            "awardee_karma": 0,
            "awarder_karma": 0,
            "comment_karma": 0,
            "created": user.created,
            "created_utc": user.created,
            "has_subscribed": True,
            "has_verified_email": True,
            "hide_from_robots": False,
            "icon_img": ICON,
            "id": user.id36,
            "is_blocked": bool(viewer and user.name.lower() in viewer.blocked),
            "is_employee": False,
            "is_friend": False,
            "is_gold": False,
            "is_mod": any(
                user.name.lower() in s.moderators for s in self.state.subreddits.values()
            ),
            "link_karma": 1,
            "name": user.name,
            "pref_show_snoovatar": False,
            "snoovatar_img": "",
            "snoovatar_size": None,
            "subreddit": self.user_subreddit(user),
            "total_karma": 1,
            "verified": True,
        }


def thing(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """Wrap data as a reddit thing."""
    return {"kind": kind, "data": data}


def listing(
    children: list[dict[str, Any]],
    *,
    after: str | None = None,
    before: str | None = None,
    modhash: str | None = "",
) -> dict[str, Any]:
    """A reddit Listing."""
    return thing(
        "Listing",
        {
            "after": after,
            "dist": len(children),
            "modhash": modhash,
            "geo_filter": "",
            "children": children,
            "before": before,
        },
    )


def paginate(
    items: list[Thing], params: dict[str, str]
) -> tuple[list[Thing], str | None, str | None]:
    """A page of a newest-first list, as reddit pages it: (page, after, before)."""
    try:
        limit = max(1, min(100, int(params.get("limit", "25"))))
    except ValueError:
        limit = 25
    names = [t.fullname for t in items]
    after, before = params.get("after"), params.get("before")
    if after:
        if after not in names:
            return [], None, None  # reddit: an anchor that left the listing gives nothing
        start = names.index(after) + 1
        page = items[start : start + limit]
    elif before:
        if before not in names:
            return [], None, None
        end = names.index(before)
        start = max(0, end - limit)
        page = items[start:end]
    else:
        start = 0
        page = items[:limit]
    if not page:
        return [], None, None
    next_after = page[-1].fullname if start + len(page) < len(items) else None
    paged = bool(after or before or int(params.get("count", "0") or 0))
    prev_before = page[0].fullname if start > 0 and paged else None
    return page, next_after, prev_before


# ------------------------------------------------------------------ HTTP


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    _window: tuple[int, float, int] = (0, 0.0, 0)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: tests read the request log instead

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    # --- plumbing ----------------------------------------------------------------
    def _dispatch(self, method: str) -> None:
        app: RedditServer = self.server.app
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form = {k: v[-1] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
        params = {**query, **form}
        path = url.path.rstrip("/") or "/"
        if path.endswith(".json"):
            path = path[: -len(".json")]
        state = app.state
        client_id, user = self._identify(path)
        app.record(method, path, params, client_id, user)
        self._window = app.ratelimit(user)
        if self._window[1] <= 0 and self._window[0] > app.ratelimit_limit:
            # The real limit: over budget until the window resets.
            self._send(
                429,
                {"message": "Too Many Requests", "error": 429},
                extra={"retry-after": str(self._window[2])},
            )
            return
        fault = app.take_fault(client_id)
        if fault is not None and self._fault(fault, path, client_id):
            return
        if path == "/api/v1/access_token" and method == "POST":
            self._token(form)
            return
        if user is None:
            self._send(
                401,
                {"message": "Unauthorized", "error": 401},
                extra={"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'},
            )
            return
        for route_method, pattern, handler in _ROUTES:
            if route_method != method:
                continue
            match = re.fullmatch(pattern, path)
            if match:
                with state.lock:
                    status, body = handler(self, user, params, **match.groupdict())
                self._send(status, body, user=user)
                return
        self._send(404, {"message": "Not Found", "error": 404}, user=user)

    def _identify(self, path: str) -> tuple[str | None, str | None]:
        """(client_id, username) behind this request."""
        app = self.server.app
        header = self.headers.get("Authorization") or ""
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:]).decode()
            except ValueError:
                return None, None
            return decoded.split(":", 1)[0], None
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
            with app.state.lock:
                entry = app.state.tokens.get(token)
            if entry is None:
                return app.client_of_token.get(token), None
            user, client, expiry = entry
            if expiry < app.state.clock():
                return client, None
            return client, user
        return None, None

    def _fault(self, fault: str, path: str, client_id: str | None) -> bool:
        app = self.server.app
        if fault == "ratelimit":
            self._send(
                429,
                {"message": "Too Many Requests", "error": 429},
                extra={"retry-after": str(app.retry_after)},
            )
        elif fault == "server_error":
            self._send(503, {"message": "Service Unavailable", "error": 503})
        elif fault == "timeout":
            time.sleep(app.timeout_delay)  # longer than the client waits
            self._send(503, {"message": "Service Unavailable", "error": 503})
        elif fault == "auth":
            app.revoke(client_id)
            if path == "/api/v1/access_token":
                self._send(200, {"error": "invalid_grant"})
            else:
                self._send(
                    401,
                    {"message": "Unauthorized", "error": 401},
                    extra={"www-authenticate": 'Bearer realm="reddit", error="invalid_token"'},
                )
        return True

    def _token(self, form: dict[str, str]) -> None:
        app = self.server.app
        header = self.headers.get("Authorization") or ""
        try:
            client_id, secret = base64.b64decode(header[6:]).decode().split(":", 1)
        except (ValueError, IndexError):
            client_id, secret = "", ""
        if not header.lower().startswith("basic ") or app.state.apps.get(client_id) != secret:
            self._send(401, {"message": "Unauthorized", "error": 401})
            return
        if form.get("grant_type") != "password":
            self._send(200, {"error": "unsupported_grant_type"})
            return
        with app.state.lock:
            user = app.state.user(form.get("username", ""))
            failing = app.failing_grants.get(client_id, 0)
            if failing:
                app.failing_grants[client_id] = failing - 1
            if user is None or user.password != form.get("password") or failing:
                self._send(200, {"error": "invalid_grant"})
                return
            token = f"{user.id36}-{secrets.token_urlsafe(18)}"
            app.state.tokens[token] = (user.name, client_id, app.state.clock() + 86400)
            app.client_of_token[token] = client_id
        self._send(
            200,
            {"access_token": token, "token_type": "bearer", "expires_in": 86400, "scope": "*"},
        )

    def _send(
        self,
        status: int,
        body: Any,
        *,
        user: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        payload = json.dumps(body).encode()
        used, remaining, reset = self._window
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-ratelimit-remaining", f"{remaining:.1f}")
            self.send_header("x-ratelimit-used", str(used))
            self.send_header("x-ratelimit-reset", str(reset))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout fault)

    # --- endpoints ---------------------------------------------------------------
    def me(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.app.state
        account = state.users[user.lower()]
        client = self.server.app.client_for_user(user)
        return 200, Renderer(state, user).me(account, client)

    def about(self, user: str, params: dict[str, str], name: str) -> tuple[int, Any]:
        state = self.server.app.state
        target = state.user(name)
        if target is None:
            return 404, {"message": "Not Found", "error": 404}
        return 200, thing("t2", Renderer(state, user).about(target))

    def mine_moderator(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.app.state
        subs = [s for s in state.subreddits.values() if user.lower() in s.moderators]
        subs.sort(key=lambda s: s.name.lower())
        render = Renderer(state, user)
        # Subreddit listings page by t5 fullname like any other listing.
        fake = [Thing("t5", s.id36, "", s.name, s.created) for s in subs]
        page, after, before = paginate(fake, params)
        children = [
            thing("t5", render.subreddit(state.subreddits[t.subreddit.lower()])) for t in page
        ]
        return 200, listing(children, after=after, before=before, modhash=None)

    def _subs(self, spec: str) -> list[Subreddit] | None:
        state = self.server.app.state
        names = [n.lower() for n in spec.split("+") if n]
        if names in (["all"], ["popular"]):
            return list(state.subreddits.values())
        subs = [state.subreddits.get(n) for n in names]
        return None if any(s is None for s in subs) else [s for s in subs if s is not None]

    def sub_comments(self, user: str, params: dict[str, str], sub: str) -> tuple[int, Any]:
        state = self.server.app.state
        subs = self._subs(sub)
        if subs is None:
            return 404, {"message": "Not Found", "error": 404}
        names = {s.name.lower() for s in subs}
        items = state.newest_first(
            t
            for t in state.things.values()
            if t.kind == "t1" and t.subreddit.lower() in names and not state.hidden_from(t, user)
        )
        page, after, before = paginate(items, params)
        render = Renderer(state, user)
        children = [thing("t1", render.comment(c, context="listing")) for c in page]
        return 200, listing(children, after=after, before=before)

    def sub_new(self, user: str, params: dict[str, str], sub: str) -> tuple[int, Any]:
        state = self.server.app.state
        subs = self._subs(sub)
        if subs is None:
            return 404, {"message": "Not Found", "error": 404}
        names = {s.name.lower() for s in subs}
        items = state.newest_first(
            t
            for t in state.things.values()
            if t.kind == "t3" and t.subreddit.lower() in names and not state.hidden_from(t, user)
        )
        page, after, before = paginate(items, params)
        render = Renderer(state, user)
        return 200, listing(
            [thing("t3", render.submission(p)) for p in page], after=after, before=before
        )

    def search(self, user: str, params: dict[str, str], sub: str = "all") -> tuple[int, Any]:
        state = self.server.app.state
        restrict = params.get("restrict_sr", "").lower() in ("1", "true", "on")
        subs = self._subs(sub if restrict else "all")
        if subs is None:
            return 404, {"message": "Not Found", "error": 404}
        names = {s.name.lower() for s in subs}
        terms = _search_terms(params.get("q", ""))
        since = _time_filter(params.get("t", "all"), state.now())
        items = state.newest_first(
            t
            for t in state.things.values()
            if t.kind == "t3"
            and t.subreddit.lower() in names
            and t.created >= since
            and not (t.deleted or t.removed)
            and any(term in f"{t.title}\n{t.text}".lower() for term in terms)
        )
        page, after, before = paginate(items, params)
        render = Renderer(state, user)
        return 200, listing(
            [thing("t3", render.submission(p)) for p in page], after=after, before=before
        )

    def user_submitted(self, user: str, params: dict[str, str], name: str) -> tuple[int, Any]:
        state = self.server.app.state
        target = state.user(name)
        if target is None:
            return 404, {"message": "Not Found", "error": 404}
        items = state.newest_first(
            t
            for t in state.things.values()
            if t.kind == "t3"
            and t.author.lower() == target.name.lower()
            and not state.hidden_from(t, user)
        )
        page, after, before = paginate(items, params)
        render = Renderer(state, user)
        return 200, listing(
            [thing("t3", render.submission(p)) for p in page], after=after, before=before
        )

    def submission_comments(
        self, user: str, params: dict[str, str], id36: str, rest: str | None = None
    ) -> tuple[int, Any]:
        state = self.server.app.state
        post = state.thing(f"t3_{id36}")
        if post is None:
            return 404, {"message": "Not Found", "error": 404}
        render = Renderer(state, user)
        sort = params.get("sort", "confidence")
        try:
            budget = [max(1, int(params.get("limit", "200")))]
        except ValueError:
            budget = [200]

        def kids_of(parent: str) -> list[Thing]:
            kids = [k for k in state.children_of(parent) if k.deleted is False or _answered(k)]
            kids.sort(key=lambda t: t.sort_key, reverse=sort == "new")
            return kids

        def _answered(kid: Thing) -> bool:
            # Reddit drops deleted comments nobody answered.
            return any(not k.deleted or _answered(k) for k in state.children_of(kid.fullname))

        def tree(parent: str, depth: int) -> list[dict[str, Any]]:
            kids = kids_of(parent)
            out = []
            for index, kid in enumerate(kids):
                if budget[0] <= 0:
                    rest = kids[index:]
                    out.append(more_stub(rest, parent, depth))
                    break
                budget[0] -= 1
                below = tree(kid.fullname, depth + 1)
                data = render.comment(kid, context="tree", depth=depth)
                data["replies"] = listing(below, modhash=None) if below else ""
                out.append(thing("t1", data))
            return out

        head_data = render.submission(post)
        # The comments page adds these to its submission.
        head_data.update(num_duplicates=0, rte_mode="markdown")
        head = listing([thing("t3", head_data)], modhash=None)
        return 200, [head, listing(tree(post.fullname, 0), modhash=None)]

    def morechildren(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.app.state
        render = Renderer(state, user)
        wanted = [c for c in params.get("children", "").split(",") if c]
        out: list[dict[str, Any]] = []

        def depth_of(com: Thing) -> int:
            depth, parent = 0, com.parent_id
            while parent.startswith("t1_"):
                depth, parent = depth + 1, state.things[parent].parent_id
            return depth

        def add(com: Thing) -> None:
            out.append(thing("t1", render.comment(com, context="tree", depth=depth_of(com))))
            for kid in sorted(state.children_of(com.fullname), key=lambda t: t.sort_key):
                if not kid.deleted:
                    add(kid)

        for id36 in wanted:
            com = state.thing(f"t1_{id36}")
            if com is not None and com.link_id == params.get("link_id") and not com.deleted:
                add(com)
        return 200, {"json": {"errors": [], "data": {"things": out}}}

    def info(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.app.state
        render = Renderer(state, user)
        children = []
        for fullname in [i for i in params.get("id", "").split(",") if i][:100]:
            item = state.thing(fullname)
            if item is None:
                continue
            if item.kind == "t3":
                children.append(thing("t3", render.submission(item)))
            else:
                children.append(thing("t1", render.comment(item, context="info")))
        return 200, listing(children)

    def _inbox(self, user: str, params: dict[str, str], which: str) -> tuple[int, Any]:
        state = self.server.app.state
        entries = [e for e in state.inbox if e.recipient == user.lower()]
        if which == "unread":
            entries = [e for e in entries if e.new]
        elif which == "comments":
            entries = [e for e in entries if e.type in ("comment_reply", "post_reply")]
        elif which == "mentions":
            entries = [e for e in entries if e.type == "username_mention"]
        by_name = {e.comment: e for e in entries}
        items = state.newest_first(state.things[e.comment] for e in entries)
        page, after, before = paginate(items, params)
        render = Renderer(state, user)
        children = [thing("t1", render.inbox_comment(by_name[t.fullname])) for t in page]
        if which == "unread" and params.get("mark", "").lower() == "true":
            for t in page:
                by_name[t.fullname].new = False
        return 200, listing(children, after=after, before=before, modhash=None)

    def inbox(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        return self._inbox(user, params, "inbox")

    def unread(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        return self._inbox(user, params, "unread")

    def comment_replies(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        return self._inbox(user, params, "comments")

    def mentions(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        return self._inbox(user, params, "mentions")

    def read_message(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.app.state
        ids = set(params.get("id", "").split(","))
        for entry in state.inbox:
            if entry.recipient == user.lower() and entry.comment in ids:
                entry.new = False
        return 200, {}

    def _mod_target(self, user: str, params: dict[str, str]) -> tuple[Thing | None, Any]:
        state = self.server.app.state
        target = state.thing(params.get("id", ""))
        if target is None:
            return None, (404, {"message": "Not Found", "error": 404})
        if not state.is_mod(user, target.subreddit):
            return None, (403, {"message": "Forbidden", "error": 403})
        return target, None

    def remove(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        target, error = self._mod_target(user, params)
        if target is None:
            return error  # type: ignore[no-any-return]
        spam = params.get("spam", "False").lower() in ("true", "1")
        self.server.app.state.remove(user, target.fullname, spam=spam)
        return 200, {}

    def approve(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        target, error = self._mod_target(user, params)
        if target is None:
            return error  # type: ignore[no-any-return]
        self.server.app.state.approve(user, target.fullname)
        return 200, {}

    def report(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        reason = params.get("reason") or params.get("other_reason") or params.get("site_reason")
        self.server.app.state.report(user, params.get("id", ""), reason or "")
        return 200, {"json": {"errors": []}}

    def block_user(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.app.state
        target = state.block(user, params.get("name", ""))
        if target is None:
            return 400, {
                "fields": ["name"],
                "explanation": "that user doesn't exist",
                "message": "Bad Request",
                "reason": "USER_DOESNT_EXIST",
            }
        return 200, {
            "date": state.now(),
            "icon_img": ICON,
            "id": target.fullname,
            "name": target.name,
        }

    def comment(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.app.state
        parent = state.thing(params.get("thing_id", ""))
        if parent is None or parent.deleted or parent.removed:
            code, message = (
                ("DELETED_LINK", "that submission has been deleted")
                if (parent is None or parent.kind == "t3")
                else ("DELETED_COMMENT", "that comment has been deleted")
            )
            return 200, {"json": {"errors": [[code, message, "parent"]]}}
        author = state.users[user.lower()].name
        com = state.comment(author, parent.fullname, params.get("text", ""))
        data = Renderer(state, user).comment(com, context="listing")
        return 200, {"json": {"errors": [], "data": {"things": [thing("t1", data)]}}}

    def delete(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        self.server.app.state.delete(user, params.get("id", ""))
        return 200, {}

    def submit(self, user: str, params: dict[str, str]) -> tuple[int, Any]:
        state = self.server.app.state
        sub = state.subreddits.get(params.get("sr", "").lower())
        if sub is None:
            error = ["SUBREDDIT_NOEXIST", "that community doesn't exist", "sr"]
            return 200, {"json": {"errors": [error]}}
        if not params.get("title"):
            return 200, {"json": {"errors": [["NO_TEXT", "we need something here", "title"]]}}
        author = state.users[user.lower()].name
        post = state.submit(author, sub.name, params["title"], params.get("text", ""))
        url = f"{SITE}{Renderer(state, user).permalink(post)}"
        return 200, {
            "json": {
                "errors": [],
                "data": {"url": url, "drafts_count": 0, "id": post.id36, "name": post.fullname},
            }
        }


def more_stub(rest: list[Thing], parent: str, depth: int) -> dict[str, Any]:
    """The "load more comments" stub reddit puts where a thread was cut."""
    first = rest[0]
    return thing(
        "more",
        {
            "count": len(rest),
            "name": first.fullname,
            "id": first.id36,
            "parent_id": parent,
            "depth": depth,
            "children": [t.id36 for t in rest],
        },
    )


def _search_terms(query: str) -> list[str]:
    """Terms of a lucene query the bot sends: "a b" OR c -> ["a b", "c"] (lower-case)."""
    parts = re.split(r"\s+OR\s+", query.strip("() "))
    return [p.strip().strip('"').strip("()").lower() for p in parts if p.strip().strip('"')]


def _time_filter(value: str, now: float) -> float:
    spans = {"hour": 3600, "day": 86400, "week": 604800, "month": 2678400, "year": 31536000}
    return now - spans[value] if value in spans else float("-inf")


_ROUTES: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
    ("GET", r"/api/v1/me", _Handler.me),
    ("GET", r"/user/(?P<name>[^/]+)/about", _Handler.about),
    ("GET", r"/subreddits/mine/moderator", _Handler.mine_moderator),
    ("GET", r"/r/(?P<sub>[^/]+)/comments", _Handler.sub_comments),
    ("GET", r"/r/(?P<sub>[^/]+)/new", _Handler.sub_new),
    ("GET", r"/r/(?P<sub>[^/]+)/search", _Handler.search),
    ("GET", r"/search", _Handler.search),
    ("GET", r"/user/(?P<name>[^/]+)/submitted", _Handler.user_submitted),
    ("GET", r"/comments/(?P<id36>[a-z0-9]+)(?P<rest>/.*)?", _Handler.submission_comments),
    ("GET", r"/r/[^/]+/comments/(?P<id36>[a-z0-9]+)(?P<rest>/.*)?", _Handler.submission_comments),
    ("GET", r"/api/info", _Handler.info),
    ("GET", r"/message/inbox", _Handler.inbox),
    ("GET", r"/message/unread", _Handler.unread),
    ("GET", r"/message/comments", _Handler.comment_replies),
    ("GET", r"/message/mentions", _Handler.mentions),
    ("POST", r"/api/read_message", _Handler.read_message),
    ("POST", r"/api/morechildren", _Handler.morechildren),
    ("GET", r"/api/morechildren", _Handler.morechildren),
    ("POST", r"/api/remove", _Handler.remove),
    ("POST", r"/api/approve", _Handler.approve),
    ("POST", r"/api/report", _Handler.report),
    ("POST", r"/api/block_user", _Handler.block_user),
    ("POST", r"/api/comment", _Handler.comment),
    ("POST", r"/api/del", _Handler.delete),
    ("POST", r"/api/submit", _Handler.submit),
]


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: RedditServer


@dataclass(frozen=True)
class Request:
    """One request the server received."""

    method: str
    path: str
    params: dict[str, str]
    client_id: str | None
    user: str | None


class RedditServer:
    """The server: start(), use ``url``, stop(). Thread-safe."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        ratelimit_limit: int = 1000,
        ratelimit_window: int = 600,
    ) -> None:
        self.state = RedditState(clock)
        self.requests: list[Request] = []
        self.faults: list[Fault] = []
        self.failing_grants: dict[str, int] = {}
        self.client_of_token: dict[str, str] = {}
        self.retry_after = 7  # seconds a 429 fault asks for
        self.timeout_delay = 2.0  # seconds a timeout fault holds the response
        self.ratelimit_limit = ratelimit_limit
        self.ratelimit_window = ratelimit_window
        self._usage: dict[str, tuple[float, int]] = {}  # user -> (window start, used)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------
    def start(self) -> RedditServer:
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.app = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> RedditServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    # --- test controls -----------------------------------------------------------
    def fail_next(self, kind: str, *, count: int = 1, client_id: str | None = None) -> None:
        """Fail the next ``count`` responses (to ``client_id`` only, when given)."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}")
        with self.state.lock:
            if kind == "auth" and client_id is not None:
                # Credentials revoked: live tokens die, the next grants are refused.
                self.revoke(client_id)
                self.failing_grants[client_id] = self.failing_grants.get(client_id, 0) + count
                return
            self.faults.append(Fault(kind, count, client_id))

    def take_fault(self, client_id: str | None) -> str | None:
        with self.state.lock:
            for fault in self.faults:
                if fault.remaining > 0 and fault.client_id in (None, client_id):
                    fault.remaining -= 1
                    return fault.kind
            return None

    def revoke(self, client_id: str | None) -> None:
        with self.state.lock:
            for token, (_, client, _) in list(self.state.tokens.items()):
                if client_id is None or client == client_id:
                    del self.state.tokens[token]

    def record(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        client_id: str | None,
        user: str | None,
    ) -> None:
        with self.state.lock:
            self.requests.append(Request(method, path, dict(params), client_id, user))

    def request_count(self, client_id: str | None = None) -> int:
        """Requests received in all (or from one OAuth client)."""
        with self.state.lock:
            return sum(1 for r in self.requests if client_id is None or r.client_id == client_id)

    def client_for_user(self, user: str) -> str:
        with self.state.lock:
            for name, client, _ in self.state.tokens.values():
                if name.lower() == user.lower():
                    return client
            return ""

    def ratelimit(self, user: str | None) -> tuple[int, float, int]:
        """(used, remaining, reset seconds) of this user's window, counting this request."""
        now = self.state.clock()
        key = (user or "").lower()
        with self.state.lock:
            start, used = self._usage.get(key, (now, 0))
            if now - start >= self.ratelimit_window:
                start, used = now, 0
            used += 1
            self._usage[key] = (start, used)
        reset = max(0, int(start + self.ratelimit_window - now))
        return used, float(max(0, self.ratelimit_limit - used)), reset


# ------------------------------------------------------------------ templates
# Field defaults for the big, mostly static objects, taken from the newest cassette
# recordings (GET /api/v1/me 2025-06-19, GET /r/{sub}/about/ 2023-10-01); the server
# overrides every identifying value.

_FEATURES: dict[str, Any] = {
    "awards_on_streams": True,
    "chat": True,
    "chat_group_rollout": True,
    "chat_subreddit": True,
    "chat_user_settings": True,
    "cookie_consent_banner": True,
    "crowd_control_for_post": True,
    "do_not_track": True,
    "expensive_coins_package": True,
    "images_in_comments": True,
    "is_email_permission_required": False,
    "mod_awards": True,
    "mod_service_mute_reads": True,
    "mod_service_mute_writes": True,
    "modlog_copyright_removal": True,
    "modmail_harassment_filter": True,
    "mweb_nsfw_xpromo": {"experiment_id": 361, "owner": "growth", "variant": "control_2"},
    "mweb_sharing_clipboard": {"experiment_id": 315, "owner": "growth", "variant": "control_1"},
    "mweb_xpromo_interstitial_comments_android": True,
    "mweb_xpromo_interstitial_comments_ios": True,
    "mweb_xpromo_modal_listing_click_daily_dismissible_android": True,
    "mweb_xpromo_modal_listing_click_daily_dismissible_ios": True,
    "mweb_xpromo_revamp_v3": {"experiment_id": 480, "owner": "growth", "variant": "control_1"},
    "noreferrer_to_noopener": True,
    "premium_subscriptions_table": True,
    "promoted_trend_blanks": True,
    "resized_styles_images": True,
    "show_amp_link": True,
    "use_pref_account_deployment": True,
}

ME_TEMPLATE: dict[str, Any] = {
    "accept_followers": True,
    "awardee_karma": 0,
    "awarder_karma": 0,
    "can_create_subreddit": True,
    "can_edit_name": False,
    "coins": 0,
    "comment_karma": 0,
    "created": 0.0,
    "created_utc": 0.0,
    "features": _FEATURES,
    "force_password_reset": False,
    "gold_creddits": 0,
    "gold_expiration": None,
    "has_android_subscription": False,
    "has_external_account": False,
    "has_gold_subscription": False,
    "has_ios_subscription": False,
    "has_mail": False,
    "has_mod_mail": False,
    "has_paypal_subscription": False,
    "has_stripe_subscription": False,
    "has_subscribed": True,
    "has_subscribed_to_premium": False,
    "has_verified_email": True,
    "has_visited_new_profile": False,
    "hide_from_robots": True,
    "icon_img": ICON,
    "id": "",
    "in_beta": False,
    "in_chat": True,
    "in_redesign_beta": False,
    "inbox_count": 0,
    "is_employee": False,
    "is_gold": False,
    "is_mod": False,
    "is_sponsor": False,
    "is_suspended": False,
    "link_karma": 1,
    "linked_identities": [],
    "name": "",
    "new_modmail_exists": False,
    "num_friends": 0,
    "oauth_client_id": "",
    "over_18": False,
    "password_set": True,
    "pref_autoplay": True,
    "pref_clickgadget": 0,
    "pref_geopopular": "",
    "pref_nightmode": False,
    "pref_no_profanity": True,
    "pref_show_presence": False,
    "pref_show_snoovatar": False,
    "pref_show_trending": False,
    "pref_show_twitter": False,
    "pref_top_karma_subreddits": False,
    "pref_video_autoplay": True,
    "seen_give_award_tooltip": False,
    "seen_layout_switch": False,
    "seen_premium_adblock_modal": False,
    "seen_redesign_modal": True,
    "seen_subreddit_chat_ftux": False,
    "snoovatar_img": "",
    "snoovatar_size": None,
    "subreddit": {
        "accept_followers": True,
        "allowed_media_in_comments": [],
        "banner_img": "",
        "banner_size": None,
        "coins": 0,
        "community_icon": None,
        "default_set": True,
        "description": "",
        "disable_contributor_requests": False,
        "display_name": "",
        "display_name_prefixed": "",
        "free_form_reports": True,
        "header_img": None,
        "header_size": None,
        "icon_color": "#94B3FF",
        "icon_img": ICON,
        "icon_size": [256, 256],
        "is_default_banner": True,
        "is_default_icon": True,
        "key_color": "",
        "link_flair_enabled": False,
        "link_flair_position": "",
        "name": "",
        "over_18": False,
        "previous_names": [],
        "primary_color": "",
        "public_description": "",
        "quarantine": False,
        "restrict_commenting": False,
        "restrict_posting": True,
        "show_media": True,
        "submit_link_label": "",
        "submit_text_label": "",
        "subreddit_type": "user",
        "subscribers": 1,
        "title": "",
        "url": "",
        "user_is_banned": False,
        "user_is_contributor": False,
        "user_is_moderator": True,
        "user_is_muted": None,
        "user_is_subscriber": False,
    },
    "suspension_expiration_utc": None,
    "total_karma": 1,
    "verified": True,
}

T5_TEMPLATE: dict[str, Any] = {
    "accept_followers": True,
    "accounts_active": 5,
    "accounts_active_is_fuzzed": False,
    "active_user_count": 5,
    "advertiser_category": "",
    "all_original_content": False,
    "allow_chat_post_creation": False,
    "allow_discovery": True,
    "allow_galleries": False,
    "allow_images": True,
    "allow_polls": True,
    "allow_prediction_contributors": False,
    "allow_predictions": False,
    "allow_predictions_tournament": False,
    "allow_talks": False,
    "allow_videogifs": True,
    "allow_videos": True,
    "allowed_media_in_comments": [],
    "banner_background_color": "",
    "banner_background_image": "",
    "banner_img": "",
    "banner_size": None,
    "can_assign_link_flair": True,
    "can_assign_user_flair": False,
    "coins": 0,
    "collapse_deleted_comments": True,
    "collections_enabled": True,
    "comment_contribution_settings": {},
    "comment_score_hide_mins": 0,
    "community_icon": "",
    "community_reviewed": False,
    "created": 0.0,
    "created_utc": 0.0,
    "description": "",
    "description_html": None,
    "disable_contributor_requests": False,
    "display_name": "",
    "display_name_prefixed": "",
    "emojis_custom_size": None,
    "emojis_enabled": False,
    "event_posts_enabled": True,
    "free_form_reports": True,
    "has_menu_widget": False,
    "header_img": None,
    "header_size": None,
    "header_title": "",
    "hide_ads": False,
    "icon_img": "",
    "icon_size": None,
    "id": "",
    "is_chat_post_feature_enabled": True,
    "is_crosspostable_subreddit": True,
    "is_enrolled_in_new_modmail": True,
    "key_color": "",
    "lang": "en",
    "link_flair_enabled": False,
    "link_flair_position": "",
    "mobile_banner_image": "",
    "name": "",
    "notification_level": None,
    "original_content_tag_enabled": False,
    "over18": False,
    "prediction_leaderboard_entry_type": "IN_FEED",
    "primary_color": "",
    "public_description": "",
    "public_description_html": None,
    "public_traffic": False,
    "quarantine": False,
    "restrict_commenting": False,
    "restrict_posting": True,
    "should_archive_posts": False,
    "should_show_media_in_comments_setting": True,
    "show_media": False,
    "show_media_preview": True,
    "spoilers_enabled": True,
    "submission_type": "any",
    "submit_link_label": "",
    "submit_text": "",
    "submit_text_html": None,
    "submit_text_label": "",
    "subreddit_type": "public",
    "subscribers": 1,
    "suggested_comment_sort": None,
    "title": "",
    "url": "",
    "user_can_flair_in_sr": None,
    "user_flair_background_color": None,
    "user_flair_css_class": None,
    "user_flair_enabled_in_sr": False,
    "user_flair_position": "right",
    "user_flair_richtext": [],
    "user_flair_template_id": None,
    "user_flair_text": None,
    "user_flair_text_color": None,
    "user_flair_type": "text",
    "user_has_favorited": False,
    "user_is_banned": False,
    "user_is_contributor": False,
    "user_is_moderator": False,
    "user_is_muted": False,
    "user_is_subscriber": False,
    "user_sr_flair_enabled": None,
    "user_sr_theme_enabled": True,
    "videostream_links_count": 0,
    "whitelist_status": None,
    "wiki_enabled": None,
    "wls": None,
}
