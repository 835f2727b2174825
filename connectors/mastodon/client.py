"""The Mastodon client: the API object, calls with retries, connecting, items and paging."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import partial
from http import HTTPStatus
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
    Gone,
    Item,
    RateLimited,
    TransientError,
    raw_json,
)
from connectors.mastodon.convert import (
    DEFAULT_RETRY_AFTER,
    MAX_PAGE_SIZE,
    PERMISSION_ADMINISTRATOR,
    PERMISSION_MANAGE_REPORTS,
    PERMISSION_MANAGE_USERS,
    REMOVE_ACTIONS,
    _as_bool,
    _as_number,
    _aware,
    _id_key,
    _is_loopback,
    _sid,
    html_to_text,
)
from connectors.mastodon.errors import _message_of, _status_of
from connectors.paging import CursorFormat
from connectors.retry import with_retries
from monitor.constants import ItemKind, Platform

log = logging.getLogger(__name__)

T = TypeVar("T")


CURSORS = CursorFormat("mastodon", version=1)
# statuses worth retrying besides 5xx: a request timeout and "too early"
_TRANSIENT_STATUSES = frozenset({HTTPStatus.REQUEST_TIMEOUT, HTTPStatus.TOO_EARLY})


class MastodonClient(Connector):
    """A school's Mastodon account; admin actions where the school runs the instance."""

    ADMIN_CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.REMOVE, Capability.APPROVE, Capability.ADMIN}
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
            return self._translate_status(exc)
        return ConnectorError(f"mastodon client error: {type(exc).__name__}")

    def _translate_status(self, exc: MastodonAPIError) -> ConnectorError:
        """An API error by its HTTP status."""
        status = _status_of(exc)
        if status is None:
            # A 2xx whose body was not JSON: a proxy or the server broke mid-response.
            return TransientError("mastodon sent a malformed response")
        if status == HTTPStatus.FORBIDDEN:
            return AuthError(f"mastodon refused the request (403): {_message_of(exc)}")
        if status == HTTPStatus.GONE:
            return Gone("mastodon: gone (410)")
        if status == HTTPStatus.TOO_MANY_REQUESTS:
            return RateLimited(self._retry_after(), "mastodon rate limit")
        if status in _TRANSIENT_STATUSES or status >= HTTPStatus.INTERNAL_SERVER_ERROR:
            return TransientError(f"mastodon error {status}")
        return ConnectorError(f"mastodon error {status}: {_message_of(exc)}")

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
