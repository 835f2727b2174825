"""The Mastodon peer harness keeps its promises: faults hit only the connector, counts are exact."""

from __future__ import annotations

import pytest

from connectors.base import AuthError, ConnectorError, RateLimited, TransientError
from monitor.constants import ItemKind, Platform
from tests.connectors.harness import FaultKind, PeerHarness
from tests.connectors.harness_mastodon import (  # noqa: F401 - fixture
    MastodonHarness,
    mastodon_harness_fixture,
)

pytestmark = pytest.mark.peer


def test_is_a_peer_harness(mastodon_harness: MastodonHarness) -> None:
    """The harness has the shape the cross-platform contract suite expects."""
    harness: PeerHarness = mastodon_harness
    assert harness.platform is Platform.MASTODON
    for name in (
        "connector",
        "own_post",
        "reply",
        "mention",
        "delete",
        "fail_next",
        "wait_indexed",
        "request_count",
    ):
        assert callable(getattr(harness, name))


def test_connect_costs_three_requests(mastodon_harness: MastodonHarness) -> None:
    """verify_credentials plus the two instance reads; admin mode adds one admin probe."""
    h = mastodon_harness
    start = h.request_count()
    h.connector()
    assert h.request_count() - start == 3
    start = h.request_count()
    h.connector(admin=True)
    assert h.request_count() - start == 4


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("ratelimit", RateLimited),
        ("server_error", TransientError),
        ("timeout", TransientError),
        ("auth", AuthError),
    ],
)
def test_each_fault_kind_reaches_the_connector_as_its_error(
    mastodon_harness: MastodonHarness, kind: FaultKind, error: type[ConnectorError]
) -> None:
    """fail_next(kind) fails the connector's next request with the matching error."""
    h = mastodon_harness
    conn = h.connector(retry_attempts=0)
    h.fail_next(kind)
    with pytest.raises(error):
        conn.poll_posts(None)
    assert h.pending_faults() == 0


def test_faults_skip_the_harness_own_actions(mastodon_harness: MastodonHarness) -> None:
    """Posting, replying and deleting as people never consumes a fault meant for the connector."""
    h = mastodon_harness
    conn = h.connector(retry_attempts=0)
    h.fail_next("server_error", count=2)
    post = h.own_post("hello")
    reply = h.reply(post, "hi")
    extra = h.mention("greenfield")
    h.delete(extra)
    h.wait_indexed()
    assert h.pending_faults() == 2
    for _ in range(2):
        with pytest.raises(TransientError):
            conn.poll_replies([post], None)
    assert h.pending_faults() == 0
    assert [i.platform_id for i in conn.poll_replies([post], None).items] == [reply]


def test_request_count_matches_what_polls_report(mastodon_harness: MastodonHarness) -> None:
    """Page.requests agrees with the count taken on the wire, retries included."""
    h = mastodon_harness
    posts = [h.own_post(f"p{n}") for n in range(3)]
    h.reply(posts[0], "r")
    conn = h.connector(page_size=2)
    h.fail_next("server_error")
    start = h.request_count()
    pages = [
        conn.poll_posts(None),
        conn.poll_replies(posts, None),
        conn.poll_notifications(None),
        conn.poll_mentions(["p0", "r"], None),
    ]
    assert h.request_count() - start == sum(p.requests for p in pages)


def test_public_replies_mention_the_author_like_the_apps(mastodon_harness: MastodonHarness) -> None:
    """harness.reply notifies the school (it mentions it); without the mention only the thread shows it."""
    h = mastodon_harness
    post = h.own_post("hello")
    with_mention = h.reply(post, "hi")
    without = h.reply(post, "quietly", mention_author=False)
    conn = h.connector()
    notified = {i.platform_id: i.kind for i in conn.poll_notifications(None).items}
    assert notified == {with_mention: ItemKind.REPLY}
    threaded = [i.platform_id for i in conn.poll_replies([post], None).items]
    assert threaded == [with_mention, without]
