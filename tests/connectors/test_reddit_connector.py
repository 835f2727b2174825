"""The Reddit connector through real praw against the local reddit: reading and acting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import (
    Author,
    Capability,
    Gone,
    Item,
    NotSupported,
    Stream,
    Visibility,
)
from connectors.reddit import RedditConnector
from monitor.constants import ItemKind, Platform
from tests.connectors.harness import PeerHarness
from tests.connectors.harness_reddit import (  # noqa: F401 - fixture
    ELSEWHERE,
    HOME,
    PUBLIC,
    SCHOOL,
    RedditHarness,
    reddit_harness_fixture,
)

pytestmark = pytest.mark.peer


def test_is_a_peer_harness(reddit_harness: RedditHarness) -> None:
    """The harness has the shape the cross-platform contract suite expects."""
    harness: PeerHarness = reddit_harness
    assert harness.platform is Platform.REDDIT
    post = harness.own_post("Harness check")
    reply = harness.reply(post, "hello")
    harness.wait_indexed()
    assert post.startswith("t3_") and reply.startswith("t1_")
    assert harness.mention("Oakwood in the news").startswith("t3_")
    assert harness.request_count() == 0  # only the connector's client is counted


def test_connect_learns_moderated_subreddits(reddit_harness: RedditHarness) -> None:
    """Token, /api/v1/me and the moderator list: REMOVE/APPROVE only where it moderates."""
    h = reddit_harness
    connector = h.connector()
    assert h.request_count() == 3
    assert connector.moderated == frozenset({HOME.lower()})
    assert {Capability.REMOVE, Capability.APPROVE, Capability.COMMUNITY} <= connector.granted
    assert Capability.HIDE not in connector.granted
    assert Stream.COMMUNITY in connector.streams()
    watcher = h.connector(subreddits=[ELSEWHERE])
    assert watcher.moderated == frozenset()
    assert Capability.REMOVE not in watcher.granted
    assert Stream.COMMUNITY not in watcher.streams()
    with pytest.raises(NotSupported):
        watcher.poll_community(None)


def test_own_posts_items_and_quiet_poll_costs_one_request(reddit_harness: RedditHarness) -> None:
    """Own submissions become POST items; a poll with nothing new is one request."""
    h = reddit_harness
    connector = h.connector()
    first = connector.poll_posts(None)
    assert first.items == ()
    post = h.own_post("Sports day is on Friday")
    page = connector.poll_posts(first.cursor)
    assert [i.platform_id for i in page.items] == [post]
    item = page.items[0]
    assert item.kind is ItemKind.POST and item.is_own
    assert item.platform is Platform.REDDIT
    assert item.text == "Sports day is on Friday\n\nSports day is on Friday"
    assert item.url.startswith(f"https://www.reddit.com/r/{HOME}/comments/{post[3:]}/")
    assert item.author.handle == SCHOOL and item.author.id.startswith("t2_")
    assert item.created_at.tzinfo is UTC
    assert abs((datetime.now(UTC) - item.created_at).total_seconds()) < 60
    assert item.engagement == {"score": 1, "num_comments": 0}
    assert item.raw["kind"] == "t3" and item.raw["data"]["name"] == post
    before = h.request_count()
    quiet = connector.poll_posts(page.cursor)
    assert quiet.items == () and quiet.more is False
    assert h.request_count() - before == 1 and quiet.requests == 1


def test_replies_at_any_depth(reddit_harness: RedditHarness) -> None:
    """Comments under own posts, nested ones included, once each, oldest first."""
    h = reddit_harness
    connector = h.connector()
    post = h.own_post("Open evening")
    top = h.reply(post, "What time?")
    deep = h.reply(h.reply(top, "6pm I think", author=PUBLIC[1]), "thanks", author=PUBLIC[2])
    page = connector.poll_replies([post], None)
    assert len(page.items) == 3 and page.items[-1].platform_id == deep
    assert all(i.kind is ItemKind.REPLY and i.root_id == post for i in page.items)
    assert page.items[0].parent_id == post and page.items[1].parent_id == top
    later = h.reply(deep, "see you there", author=PUBLIC[0])
    before = h.request_count()
    again = connector.poll_replies([post], page.cursor)
    assert [i.platform_id for i in again.items] == [later]
    assert h.request_count() - before == 1
    quiet = connector.poll_replies([post], again.cursor)
    assert quiet.items == ()


def test_notifications_replies_and_mentions(reddit_harness: RedditHarness) -> None:
    """Inbox comment replies are REPLY, username mentions elsewhere are MENTION."""
    h = reddit_harness
    connector = h.connector()
    start = connector.poll_notifications(None)
    post = h.own_post("Uniform changes")
    reply = h.reply(post, "About time")
    other = h.post(PUBLIC[2], "Local news roundup", subreddit=ELSEWHERE)
    mention = h.reply(other, "u/OakwoodAcademy did well this year", author=PUBLIC[1])
    page = connector.poll_notifications(start.cursor)
    kinds = {i.platform_id: i.kind for i in page.items}
    assert kinds == {reply: ItemKind.REPLY, mention: ItemKind.MENTION}
    item = next(i for i in page.items if i.platform_id == mention)
    assert item.root_id == other and item.url.endswith(f"/{mention[3:]}/")
    # The inbox stays unread for the school's staff.
    assert all(e.new for e in h.server.state.inbox)
    assert connector.poll_notifications(page.cursor).items == ()


def test_community_new_posts_and_comments(reddit_harness: RedditHarness) -> None:
    """New posts and comments in the moderated subreddit, not in watched ones."""
    h = reddit_harness
    connector = h.connector()
    start = connector.poll_community(None)
    theirs = h.post(PUBLIC[0], "Lost property: blue coat")
    ours = h.own_post("Found: blue coat")
    comment = h.reply(theirs, "Check the office", author=PUBLIC[1])
    h.post(PUBLIC[1], "Elsewhere", subreddit=ELSEWHERE)
    before = h.request_count()
    page = connector.poll_community(start.cursor)
    assert h.request_count() - before == 2  # comments and new, both subreddits in one
    kinds = {i.platform_id: i.kind for i in page.items}
    assert kinds == {theirs: ItemKind.MENTION, ours: ItemKind.POST, comment: ItemKind.REPLY}
    before = h.request_count()
    assert connector.poll_community(page.cursor).items == ()
    assert h.request_count() - before == 2


def test_mentions_search_is_post_filtered(reddit_harness: RedditHarness) -> None:
    """Site search for the school's names; only real matches are returned."""
    h = reddit_harness
    connector = h.connector()
    start = connector.poll_mentions(["Oakwood Academy", "OA Trust"], None)
    hit = h.mention("Anyone been to Oakwood Academy's fair?")
    trust = h.post(PUBLIC[0], "The oa trust board met", subreddit=HOME)
    h.mention("Oakwood park is lovely")  # reddit-ish search may return it; we do not
    page = connector.poll_mentions(["Oakwood Academy", "OA Trust"], start.cursor)
    assert {i.platform_id for i in page.items} == {hit, trust}
    assert all(i.kind is ItemKind.MENTION for i in page.items)
    sent = [r for r in h.server.requests if r.path.endswith("/search")][-1]
    assert sent.params["q"] == '"Oakwood Academy" OR "OA Trust"'
    assert sent.params["sort"] == "new" and sent.path == "/r/all/search"
    assert connector.poll_mentions([], page.cursor).requests == 0


def test_fetch_tells_removed_from_deleted(reddit_harness: RedditHarness) -> None:
    """Moderator removal, reddit's own removal and author deletion are told apart."""
    h = reddit_harness
    connector = h.connector()
    post = h.own_post("Fetch")
    visible = h.reply(post, "fine")
    by_mod = h.reply(post, "nasty", author=PUBLIC[1])
    by_author = h.reply(post, "oops")
    by_reddit = h.post(PUBLIC[1], "scam", subreddit=ELSEWHERE)
    fetched = connector.fetch(by_mod)
    assert fetched.visibility is Visibility.VISIBLE and fetched.item is not None
    connector.remove(fetched.item)
    h.delete(by_author)
    h.server.state.admin_remove(by_reddit)
    assert connector.fetch(visible).visibility is Visibility.VISIBLE
    assert connector.fetch(by_mod).visibility is Visibility.REMOVED
    assert connector.fetch(by_author).visibility is Visibility.DELETED
    assert connector.fetch(by_reddit).visibility is Visibility.REMOVED
    assert connector.fetch("t1_zzzzzzz").visibility is Visibility.NOT_FOUND
    own_post_deleted = h.own_post("to delete")
    h.delete(own_post_deleted)
    assert connector.fetch(own_post_deleted).visibility is Visibility.DELETED
    # A member of the public (no moderator fields) sees the removal as "[removed]".
    h.server.state.add_app("public-bot", "pb")
    public = RedditConnector(
        h.account(
            handle=PUBLIC[0],
            credentials={
                "client_id": "public-bot",
                "client_secret": "pb",
                "password": f"{PUBLIC[0]}-password",
            },
        )
    )
    public.connect()
    seen = public.fetch(by_mod)
    assert seen.visibility is Visibility.REMOVED and seen.item is not None
    assert seen.item.text == "[removed]"
    assert public.fetch(by_author).visibility is Visibility.DELETED


def test_remove_and_approve_only_where_moderating(reddit_harness: RedditHarness) -> None:
    """Remove (with spam flag) and approve in the school's subreddit; elsewhere NotSupported."""
    h = reddit_harness
    connector = h.connector()
    post = h.own_post("Moderation")
    reply = connector.fetch(h.reply(post, "spammy link"))
    assert reply.item is not None
    connector.remove(reply.item, spam=True)
    state = h.server.state.thing(reply.item.platform_id)
    assert state is not None and state.removed and state.spam and state.removed_by == SCHOOL
    sent = [r for r in h.server.requests if r.path == "/api/remove"][-1]
    assert sent.params["spam"] == "True"
    connector.approve(reply.item)
    assert not state.removed and state.approved_by == SCHOOL
    outside = connector.fetch(h.mention("Oakwood rumours"))
    assert outside.item is not None
    before = h.request_count()
    with pytest.raises(NotSupported):
        connector.remove(outside.item)
    with pytest.raises(NotSupported):
        connector.approve(outside.item)
    assert h.request_count() == before  # refused without asking reddit


def test_remove_without_raw_looks_the_subreddit_up(reddit_harness: RedditHarness) -> None:
    """An item rebuilt from storage without raw JSON still gets the per-subreddit check."""
    h = reddit_harness
    connector = h.connector()
    outside = h.mention("Oakwood chatter")
    bare = Item(
        platform=Platform.REDDIT,
        platform_id=outside,
        kind=ItemKind.MENTION,
        url="https://www.reddit.com/",
        author=Author(id="", handle=PUBLIC[1]),
        text="Oakwood chatter",
        created_at=datetime.now(UTC),
    )
    with pytest.raises(NotSupported):
        connector.remove(bare)


def test_report_block_reply_delete_own(reddit_harness: RedditHarness) -> None:
    """Report reaches the mods, block lands on the account, reply and delete_own work."""
    h = reddit_harness
    connector = h.connector()
    post = h.own_post("Actions")
    target = connector.fetch(h.reply(post, "abuse", author=PUBLIC[1])).item
    assert target is not None
    assert connector.report(target, reason="Bullying a pupil " + "x" * 200) is None
    stored = h.server.state.thing(target.platform_id)
    assert stored is not None and stored.reports == [
        (SCHOOL, ("Bullying a pupil " + "x" * 200)[:100])
    ]
    connector.block(target.author)
    school = h.server.state.user(SCHOOL)
    assert school is not None and PUBLIC[1].lower() in school.blocked
    answer = connector.reply(target, "Please contact the school office.")
    assert answer.is_own and answer.kind is ItemKind.REPLY
    assert answer.parent_id == target.platform_id and answer.root_id == post
    assert answer.text == "Please contact the school office."
    assert answer.url.endswith(f"/{answer.platform_id[3:]}/")
    connector.delete_own(answer)
    assert connector.fetch(answer.platform_id).visibility is Visibility.DELETED
    with pytest.raises(NotSupported):
        connector.delete_own(target)
    with pytest.raises(NotSupported):
        connector.hide(target)


def test_actions_on_vanished_things_raise_gone(reddit_harness: RedditHarness) -> None:
    """Replying to a deleted comment, blocking a deleted account, removing a missing item."""
    h = reddit_harness
    connector = h.connector()
    post = h.own_post("Gone")
    target = connector.fetch(h.reply(post, "short-lived")).item
    assert target is not None
    h.delete(target.platform_id)
    with pytest.raises(Gone):
        connector.reply(target, "too late")
    with pytest.raises(Gone):
        connector.block(Author(id="", handle="[deleted]"))
    with pytest.raises(Gone):
        connector.block(Author(id="", handle="no_such_user_here"))
    missing = Item(
        platform=Platform.REDDIT,
        platform_id="t1_zzzzzzz",
        kind=ItemKind.REPLY,
        url="https://www.reddit.com/",
        author=Author(id="", handle=PUBLIC[0]),
        text="",
        created_at=datetime.now(UTC),
        raw={"kind": "t1", "data": {"subreddit": HOME}},
    )
    with pytest.raises(Gone):
        connector.remove(missing)
