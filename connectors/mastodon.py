"""Mastodon connector (Mastodon.py 2.3.3) for a school's account, optionally on its own instance.

Reads: the account's own statuses, replies at any depth under them (status
context), mention notifications and a public search for the school's terms.
Acts: report (forwarded to the author's server), block, mute, reply, delete own
and, where the school runs the instance and the token may use the admin API,
moderator removal through an account action closing a report. Mastodon has no
way to hide a reply under one's own post, so ``hide`` is not offered.
"""

from __future__ import annotations

import html
import ipaddress
import json
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from html.parser import HTMLParser
from typing import Any, ClassVar, TypeVar
from urllib.parse import urlsplit

import requests
from mastodon import Mastodon
from mastodon.errors import (
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonServerError,
    MastodonUnauthorizedError,
    MastodonVersionError,
)

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
from connectors.retry import with_retries
from monitor.constants import ItemKind, Platform

log = logging.getLogger(__name__)

T = TypeVar("T")

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
CURSOR_VERSION = 1


# ---------------------------------------------------------------- HTML to text


class _TextExtractor(HTMLParser):
    """Collect the visible text of Mastodon status HTML (p, br, links, spans)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
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


def _encode(state: Mapping[str, Any]) -> str:
    return json.dumps({"v": CURSOR_VERSION, **state}, separators=(",", ":"), sort_keys=True)


def _decode(cursor: str | None) -> dict[str, Any]:
    if cursor is None:
        return {}
    try:
        state = json.loads(cursor)
    except ValueError as exc:
        raise ConnectorError("unreadable mastodon cursor") from exc
    if not isinstance(state, dict) or state.get("v") != CURSOR_VERSION:
        raise ConnectorError("mastodon cursor of an unknown version")
    return state


# ---------------------------------------------------------------- the connector


class MastodonConnector(Connector):
    """A school's Mastodon account; admin actions where the school runs the instance."""

    PLATFORM: ClassVar[Platform] = Platform.MASTODON
    CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.OWN_POSTS,
            Capability.REPLIES,
            Capability.NOTIFICATIONS,
            Capability.MENTIONS,
            Capability.BLOCK,
            Capability.MUTE,
            Capability.REPORT,
            Capability.REPLY,
            Capability.DELETE_OWN,
            # only on the school's own instance, with an admin token (see connect)
            Capability.REMOVE,
            Capability.APPROVE,
            Capability.ADMIN,
        }
    )
    ADMIN_CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.REMOVE, Capability.APPROVE, Capability.ADMIN}
    )
    REQUIRED_CREDENTIALS: ClassVar[frozenset[str]] = frozenset({"access_token"})
    OPTIONS: ClassVar[frozenset[str]] = frozenset(
        {
            "api_base_url",
            "allow_http",
            "admin",
            "admin_remove_action",
            "report_forward",
            "request_timeout",
            "page_size",
            "max_pages",
            "max_contexts",
            "reply_window_hours",
            "retry_attempts",
        }
    )

    def __init__(
        self,
        account: AccountRef,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(account)
        options = account.options
        base = str(options.get("api_base_url") or "").strip().rstrip("/")
        if not base:
            raise ConnectorError(f"mastodon account {account.key!r}: api_base_url is required")
        parts = urlsplit(base)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ConnectorError(f"mastodon account {account.key!r}: bad api_base_url {base!r}")
        allow_http = _as_bool(options.get("allow_http"), default=False)
        if parts.scheme == "http" and not (allow_http or _is_loopback(parts.hostname)):
            # The bearer token would cross the network in clear text.
            raise ConnectorError(
                f"mastodon account {account.key!r}: plain http is only allowed on loopback "
                "unless allow_http is set"
            )
        self.api_base_url = base
        self.admin_requested = _as_bool(options.get("admin"), default=False)
        self.report_forward = _as_bool(options.get("report_forward"), default=True)
        self.request_timeout = _as_number(
            options.get("request_timeout"), default=30.0, low=0.05, high=600, name="request_timeout"
        )
        self.page_size = int(
            _as_number(
                options.get("page_size"), default=MAX_PAGE_SIZE, low=1, high=40, name="page_size"
            )
        )
        self.max_pages = int(
            _as_number(options.get("max_pages"), default=5, low=1, high=100, name="max_pages")
        )
        self.max_contexts = int(
            _as_number(
                options.get("max_contexts"), default=40, low=1, high=1000, name="max_contexts"
            )
        )
        self.reply_window = timedelta(
            hours=_as_number(
                options.get("reply_window_hours"),
                default=48,
                low=0,
                high=24 * 60,
                name="reply_window_hours",
            )
        )
        self.retry_attempts = int(
            _as_number(
                options.get("retry_attempts"), default=3, low=0, high=10, name="retry_attempts"
            )
        )
        action = str(options.get("admin_remove_action") or "suspend")
        if action not in REMOVE_ACTIONS:
            raise ConnectorError(
                f"mastodon option admin_remove_action must be one of {sorted(REMOVE_ACTIONS)}"
            )
        self.admin_remove_action = action
        self._session = session
        self._sleep = sleep
        self._rng = rng
        self._api: Any = None
        self._me_id: str | None = None
        self.requests_made = 0  # platform requests so far (each library call is one request)

    def __repr__(self) -> str:
        return f"MastodonConnector(key={self.account.key!r}, api_base_url={self.api_base_url!r})"

    # ------------------------------------------------------------ plumbing

    def _translate(self, exc: MastodonError) -> ConnectorError:
        """Turn a Mastodon.py error into one of ours (library errors never escape)."""
        if isinstance(exc, MastodonRatelimitError):
            return RateLimited(self._retry_after(), "mastodon rate limit")
        if isinstance(exc, MastodonUnauthorizedError):
            return AuthError("mastodon rejected the access token (401)")
        if isinstance(exc, MastodonNotFoundError):
            return Gone("mastodon: not found (404)")
        if isinstance(exc, MastodonServerError):
            return TransientError(f"mastodon server error: {_status_of(exc)}")
        if isinstance(exc, MastodonNetworkError):
            return TransientError(f"mastodon network error: {type(exc).__name__}")
        if isinstance(exc, MastodonAPIError):
            status = _status_of(exc)
            if status is None:
                # A 2xx whose body was not JSON: a proxy or the server broke mid-response.
                return TransientError("mastodon sent a malformed response")
            if status == 403:
                return AuthError(f"mastodon refused the request (403): {_message_of(exc)}")
            if status == 410:
                return Gone("mastodon: gone (410)")
            if status == 429:
                return RateLimited(self._retry_after(), "mastodon rate limit")
            if status in {408, 425} or status >= 500:
                return TransientError(f"mastodon error {status}")
            return ConnectorError(f"mastodon error {status}: {_message_of(exc)}")
        return ConnectorError(f"mastodon client error: {type(exc).__name__}")

    def _retry_after(self) -> float:
        # Mastodon.py has already parsed X-RateLimit-Reset (epoch or ISO time) and
        # corrected it for the server's clock using the Date header.
        reset = getattr(self._api, "ratelimit_reset", None)
        if isinstance(reset, (int, float)):
            return max(0.0, float(reset) - time.time())
        return DEFAULT_RETRY_AFTER

    def _call(self, fn: Callable[[], T], *, requests_per_call: int = 1) -> T:
        """One library call (normally one platform request), errors translated."""
        if self._api is None:
            raise ConnectorError("mastodon connector is not connected")
        self.requests_made += requests_per_call
        try:
            return fn()
        except MastodonVersionError as exc:
            # retrieve_mastodon_version(fail_hard=True) wraps the real cause.
            cause = exc.__cause__
            if isinstance(cause, MastodonError):
                raise self._translate(cause) from exc
            raise ConnectorError("mastodon: could not read the server version") from exc
        except MastodonError as exc:
            raise self._translate(exc) from exc

    def _read(self, fn: Callable[[], T], *, requests_per_call: int = 1) -> T:
        """An idempotent request, retried with jittered backoff on transient failures."""
        return with_retries(
            partial(self._call, fn, requests_per_call=requests_per_call),
            attempts=self.retry_attempts,
            sleep=self._sleep,
            rng=self._rng,
        )

    def _convert(self, fn: Callable[[], T]) -> T:
        """Map platform JSON into our types; junk from the server is a transient fault."""
        try:
            return fn()
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransientError(
                f"mastodon sent an unreadable status: {type(exc).__name__}"
            ) from exc

    def _client(self) -> Any:
        token = self.account.credentials.get("access_token")
        if not token:
            raise AuthError(f"mastodon account {self.account.key!r} has no access_token")
        api = Mastodon(
            api_base_url=self.api_base_url,
            ratelimit_method="throw",  # we own waiting: the scheduler honours RateLimited
            request_timeout=self.request_timeout,
            version_check_mode="none",  # no hidden /api/v1/instance requests
            session=self._session,
            user_agent="school-social-monitor",
        )
        # Set after construction: given to the constructor, Mastodon.py would read a
        # token that happens to name an existing file from that file instead.
        api.access_token = token
        return api

    # ------------------------------------------------------------ connect

    def connect(self) -> frozenset[Capability]:
        """Check the token, learn the account id and what this account may do."""
        self.close()
        self._api = self._client()
        me = self._read(self._api.account_verify_credentials)
        # Search with min_id/max_id makes Mastodon.py check the server version; read it
        # once here (GET /api/v1/instance and /api/v2/instance) rather than mid-poll.
        self._read(
            partial(self._api.retrieve_mastodon_version, fail_hard=True), requests_per_call=2
        )
        self._me_id = _sid(me["id"])
        granted = set(self.CAPABILITIES - self.ADMIN_CAPABILITIES)
        if self.admin_requested:
            if self._admin_usable(me):
                granted |= self.ADMIN_CAPABILITIES
            else:
                log.warning(
                    "mastodon account %s: admin requested but the token cannot moderate accounts",
                    self.account.key,
                )
        self.granted = frozenset(granted)
        return self.granted

    def _admin_usable(self, me: Mapping[str, Any]) -> bool:
        """Whether the role allows account moderation and the token reaches the admin API."""
        role = me.get("role")
        permissions = role.get("permissions") if isinstance(role, Mapping) else None
        if permissions is not None:
            try:
                bits = int(permissions)
            except (TypeError, ValueError):
                bits = 0
            needed = PERMISSION_MANAGE_USERS | PERMISSION_MANAGE_REPORTS
            if not (bits & PERMISSION_ADMINISTRATOR or bits & needed == needed):
                return False
        try:
            # Real Mastodon answers 403 without the admin:read scope or the role.
            self._read(partial(self._api.admin_account, self._me_id))
        except (RateLimited, TransientError):
            raise
        except ConnectorError:
            return False
        return True

    @property
    def me_id(self) -> str:
        """The school account's id on the instance."""
        if self._me_id is None:
            raise ConnectorError("mastodon connector is not connected")
        return self._me_id

    # ------------------------------------------------------------ mapping

    def _item(
        self,
        status: Mapping[str, Any],
        kind: ItemKind,
        *,
        root_id: str | None = None,
    ) -> Item:
        account = status["account"]
        content = str(status.get("content") or "")
        text = html_to_text(content)
        warning = str(status.get("spoiler_text") or "").strip()
        if warning:
            text = f"{warning}\n\n{text}" if text else warning
        parent = status.get("in_reply_to_id")
        author_id = _sid(account["id"])
        return Item(
            platform=Platform.MASTODON,
            platform_id=_sid(status["id"]),
            kind=kind,
            url=str(status.get("url") or status.get("uri") or ""),
            author=Author(
                id=author_id,
                handle=str(account.get("acct") or account.get("username") or ""),
                display_name=(
                    str(account["display_name"]) if account.get("display_name") else None
                ),
            ),
            text=text,
            created_at=_aware(status["created_at"]),
            parent_id=_sid(parent) if parent is not None else None,
            root_id=root_id,
            is_own=author_id == self._me_id,
            engagement={
                "favourites": int(status.get("favourites_count") or 0),
                "reblogs": int(status.get("reblogs_count") or 0),
                "replies": int(status.get("replies_count") or 0),
            },
            raw=raw_json(status),
        )

    def _kind_for(self, status: Mapping[str, Any]) -> ItemKind:
        replying_to = status.get("in_reply_to_account_id")
        if replying_to is not None and _sid(replying_to) == self._me_id:
            return ItemKind.REPLY
        return ItemKind.MENTION

    # ------------------------------------------------------------ reading

    def _page_after(
        self, fetch: Callable[[str], Sequence[Any]], after: str
    ) -> tuple[list[Any], str, bool, int]:
        """Walk pages oldest-first above ``after`` (min_id): rows, new cursor, more, pages."""
        rows: list[Any] = []
        pages = 0
        more = False
        while pages < self.max_pages:
            batch = list(self._read(partial(fetch, after)))
            pages += 1
            if not batch:
                more = False
                break
            batch.sort(key=lambda row: _id_key(_sid(row["id"])))
            rows.extend(batch)
            after = _sid(batch[-1]["id"])
            # min_id pages are adjacent to the cursor, so a full page means more may follow.
            more = len(batch) >= self.page_size
            if not more:
                break
        return rows, after, more, pages

    def poll_posts(self, cursor: str | None) -> Page:
        """The school's own new statuses (not boosts), oldest first, resuming at ``cursor``."""
        self.require(Capability.OWN_POSTS)
        state = _decode(cursor)
        start = str(state.get("after") or "0")
        before = self.requests_made
        rows, after, more, _ = self._page_after(
            lambda a: self._api.account_statuses(
                self.me_id, min_id=a, limit=self.page_size, exclude_reblogs=True
            ),
            start,
        )
        items = self._convert(lambda: tuple(self._item(row, ItemKind.POST) for row in rows))
        new_cursor = _encode({"after": after}) if rows or cursor else None
        return Page(items=items, cursor=new_cursor, more=more, requests=self.requests_made - before)

    def poll_notifications(self, cursor: str | None) -> Page:
        """New mentions of the school: REPLY when answering the school, else MENTION."""
        self.require(Capability.NOTIFICATIONS)
        state = _decode(cursor)
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
        new_cursor = _encode({"after": after}) if rows or cursor else None
        return Page(items=items, cursor=new_cursor, more=more, requests=self.requests_made - before)

    def poll_replies(self, post_ids: Sequence[str], cursor: str | None) -> Page:
        """New replies at any depth under the given own statuses."""
        # Federated replies can arrive late with an older id, so no id watermark is
        # trusted: per post the cursor keeps the replies seen within reply_window of
        # the newest one, and a reply older than that window counts as delivered.
        # At most max_contexts posts are read per poll; the rest continue next poll.
        self.require(Capability.REPLIES)
        state = _decode(cursor)
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
        new_cursor = _encode({"posts": posts_state, "resume": next_resume})
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
        while current is not None and current != post_id and hops < 10_000:
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
        state = _decode(cursor)
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
            cursor=_encode({"terms": new_terms}),
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

    def hide(self, item: Item) -> None:
        """Mastodon cannot hide a reply under one's own post."""
        raise NotSupported(
            "Mastodon has no way to hide a reply: report it, block or mute the author, "
            "or remove it as instance admin"
        )

    def unhide(self, item: Item) -> None:
        """Mastodon cannot hide replies, so nothing can be unhidden."""
        raise NotSupported("Mastodon has no way to hide or unhide a reply")

    def block(self, author: Author) -> None:
        """Block the author (idempotent, so retried on transient faults)."""
        self.require(Capability.BLOCK)
        self._not_self(author)
        self._read(lambda: self._api.account_block(author.id))

    def mute(self, author: Author) -> None:
        """Mute the author in the school's timelines, keeping their notifications."""
        self.require(Capability.MUTE)
        self._not_self(author)
        # Muted accounts vanish from the school's view of threads; muting their
        # notifications as well would blind the monitor to what they post next.
        self._read(lambda: self._api.account_mute(author.id, notifications=False))

    def report(self, item: Item, *, reason: str) -> str | None:
        """Report the status to our instance's moderators, forwarded to a remote author's server."""
        self.require(Capability.REPORT)
        self._not_self(item.author)
        report = self._file_report(item, reason=reason, category="other")
        return _sid(report["id"]) if report.get("id") is not None else None

    def _file_report(self, item: Item, *, reason: str, category: str) -> Any:
        # Not retried: a report is not idempotent and a duplicate burdens moderators.
        return self._call(
            lambda: self._api.report(
                item.author.id,
                status_ids=[item.platform_id],
                comment=reason[:MAX_REPORT_COMMENT],
                forward=self.report_forward,
                category=category,
            )
        )

    def reply(self, item: Item, text: str) -> Item:
        """Reply publicly (never wider than the parent) as the school; returns the new status."""
        self.require(Capability.REPLY)
        handle = item.author.handle
        body = text
        if (
            item.author.id != self._me_id
            and handle
            and f"@{handle}".casefold() not in text.casefold()
        ):
            body = f"@{handle} {text}"
        visibility = str(item.raw.get("visibility") or "public")
        if visibility not in REPLY_VISIBILITIES:
            visibility = "public"
        # The idempotency key makes a retried post land once.
        key = uuid.uuid4().hex
        status = self._read(
            lambda: self._api.status_post(
                body, in_reply_to_id=item.platform_id, visibility=visibility, idempotency_key=key
            )
        )
        return self._convert(lambda: self._item(status, ItemKind.POST, root_id=item.root_id))

    def delete_own(self, item: Item) -> None:
        """Delete a status the school's account wrote."""
        self.require(Capability.DELETE_OWN)
        if item.author.id != self.me_id:
            raise NotSupported("the school's account can only delete its own statuses")
        self._call(lambda: self._api.status_delete(item.platform_id))

    def remove(self, item: Item, *, spam: bool = False) -> None:
        """As instance admin: report the status, then close the report with an account action."""
        # Mastodon's API cannot delete another person's single status, so this
        # suspends (default) or limits the author on the school's instance, which
        # takes the status out of view there. The report carries the status as
        # evidence and is forwarded to a remote author's server when enabled.
        # Not atomic: if the action fails after the report, a retry files a second report.
        self.require(Capability.REMOVE)
        self._not_self(item.author)
        category = "spam" if spam else "other"
        report = self._file_report(
            item, reason="Removed by the school's moderators", category=category
        )
        report_id = report.get("id")
        self._read(
            lambda: self._api.admin_account_moderate(
                item.author.id,
                action=self.admin_remove_action,
                report_id=report_id,
                text="Removed by the school's moderators",
            )
        )

    def approve(self, item: Item) -> None:
        """Reverse ``remove``: lift the suspension or limit on the author."""
        self.require(Capability.APPROVE)
        undo = REMOVE_ACTIONS[self.admin_remove_action]
        if undo == "unsuspend":
            self._read(lambda: self._api.admin_account_unsuspend(item.author.id))
        else:
            self._read(lambda: self._api.admin_account_unsilence(item.author.id))

    def _not_self(self, author: Author) -> None:
        if author.id == self.me_id:
            raise NotSupported("the school's account cannot act against itself")

    def close(self) -> None:
        """Drop the HTTP session."""
        if self._api is not None and self._session is None:
            self._api.session.close()
        self._api = None


def _status_of(exc: MastodonError) -> int | None:
    """The HTTP status Mastodon.py put in an API error's args, if any."""
    args = exc.args
    if len(args) >= 2 and isinstance(args[1], int):
        return args[1]
    return None


def _message_of(exc: MastodonError) -> str:
    args = exc.args
    if len(args) >= 4 and args[3]:
        return str(args[3])[:200]
    return type(exc).__name__
