"""Per-platform rate budgets: the scopes as data, and the shared token buckets on real Redis."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from monitor.constants import Platform
from monitor.rules.rate_budgets import BUDGETS, Budget, Scope, bucket_name, parse_overrides
from monitor.scale.budget import Buckets
from tests.scale.fleet import REDIS_URL, new_prefix, reachable


def test_bluesky_is_shared_per_address_mastodon_per_account_reddit_per_client() -> None:
    def name(platform: Platform, account: str, client: str | None) -> str:
        return bucket_name(platform, account_key=account, client_id=client, egress="eu-1")

    assert name(Platform.BLUESKY, "a", None) == name(Platform.BLUESKY, "b", None)
    assert name(Platform.MASTODON, "a", None) != name(Platform.MASTODON, "b", None)
    assert name(Platform.REDDIT, "a", "app-1") == name(Platform.REDDIT, "b", "app-1")
    assert name(Platform.REDDIT, "a", "app-1") != name(Platform.REDDIT, "a", "app-2")
    assert "app-1" not in name(Platform.REDDIT, "a", "app-1")  # a client id is never stored
    assert {b.scope for b in BUDGETS.values()} == set(Scope)
    # under each platform's published limit
    assert BUDGETS[Platform.BLUESKY].rate <= 3000 / 300
    assert BUDGETS[Platform.MASTODON].rate <= 300 / 300
    assert BUDGETS[Platform.REDDIT].rate <= 100 / 60


def test_overrides_keep_the_scope() -> None:
    assert parse_overrides("reddit=600/60, mastodon=30/300") == {
        Platform.REDDIT: Budget(600, 60, Scope.CLIENT),
        Platform.MASTODON: Budget(30, 300, Scope.ACCOUNT),
    }
    assert parse_overrides("") == {}
    with pytest.raises(ValueError):
        parse_overrides("myspace=1/1")


@pytest.fixture
def redis_client() -> Iterator[Any]:
    if not reachable("127.0.0.1", 6379):
        if os.environ.get("REQUIRE_PEERS"):
            pytest.fail("Redis must run on 127.0.0.1:6379")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.mark.peer
def test_buckets_are_shared_and_a_debt_makes_polls_wait(redis_client: Any) -> None:
    prefix = new_prefix()
    budget = Budget(3, 60, Scope.ACCOUNT)  # 3 requests a minute: one every 20 s
    one, other = Buckets(redis_client, prefix), Buckets(redis_client, prefix)  # two workers
    try:
        assert one.wait("reddit:client:x", budget) == 0
        one.charge("reddit:client:x", budget, 2)
        assert other.wait("reddit:client:x", budget) == 0  # one token left, seen by both
        other.charge("reddit:client:x", budget, 3)  # a poll of three pages: into debt
        wait = one.wait("reddit:client:x", budget)
        assert 55 < wait <= 60  # three tokens owed: the next request is due in about a minute
        assert other.wait("reddit:client:y", budget) == 0  # another client is not slowed
        before = time.monotonic()
        assert one.wait("reddit:client:x", budget) <= wait - (time.monotonic() - before) + 0.1
    finally:
        keys = list(redis_client.scan_iter(f"{prefix}:*"))
        if keys:
            redis_client.delete(*keys)
