"""Cursors over reddit listings: beyond one page, resumed from storage, no gaps, no repeats.

Bulk content is written straight into the server's state (as reddit would store it) to
keep these tests quick; the connector still reads it all through praw over HTTP.
"""

from __future__ import annotations

import json

import pytest

from connectors.base import Page
from tests.connectors.harness_reddit import (  # noqa: F401 - fixture
    HOME,
    PUBLIC,
    SCHOOL,
    RedditHarness,
    reddit_harness_fixture,
)

pytestmark = pytest.mark.peer


def drain(poll: object, cursor: str | None, limit: int = 20) -> tuple[list[str], str | None, int]:
    """Poll until no backlog is left, storing the cursor as text each time."""
    seen: list[str] = []
    polls = 0
    while True:
        page: Page = poll(cursor)  # type: ignore[operator]
        polls += 1
        seen += [i.platform_id for i in page.items]
        cursor = json.loads(json.dumps(page.cursor))  # stored and read back
        if not page.more:
            return seen, cursor, polls
        assert polls < limit, "backlog never drained"


def test_backlog_beyond_one_page_resumes_without_gaps(reddit_harness: RedditHarness) -> None:
    """250 comments, 100 a page, one page a poll: three pages, each comment once.

    The poll that closes the backlog has no page left to look above its top, so it
    says ``more`` and one more (quiet) poll confirms nothing new arrived meanwhile.
    """
    h = reddit_harness
    state = h.server.state
    connector = h.connector(page_limit=100, max_pages=1)
    post = h.own_post("Busy thread")
    early = [state.comment(PUBLIC[0], post, f"early {i}").fullname for i in range(5)]
    first = connector.poll_community(None)
    assert {i.platform_id for i in first.items} >= set(early)
    burst = [state.comment(PUBLIC[i % 3], post, f"burst {i}").fullname for i in range(250)]
    seen, cursor, polls = drain(connector.poll_community, first.cursor)
    assert polls == 4
    assert sorted(seen) == sorted(burst) and len(seen) == len(set(seen))
    before = h.request_count()
    assert connector.poll_community(cursor).items == ()
    assert h.request_count() - before == 2


def test_new_items_during_a_backlog_are_not_lost(reddit_harness: RedditHarness) -> None:
    """Comments arriving while a gap is being filled come after it, once."""
    h = reddit_harness
    state = h.server.state
    connector = h.connector(page_limit=50, max_pages=1)
    post = h.own_post("Growing")
    cursor = connector.poll_community(None).cursor
    old = [state.comment(PUBLIC[0], post, f"old {i}").fullname for i in range(120)]
    seen: list[str] = []
    page = connector.poll_community(cursor)
    seen += [i.platform_id for i in page.items]
    assert page.more
    fresh = [state.comment(PUBLIC[1], post, f"fresh {i}").fullname for i in range(30)]
    rest, _, _ = drain(connector.poll_community, page.cursor)
    seen += rest
    assert sorted(seen) == sorted(old + fresh) and len(seen) == len(set(seen))


def test_gap_anchor_deleted_rewalks_from_the_top(reddit_harness: RedditHarness) -> None:
    """The oldest returned comment is deleted mid-backlog: reddit gives an empty page for
    that anchor, and the connector finds its way back without skipping anything."""
    h = reddit_harness
    state = h.server.state
    connector = h.connector(page_limit=40, max_pages=1)
    post = h.own_post("Anchors")
    cursor = connector.poll_community(None).cursor
    made = [state.comment(PUBLIC[0], post, f"c{i}").fullname for i in range(100)]
    page = connector.poll_community(cursor)
    got = [i.platform_id for i in page.items]
    assert page.more and len(got) == 40
    anchor = json.loads(page.cursor or "{}")["comments"]["gap"][2]
    assert anchor == min(got)
    state.delete(PUBLIC[0], anchor)
    rest, _, _ = drain(connector.poll_community, page.cursor)
    assert sorted(got + rest) == sorted(made) and len(rest) == len(set(rest))


def test_own_posts_page_and_resume(reddit_harness: RedditHarness) -> None:
    """The school's own posts, 130 of them, read 50 a poll from a stored cursor."""
    h = reddit_harness
    state = h.server.state
    connector = h.connector(page_limit=50, max_pages=1)
    cursor = connector.poll_posts(None).cursor
    posts = [state.submit(SCHOOL, HOME, f"Notice {i}", "").fullname for i in range(130)]
    seen, _, polls = drain(connector.poll_posts, cursor)
    assert polls == 4 and sorted(seen) == sorted(posts) and len(seen) == 130


def test_inbox_pages_with_several_pages_per_poll(reddit_harness: RedditHarness) -> None:
    """With max_pages=3 a 230-item inbox backlog drains in one poll of three requests."""
    h = reddit_harness
    state = h.server.state
    connector = h.connector(page_limit=100, max_pages=3)
    cursor = connector.poll_notifications(None).cursor
    post = h.own_post("Replies wanted")
    replies = [state.comment(PUBLIC[i % 3], post, f"r{i}").fullname for i in range(230)]
    before = h.request_count()
    page = connector.poll_notifications(cursor)
    assert h.request_count() - before == 3
    assert not page.more
    assert sorted(i.platform_id for i in page.items) == sorted(replies)


def test_thread_with_load_more_stubs(reddit_harness: RedditHarness) -> None:
    """A thread longer than one comments page: "more" stubs are expanded, nothing twice."""
    h = reddit_harness
    state = h.server.state
    connector = h.connector(max_pages=1)
    post = h.own_post("Huge thread")
    # 500 comments fit a comments page; the other 270 sit behind a "more" stub whose
    # ids need three /api/morechildren calls (100 ids each), one per poll at max_pages=1.
    tops = [state.comment(PUBLIC[0], post, f"top {i}").fullname for i in range(710)]
    nested = [state.comment(PUBLIC[1], tops[i], f"re {i}").fullname for i in range(0, 240, 4)]
    page = connector.poll_replies([post], None)
    ids = [i.platform_id for i in page.items]
    assert page.more and len(ids) < len(tops) + len(nested)
    rest, cursor, polls = drain(lambda c: connector.poll_replies([post], c), page.cursor)
    assert polls == 2
    assert len([r for r in h.server.requests if r.path == "/api/morechildren"]) == 3
    everything = ids + rest
    assert sorted(everything) == sorted(tops + nested)
    assert len(everything) == len(set(everything))
    late = state.comment(PUBLIC[2], nested[-1], "late").fullname
    assert [i.platform_id for i in connector.poll_replies([post], cursor).items] == [late]


def test_cursor_is_bounded(reddit_harness: RedditHarness) -> None:
    """However much was read, a listing cursor stays small."""
    h = reddit_harness
    state = h.server.state
    connector = h.connector(page_limit=100, max_pages=2)
    post = h.own_post("Bounded")
    cursor = connector.poll_community(None).cursor
    for _ in range(3):
        for i in range(150):
            state.comment(PUBLIC[0], post, f"n{i}")
        _, cursor, _ = drain(connector.poll_community, cursor)
    assert cursor is not None and len(cursor) < 400
