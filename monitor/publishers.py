"""Which publisher posts for an account: built from the account's settings and secrets."""

from __future__ import annotations

from collections.abc import Callable

from connectors.base import AccountRef
from connectors.publishing import Publisher, PublishError
from monitor.constants import Platform
from monitor.storage import tables as t


def build_publisher(ref: AccountRef) -> Publisher:
    """A publisher logged in as ``ref`` (each platform's library is imported only when used)."""
    if ref.platform is Platform.MASTODON:
        from connectors import mastodon_publish

        return mastodon_publish.MastodonPublisher(mastodon_publish.client_for(ref))
    if ref.platform is Platform.REDDIT:
        from connectors import reddit_publish

        return reddit_publish.RedditPublisher.for_account(ref)
    if ref.platform is Platform.BLUESKY:
        from connectors import bluesky_publish

        return bluesky_publish.BlueskyPublisher.for_account(ref)
    raise PublishError(f"cannot publish on {ref.platform}", permanent=True)


class PublisherCache:
    """One publisher per account, rebuilt when the account's settings change."""

    def __init__(self, account_ref: Callable[[t.Account], AccountRef]) -> None:
        self._account_ref = account_ref
        self._live: dict[str, tuple[AccountRef, Publisher]] = {}

    def __call__(self, account: t.Account) -> Publisher:
        ref = self._account_ref(account)
        live = self._live.get(account.key)
        if live is not None and live[0] == ref:
            return live[1]
        publisher = build_publisher(ref)
        self._live[account.key] = (ref, publisher)
        return publisher
