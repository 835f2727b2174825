"""Publishing to Reddit (the project's local Reddit server, real praw): a self post, found by its
marker after an unknown outcome instead of being submitted twice; withdrawn by deleting it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from connectors.publishing import OutgoingPost
from connectors.reddit_publish import RedditPublisher, marker
from tests.connectors.harness_reddit import (  # noqa: F401 - fixture
    HOME,
    SCHOOL,
    RedditHarness,
    reddit_harness_fixture,
)

pytestmark = pytest.mark.peer


def own_submissions(h: RedditHarness) -> list[object]:
    return list(h.client(SCHOOL).redditor(SCHOOL).submissions.new(limit=100))


def test_a_self_post_once_even_when_retried(reddit_harness: RedditHarness) -> None:
    h = reddit_harness
    publisher = RedditPublisher.for_account(h.account(subreddits=[HOME]))
    post = OutgoingPost(
        key="post-7-3-abcdef",
        serial=7,
        parts=("Sports day is on Friday.", "Bring a water bottle."),
        title="Sports day",
    )
    seen: list[Sequence[str]] = []
    first = publisher.publish(post, [], seen.append)
    assert seen == [list(first.ids)]
    # the outcome was lost (a crash before it was recorded): the retry finds the post
    again = publisher.publish(
        OutgoingPost(post.key, post.serial, post.parts, title=post.title, retry=True),
        [],
        lambda _ids: None,
    )
    assert again.ids == first.ids
    mine = own_submissions(h)
    assert len(mine) == 1
    submission = mine[0]
    assert submission.title == "Sports day"  # type: ignore[attr-defined]
    body = submission.selftext  # type: ignore[attr-defined]
    assert "Sports day is on Friday.\n\nBring a water bottle." in body
    assert marker(post.key) in body
    assert first.url.endswith(submission.permalink)  # type: ignore[attr-defined]
    publisher.withdraw(first.ids)
    h.wait_indexed()
    assert [s for s in own_submissions(h) if getattr(s, "author", None) is not None] == []


def test_another_post_is_not_mistaken_for_ours(reddit_harness: RedditHarness) -> None:
    h = reddit_harness
    publisher = RedditPublisher.for_account(h.account(subreddits=[HOME]))
    publisher.publish(
        OutgoingPost("post-1-1-aaaa", 1, ("Same words",), title="Same"), [], lambda _i: None
    )
    other = OutgoingPost("post-2-1-bbbb", 2, ("Same words",), title="Same", retry=True)
    publisher.publish(other, [], lambda _i: None)
    assert len(own_submissions(h)) == 2
