"""Publishing on Mastodon exactly once: the status API's ``Idempotency-Key`` header.

Mastodon keeps an ``Idempotency-Key`` for about an hour; a retry later than that first looks
for the status among the account's own recent ones (same text, posted since the first attempt)
so a post is never doubled however long the outage.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from mastodon import (
    Mastodon,
    MastodonAPIError,
    MastodonError,
    MastodonNetworkError,
    MastodonNotFoundError,
    MastodonRatelimitError,
    MastodonUnauthorizedError,
)

from connectors.base import AccountRef
from connectors.publishing import OutgoingPost, Progress, Published, PublishError

T = TypeVar("T")
LOOKBACK = 40  # own statuses read when looking for a part after an unknown outcome
_TAG = re.compile(r"<[^>]+>")


def _plain(html: str) -> str:
    text = html.replace("<br>", "\n").replace("<br />", "\n").replace("</p><p>", "\n\n")
    return html_lib.unescape(_TAG.sub("", text)).strip()


def _same_text(status_html: str, text: str) -> bool:
    return " ".join(_plain(status_html).split()) == " ".join(text.split())


class MastodonPublisher:
    """Publishes with a Mastodon.py client (``api``) logged in as the school's account."""

    def __init__(self, api: Any, *, visibility: str = "public") -> None:
        self.api = api
        self.visibility = visibility
        self._me: str | None = None
        self._first_url = ""

    def _call(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except MastodonRatelimitError as exc:
            raise PublishError(f"mastodon rate limit: {exc}") from exc
        except MastodonUnauthorizedError as exc:
            raise PublishError(f"mastodon refused the token: {exc}", permanent=True) from exc
        except MastodonNetworkError as exc:
            raise PublishError(f"mastodon unreachable: {type(exc).__name__}") from exc
        except MastodonAPIError as exc:
            status = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], int) else 0
            permanent = status in (400, 403, 404, 410, 413, 415, 422)
            raise PublishError(f"mastodon said {status or exc}", permanent=permanent) from exc
        except MastodonError as exc:
            raise PublishError(f"mastodon error: {type(exc).__name__}") from exc

    def _find(self, text: str, reply_to: str | None) -> str | None:
        """A status of ours with ``text`` (and the same parent): an earlier attempt landed."""
        if self._me is None:
            self._me = str(self._call(self.api.account_verify_credentials)["id"])
        statuses = self._call(partial(self.api.account_statuses, self._me, limit=LOOKBACK))
        for status in statuses:
            parent = status.get("in_reply_to_id")
            if _same_text(str(status.get("content") or ""), text) and (
                (str(parent) if parent is not None else None) == reply_to
            ):
                return str(status["id"])
        return None

    def publish(self, post: OutgoingPost, done: Sequence[str], progress: Progress) -> Published:
        """Each part with the key ``<post.key>:<n>``; images on the first part."""
        ids = [str(i) for i in done]
        retry = post.retry
        for index in range(len(ids), len(post.parts)):
            text = post.parts[index]
            reply_to = ids[-1] if ids else None
            found = self._find(text, reply_to) if retry else None
            if found is None:
                media: list[Any] = []
                if index == 0:
                    for image in post.images:
                        uploaded = self._call(
                            partial(
                                self.api.media_post,
                                image.data,
                                mime_type=image.media_type,
                                description=image.alt,
                            )
                        )
                        media.append(uploaded["id"])
                status = self._call(
                    partial(
                        self.api.status_post,
                        text,
                        in_reply_to_id=reply_to,
                        media_ids=media or None,
                        visibility=self.visibility,
                        idempotency_key=f"{post.key}:{index}",
                    )
                )
                found = str(status["id"])
                if index == 0:
                    self._first_url = str(status.get("url") or "")
            ids.append(found)
            progress(list(ids))
        url = self._first_url or self._url(ids[0])
        return Published(ids=tuple(ids), url=url)

    def _url(self, status_id: str) -> str:
        try:
            return str(self._call(partial(self.api.status, status_id)).get("url") or "")
        except PublishError:
            return ""

    def withdraw(self, ids: Sequence[str]) -> None:
        """Delete every part, replies first; parts already gone are fine."""
        for status_id in reversed(list(ids)):
            try:
                self._call(partial(self.api.status_delete, status_id))
            except PublishError as exc:
                if not isinstance(exc.__cause__, MastodonNotFoundError):
                    raise


def client_for(account: AccountRef, *, session: Any = None) -> Any:
    """A Mastodon.py client for ``account`` (its ``api_base_url`` and ``access_token``)."""
    base = str(account.options.get("api_base_url") or "").strip().rstrip("/")
    token = account.credentials.get("access_token")
    if not base or not token:
        raise PublishError(
            f"mastodon account {account.key!r} needs api_base_url and an access_token",
            permanent=True,
        )
    api = Mastodon(
        api_base_url=base,
        ratelimit_method="throw",
        request_timeout=float(account.options.get("request_timeout", 30)),
        version_check_mode="none",
        session=session,
        user_agent="school-social-monitor",
    )
    # set after construction: a token naming an existing file would otherwise be read from it
    api.access_token = token
    return api
