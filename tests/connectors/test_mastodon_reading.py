"""Mastodon connector reads against the mock server: posts, replies, notifications, search, fetch."""

from __future__ import annotations

from datetime import UTC

import pytest

from connectors.base import Capability, Stream, Visibility
from monitor.constants import ItemKind
from tests.connectors.harness_mastodon import (  # noqa: F401 - fixture
    PARENT,
    SCHOOL,
    STAFF,
    TROLL,
    TROLL_ACCT,
    MastodonHarness,
    mastodon_harness_fixture,
)

pytestmark = pytest.mark.peer


# ------------------------------------------------------------------ connect


def test_connect_learns_account_and_capabilities(mastodon_harness: MastodonHarness) -> None:
    """A plain account gets the reading and acting capabilities, never hide or admin."""
    conn = mastodon_harness.connector()
    assert conn.me_id == mastodon_harness.account_id(SCHOOL)
    assert Capability.HIDE not in conn.granted
    assert Capability.ADMIN not in conn.granted
    assert Capability.REMOVE not in conn.granted
    assert {Capability.REPORT, Capability.BLOCK, Capability.MUTE, Capability.REPLY} <= conn.granted
    assert conn.streams() == (Stream.POSTS, Stream.REPLIES, Stream.NOTIFICATIONS, Stream.MENTIONS)


def test_admin_only_for_a_role_that_may_moderate(mastodon_harness: MastodonHarness) -> None:
    """ADMIN needs both the admin option and a role allowed to moderate accounts."""
    admin = mastodon_harness.connector(admin=True)
    assert {Capability.ADMIN, Capability.REMOVE, Capability.APPROVE} <= admin.granted
    # The mock lets any token call the admin API; the role in verify_credentials decides.
    staff = mastodon_harness.connector(username=STAFF, admin=True)
    assert Capability.ADMIN not in staff.granted
    assert Capability.REMOVE not in staff.granted


# ------------------------------------------------------------------ own posts


def test_own_posts_map_to_items(mastodon_harness: MastodonHarness) -> None:
    """Text is plain, raw keeps the HTML, times are aware UTC, engagement is counted."""
    h = mastodon_harness
    post_id = h.own_post("Sports day <b>moved</b> & rescheduled, see https://example.com/x")
    h.client(PARENT).status_favourite(post_id)
    h.reply(post_id, "thanks!")
    conn = h.connector()
    page = conn.poll_posts(None)
    [item] = page.items
    assert item.platform_id == post_id
    assert item.kind is ItemKind.POST
    assert item.is_own
    assert item.text == "Sports day <b>moved</b> & rescheduled, see https://example.com/x"
    assert "&lt;b&gt;" in item.raw["content"]
    assert item.created_at.tzinfo is UTC
    assert item.url.endswith(f"/{post_id}")
    assert item.author.handle == SCHOOL
    assert item.author.display_name == "Greenfield Primary"
    assert item.engagement == {"favourites": 1, "reblogs": 0, "replies": 1}


def test_own_posts_page_without_gap_or_duplicate(mastodon_harness: MastodonHarness) -> None:
    """More posts than a page: bounded polls continue from the stored cursor exactly."""
    h = mastodon_harness
    ids = [h.own_post(f"notice {n}") for n in range(7)]
    conn = h.connector(page_size=3, max_pages=1)
    first = conn.poll_posts(None)
    assert [i.platform_id for i in first.items] == ids[:3]
    assert first.more and first.requests == 1
    # A restart: a new connector resumes from the stored cursor.
    stored = first.cursor
    conn2 = h.connector(page_size=3, max_pages=1)
    second = conn2.poll_posts(stored)
    third = conn2.poll_posts(second.cursor)
    assert [i.platform_id for i in second.items] == ids[3:6]
    assert [i.platform_id for i in third.items] == ids[6:]
    assert second.more and not third.more
    # Something new after a complete catch-up.
    late = h.own_post("late notice")
    fourth = conn2.poll_posts(third.cursor)
    assert [i.platform_id for i in fourth.items] == [late]


def test_several_pages_in_one_poll_stay_bounded(mastodon_harness: MastodonHarness) -> None:
    """One poll walks at most max_pages pages and says more remain."""
    h = mastodon_harness
    ids = [h.own_post(f"n{n}") for n in range(5)]
    conn = h.connector(page_size=2, max_pages=2)
    page = conn.poll_posts(None)
    assert [i.platform_id for i in page.items] == ids[:4]
    assert page.more and page.requests == 2
    rest = conn.poll_posts(page.cursor)
    assert [i.platform_id for i in rest.items] == ids[4:]
    assert not rest.more


def test_nothing_new_costs_one_request(mastodon_harness: MastodonHarness) -> None:
    """An idle poll of posts or notifications is a single request, counted on the wire."""
    h = mastodon_harness
    h.own_post("hello")
    conn = h.connector()
    posts = conn.poll_posts(None)
    notes = conn.poll_notifications(None)
    before = h.request_count()
    idle_posts = conn.poll_posts(posts.cursor)
    idle_notes = conn.poll_notifications(notes.cursor)
    assert idle_posts.items == () and idle_notes.items == ()
    assert idle_posts.requests == 1 and idle_notes.requests == 1
    assert h.request_count() - before == 2
    assert idle_posts.cursor == posts.cursor


def test_boosts_are_not_own_posts(mastodon_harness: MastodonHarness) -> None:
    """A boost by the school is someone else's words: not an own post."""
    h = mastodon_harness
    theirs = h.post_as(PARENT, "bake sale friday")
    h.client(SCHOOL).status_reblog(theirs)
    mine = h.own_post("our own words")
    page = h.connector().poll_posts(None)
    assert [i.platform_id for i in page.items] == [mine]


# ------------------------------------------------------------------ replies


def test_replies_at_any_depth_once(mastodon_harness: MastodonHarness) -> None:
    """Descendants at every depth arrive once; later ones arrive on the next poll."""
    h = mastodon_harness
    post = h.own_post("Term dates are out")
    r1 = h.reply(post, "great")
    r2 = h.post_as(TROLL, "deeper", in_reply_to=r1)
    school_answer = h.post_as(SCHOOL, "thank you", in_reply_to=r1)
    conn = h.connector()
    page = conn.poll_replies([post], None)
    assert [i.platform_id for i in page.items] == [r1, r2]
    assert all(i.kind is ItemKind.REPLY and i.root_id == post for i in page.items)
    assert [i.parent_id for i in page.items] == [post, r1]
    assert school_answer not in {i.platform_id for i in page.items}
    assert page.requests == 1
    r3 = h.post_as(PARENT, "deepest", in_reply_to=r2)
    again = conn.poll_replies([post], page.cursor)
    assert [i.platform_id for i in again.items] == [r3]
    idle = h.connector().poll_replies([post], again.cursor)
    assert idle.items == () and idle.requests == 1


def test_replies_under_nested_own_posts_are_reported_once(
    mastodon_harness: MastodonHarness,
) -> None:
    """A reply under the school's own reply belongs to that nearer tracked post only."""
    h = mastodon_harness
    top = h.own_post("Open evening")
    question = h.reply(top, "what time?")
    answer = h.post_as(SCHOOL, "6pm", in_reply_to=question)
    follow_up = h.reply(answer, "thanks")
    conn = h.connector(max_contexts=1)
    seen: list[str] = []
    cursor = None
    for _ in range(3):
        page = conn.poll_replies([top, answer], cursor)
        seen.extend(i.platform_id for i in page.items)
        cursor = page.cursor
    assert sorted(seen) == sorted([question, follow_up])


def test_reply_polling_is_bounded_per_poll(mastodon_harness: MastodonHarness) -> None:
    """At most max_contexts posts are read per poll; the rest continue next poll."""
    h = mastodon_harness
    posts = [h.own_post(f"p{n}") for n in range(3)]
    replies = [h.reply(p, f"r{n}") for n, p in enumerate(posts)]
    conn = h.connector(max_contexts=2)
    first = conn.poll_replies(posts, None)
    assert first.more and first.requests == 2
    second = conn.poll_replies(posts, first.cursor)
    assert not second.more and second.requests == 1
    got = [i.platform_id for i in first.items + second.items]
    assert sorted(got) == sorted(replies)


def test_replies_skip_a_deleted_own_post(mastodon_harness: MastodonHarness) -> None:
    """A tracked post the school deleted is skipped, not an error."""
    h = mastodon_harness
    keep = h.own_post("keep")
    gone = h.own_post("gone")
    reply = h.reply(keep, "hi")
    h.delete(gone)
    page = h.connector().poll_replies([gone, keep], None)
    assert [i.platform_id for i in page.items] == [reply]


def test_late_federated_reply_with_an_older_id_is_not_missed(
    mastodon_harness: MastodonHarness,
) -> None:
    """No id watermark: a reply seen only later is delivered even if other replies are newer."""
    h = mastodon_harness
    post = h.own_post("concert")
    first = h.reply(post, "first")
    hidden_then = h.post_as(TROLL, "arrives late", in_reply_to=post)
    # Limiting the remote author hides their reply from the context for now...
    h.client(SCHOOL).admin_account_moderate(h.account_id(TROLL), action="silence")
    conn = h.connector()
    page = conn.poll_replies([post], None)
    assert [i.platform_id for i in page.items] == [first]
    newer = h.reply(post, "newer")
    second = conn.poll_replies([post], page.cursor)
    assert [i.platform_id for i in second.items] == [newer]
    # ...and lifting it makes the older reply appear, as a delayed delivery would.
    h.client(SCHOOL).admin_account_unsilence(h.account_id(TROLL))
    later = conn.poll_replies([post], second.cursor)
    assert [i.platform_id for i in later.items] == [hidden_then]
    assert int(hidden_then) < int(newer)


# ------------------------------------------------------------------ notifications


def test_notifications_split_replies_and_mentions(mastodon_harness: MastodonHarness) -> None:
    """A mention replying to the school is a REPLY; any other mention is a MENTION."""
    h = mastodon_harness
    post = h.own_post("Uniform shop open")
    reply = h.reply(post, "@school when?")
    mention = h.post_as(TROLL, "@school your car park is chaos")
    h.client(PARENT).status_favourite(post)  # not a mention: ignored
    conn = h.connector()
    page = conn.poll_notifications(None)
    kinds = {i.platform_id: i.kind for i in page.items}
    assert kinds == {reply: ItemKind.REPLY, mention: ItemKind.MENTION}
    troll_item = next(i for i in page.items if i.platform_id == mention)
    assert troll_item.author.handle == TROLL_ACCT
    assert conn.poll_notifications(page.cursor).items == ()


def test_notifications_page_without_gap_or_duplicate(mastodon_harness: MastodonHarness) -> None:
    """More mentions than a page, resumed from a stored cursor by a new connector."""
    h = mastodon_harness
    ids = [h.post_as(PARENT, f"@school question {n}") for n in range(5)]
    first = h.connector(page_size=2, max_pages=1).poll_notifications(None)
    conn = h.connector(page_size=2, max_pages=1)
    got = [i.platform_id for i in first.items]
    cursor = first.cursor
    more = first.more
    while more:
        page = conn.poll_notifications(cursor)
        got.extend(i.platform_id for i in page.items)
        cursor, more = page.cursor, page.more
    assert got == ids


# ------------------------------------------------------------------ mentions (search)


def test_mentions_are_post_filtered_case_insensitively(mastodon_harness: MastodonHarness) -> None:
    """The mock's search matches markup too; only real textual matches come back."""
    h = mastodon_harness
    hit = h.mention("Well done GREENFIELD primary!")
    post = h.own_post("Greenfield news")  # the school's own words are posts, not mentions
    h.reply(post, "greenfield rocks")  # a reply to the school belongs to the replies stream
    h.mention("link only https://example.com/page")  # search matches rel="nofollow" markup
    conn = h.connector()
    page = conn.poll_mentions(["greenfield", "nofollow"], None)
    assert [i.platform_id for i in page.items] == [hit]
    assert page.items[0].kind is ItemKind.MENTION
    assert page.requests == 2  # one search per term
    again = conn.poll_mentions(["greenfield", "nofollow"], page.cursor)
    assert again.items == () and again.requests == 2
    later = h.post_as(TROLL, "greenfield again")
    third = conn.poll_mentions(["greenfield", "nofollow"], again.cursor)
    assert [i.platform_id for i in third.items] == [later]


def test_mentions_for_a_new_term_start_fresh(mastodon_harness: MastodonHarness) -> None:
    """Adding a term later finds its existing matches without repeating the old term's."""
    h = mastodon_harness
    a = h.mention("greenfield fair")
    b = h.mention("oakwood fair")
    conn = h.connector()
    first = conn.poll_mentions(["Greenfield"], None)
    assert [i.platform_id for i in first.items] == [a]
    second = conn.poll_mentions(["Greenfield", "Oakwood"], first.cursor)
    assert [i.platform_id for i in second.items] == [b]


def test_full_search_page_asks_for_the_owed_range(mastodon_harness: MastodonHarness) -> None:
    """A full page of fresh matches makes the poll ask for the range below it, bounded."""
    h = mastodon_harness
    conn = h.connector()
    start = conn.poll_mentions(["fete"], None)  # nothing yet: everything later is new
    ids = [h.mention(f"school fete {n}") for n in range(41)]
    page = conn.poll_mentions(["fete"], start.cursor)
    # Search answers with the newest 40 first; the oldest match is below that page.
    assert sorted(i.platform_id for i in page.items) == sorted(ids[1:])
    assert page.requests == 2
    fresh, owed = [params for _, url, params in h.session.sent if "/api/v2/search" in url][-2:]
    assert fresh["min_id"] == "0" and "max_id" not in fresh
    assert owed["min_id"] == "0" and owed["max_id"] == ids[1]
    # Real Mastodon answers that with the older match; the mock ignores min_id and
    # max_id and repeats its newest page, which has nothing in range: the range closes.
    assert not page.more
    follow = conn.poll_mentions(["fete"], page.cursor)
    assert follow.items == () and follow.requests == 1


# ------------------------------------------------------------------ fetch


def test_fetch_visible_then_deleted(mastodon_harness: MastodonHarness) -> None:
    """A re-fetch sees the status, then sees it gone once its author deletes it."""
    h = mastodon_harness
    post = h.own_post("hello")
    reply = h.reply(post, "rude words")
    conn = h.connector()
    fetched = conn.fetch(reply)
    assert fetched.visibility is Visibility.VISIBLE
    assert fetched.item is not None and fetched.item.kind is ItemKind.REPLY
    assert fetched.item.text == "@school rude words"  # the harness replies like the apps do
    h.delete(reply)
    h.wait_indexed()
    gone = conn.fetch(reply)
    assert gone.visibility is Visibility.NOT_FOUND and gone.item is None
