"""The Bluesky connector against the atproto reference network (PLC, PDS, AppView, Ozone)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from atproto import models

from connectors.base import (
    AuthError,
    Author,
    Capability,
    Gone,
    Item,
    NotSupported,
    RateLimited,
    Stream,
    TransientError,
    Visibility,
)
from connectors.bluesky import MemorySessionStore
from monitor.constants import ItemKind, Platform
from tests.connectors.harness_bluesky import BlueskyHarness, bluesky_harness, eventually

pytestmark = [pytest.mark.bluesky, pytest.mark.peer]
__all__ = ["bluesky_harness"]  # the fixture, imported for pytest


def ids(items: tuple[Item, ...]) -> set[str]:
    return {item.platform_id for item in items}


def by_id(items: tuple[Item, ...], platform_id: str) -> Item:
    return next(item for item in items if item.platform_id == platform_id)


def thread(h: BlueskyHarness) -> tuple[str, str, str, str]:
    """A school post with a reply, a reply to it and one more level down."""
    root = h.own_post("Sports day is on Friday")
    first = h.reply(root, "Will there be parking?")
    second = h.reply(first, "Ask at reception", by=1)
    third = h.reply(second, "Thanks!")
    h.wait_indexed()
    return root, first, second, third


# ---------------------------------------------------------------- reading


def test_own_posts_are_polled_once_and_a_quiet_poll_makes_one_request(
    bluesky_harness: BlueskyHarness,
) -> None:
    h = bluesky_harness
    connector = h.connector()
    first = h.own_post("Welcome back, everyone")
    second = h.own_post("Term dates are on the website")
    h.reply(first, "Lovely to be back")  # not an own post
    h.wait_indexed()

    page = connector.poll_posts(None)

    assert ids(page.items) == {first, second}
    item = by_id(page.items, first)
    assert item.platform is Platform.BLUESKY
    assert item.kind is ItemKind.POST
    assert item.is_own
    assert item.author.id == h.school.did
    assert item.author.handle == h.school.handle
    assert item.text == "Welcome back, everyone"
    assert item.url == f"https://bsky.app/profile/{h.school.handle}/post/{first.rsplit('/', 1)[1]}"
    assert item.created_at.tzinfo is UTC
    assert abs(item.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert item.raw["uri"] == first and item.raw["cid"]
    assert set(item.engagement) == {"likes", "reposts", "replies", "quotes"}
    assert eventually(lambda: h.view(first).reply_count == 1)
    assert page.cursor and not page.more

    before = h.request_count()
    quiet = connector.poll_posts(page.cursor)
    assert quiet.items == ()
    assert quiet.requests == 1 == h.request_count() - before

    third = h.own_post("Lost property is in the hall")
    h.wait_indexed()
    later = connector.poll_posts(quiet.cursor)
    assert ids(later.items) == {third}


def test_a_backlog_is_delivered_over_several_polls_with_no_gap_or_duplicate(
    bluesky_harness: BlueskyHarness,
) -> None:
    h = bluesky_harness
    connector = h.connector(page_size=2, max_pages=1)
    posted = [h.own_post(f"Notice number {n}") for n in range(5)]
    h.wait_indexed()

    seen: list[str] = []
    cursor = None
    for _ in range(3):  # 2 + 2 + 1
        page = connector.poll_posts(cursor)
        assert page.requests == 1  # bounded work per poll
        seen += [item.platform_id for item in page.items]
        cursor = page.cursor
        if not page.more:
            break
        if len(seen) == 2:  # a post made while the backlog is worked through
            posted.append(h.own_post("Posted during the backlog"))
            h.wait_indexed()
    assert not page.more
    while True:  # the post made during the backlog follows
        page = connector.poll_posts(cursor)
        seen += [item.platform_id for item in page.items]
        cursor = page.cursor
        if not page.more:
            break
    assert sorted(seen) == sorted(posted)
    assert connector.poll_posts(cursor).items == ()


def test_replies_at_any_depth_without_duplicates(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root, first, second, third = thread(h)

    page = connector.poll_replies([root], None)

    assert ids(page.items) == {first, second, third}
    assert all(item.kind is ItemKind.REPLY for item in page.items)
    assert all(item.root_id == root for item in page.items)
    assert by_id(page.items, first).parent_id == root
    assert by_id(page.items, third).parent_id == second
    assert by_id(page.items, second).author.id == h.parents[1].did
    assert not any(item.is_own for item in page.items)

    before = h.request_count()
    quiet = connector.poll_replies([root], page.cursor)
    assert quiet.items == ()
    assert quiet.requests == 1 == h.request_count() - before

    fourth = h.reply(third, "One more thing", by=1)
    h.wait_indexed()
    later = connector.poll_replies([root], quiet.cursor)
    assert ids(later.items) == {fourth}
    assert by_id(later.items, fourth).parent_id == third


def test_replies_of_many_posts_are_read_in_bounded_rounds(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector(max_threads_per_poll=1)
    roots = [h.own_post("Post A"), h.own_post("Post B")]
    replies = {h.reply(roots[0], "on A"), h.reply(roots[1], "on B")}
    h.wait_indexed()

    first = connector.poll_replies(roots, None)
    assert first.more and first.requests == 1 and len(first.items) == 1
    second = connector.poll_replies(roots, first.cursor)
    assert not second.more and second.requests == 1
    assert ids(first.items) | ids(second.items) == replies
    assert connector.poll_replies(roots, second.cursor).items == ()


def test_notifications_bring_replies_mentions_and_quotes(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root = h.own_post("Parents' evening sign-up is open")
    h.wait_indexed()
    reply = h.reply(root, "Booked, thanks")
    mention = h.mention(f"Has anyone asked @{h.school.handle} about uniforms?", by=1)
    quote_client = h.parents[0]
    view = h.view(root)
    quoted = quote_client.client.send_post(
        "This is a great idea",
        profile_identify=quote_client.did,
        embed=models.AppBskyEmbedRecord.Main(
            record=models.ComAtprotoRepoStrongRef.Main(uri=root, cid=view.cid)
        ),
    ).uri
    h.wait_indexed()

    page = eventually(
        lambda: (p := connector.poll_notifications(None)) and len(p.items) == 3 and p,
        what="three notifications",
    )
    kinds = {item.platform_id: item.kind for item in page.items}
    assert kinds == {reply: ItemKind.REPLY, mention: ItemKind.MENTION, quoted: ItemKind.MENTION}
    assert by_id(page.items, reply).parent_id == root
    assert by_id(page.items, mention).author.id == h.parents[1].did
    assert by_id(page.items, reply).raw["cid"]

    before = h.request_count()
    quiet = connector.poll_notifications(page.cursor)
    assert quiet.items == ()
    assert quiet.requests == 1 == h.request_count() - before

    again = h.reply(root, "Is there a waiting list?", by=1)
    h.wait_indexed()
    later = eventually(
        lambda: (p := connector.poll_notifications(quiet.cursor)) and p.items and p,
        what="the new notification",
    )
    assert ids(later.items) == {again}


def test_search_mentions_are_post_filtered_and_not_repeated(
    bluesky_harness: BlueskyHarness,
) -> None:
    h = bluesky_harness
    connector = h.connector()
    name = f"Oakwood{uuid.uuid4().hex[:6]}"
    match = h.mention(f"So proud of {name} Academy today!")
    other = h.mention(f"Best wishes to {name}'s choir", by=1)
    h.mention(f"The {name}shire fair is on Sunday")  # local search matches; the term does not
    h.own_post(f"{name} news: the library is open")  # the school's own post is not a mention
    h.wait_indexed()
    terms = [name, f"{name} Academy"]

    page = connector.poll_mentions(terms, None)

    assert ids(page.items) == {match, other}  # each once, although two terms find ``match``
    assert all(item.kind is ItemKind.MENTION and not item.is_own for item in page.items)
    assert page.requests == 2  # one search per term

    quiet = connector.poll_mentions(terms, page.cursor)
    assert quiet.items == () and quiet.requests == 2

    late = h.mention(f"Is {name} open on Monday?")
    h.wait_indexed()
    assert ids(connector.poll_mentions(terms, quiet.cursor).items) == {late}


# ---------------------------------------------------------------- visibility and hiding


def test_hide_then_unhide_via_the_threadgate(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root, first, second, _ = thread(h)
    items = connector.poll_replies([root], None).items
    deep = by_id(items, second)
    assert connector.fetch(second).visibility is Visibility.VISIBLE

    connector.hide(deep)
    connector.hide(deep)  # hiding twice changes nothing

    gate = h.threadgate(root)
    assert gate["hiddenReplies"] == [second]
    assert "allow" not in gate  # absent "allow" means anyone may still reply
    hidden = eventually(
        lambda: (f := connector.fetch(second)).visibility is Visibility.HIDDEN and f
    )
    assert hidden.item is not None and hidden.item.platform_id == second
    assert connector.fetch(first).visibility is Visibility.VISIBLE

    connector.unhide(deep)
    assert h.threadgate(root)["hiddenReplies"] == []
    eventually(lambda: connector.fetch(second).visibility is Visibility.VISIBLE)


def test_hiding_keeps_who_may_reply(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root = h.own_post("Replies from followers only")
    reply = h.reply(root, "I follow you")
    h.wait_indexed()
    h.write_threadgate(
        root,
        {
            "createdAt": "2025-01-01T00:00:00.000Z",
            "allow": [{"$type": "app.bsky.feed.threadgate#followerRule"}],
        },
    )
    item = by_id(connector.poll_replies([root], None).items, reply)

    connector.hide(item)
    gate = h.threadgate(root)
    assert gate["allow"] == [{"$type": "app.bsky.feed.threadgate#followerRule"}]
    assert gate["hiddenReplies"] == [reply]
    assert gate["createdAt"] == "2025-01-01T00:00:00.000Z"

    connector.unhide(item)
    gate = h.threadgate(root)
    assert gate["allow"] == [{"$type": "app.bsky.feed.threadgate#followerRule"}]
    assert gate["hiddenReplies"] == []


def test_hide_survives_a_concurrent_threadgate_edit(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root = h.own_post("Two moderators at once")
    first, second = h.reply(root, "one"), h.reply(root, "two", by=1)
    h.wait_indexed()
    items = connector.poll_replies([root], None).items
    connector.hide(by_id(items, first))

    # Someone else (the school's app) hides another reply between our read and write.
    other = f"at://{h.parents[0].did}/app.bsky.feed.post/3kother0000002"
    h.peer.pds_proxy.before_next(
        "com.atproto.repo.putRecord",
        lambda: h.write_threadgate(root, {**h.threadgate(root), "hiddenReplies": [first, other]}),
    )
    puts = h.calls("com.atproto.repo.putRecord")
    connector.hide(by_id(items, second))

    assert h.threadgate(root)["hiddenReplies"] == [first, other, second]
    assert h.calls("com.atproto.repo.putRecord") == puts + 2  # the stale write was refused


def test_hide_refuses_beyond_300_and_outside_own_threads(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root = h.own_post("A busy thread")
    reply = h.reply(root, "number 301")
    their_post = h.mention("A parent's own post")
    h.wait_indexed()
    under_theirs = h.reply(their_post, "a reply in a parent's thread", by=1)
    h.wait_indexed()
    full = [f"at://{h.parents[0].did}/app.bsky.feed.post/3kfull{n:07d}" for n in range(300)]
    h.write_threadgate(root, {"createdAt": "2025-01-01T00:00:00.000Z", "hiddenReplies": full})

    item = by_id(connector.poll_replies([root], None).items, reply)
    with pytest.raises(NotSupported, match="300"):
        connector.hide(item)
    assert h.threadgate(root)["hiddenReplies"] == full

    theirs = connector.fetch(under_theirs).item
    assert theirs is not None
    with pytest.raises(NotSupported, match="threads the account started"):
        connector.hide(theirs)


def test_fetch_tells_deleted_and_missing_apart(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root = h.own_post("Reply here")
    reply = h.reply(root, "Oops, wrong thread")
    h.wait_indexed()
    item = connector.fetch(reply).item
    assert item is not None and item.kind is ItemKind.REPLY

    h.delete(reply)
    h.wait_indexed()

    assert connector.fetch(reply).visibility is Visibility.DELETED
    with pytest.raises(Gone):
        connector.hide(item)  # the target of the action is gone
    missing = "at://did:plc:aaaaaaaaaaaaaaaaaaaaaaaa/app.bsky.feed.post/3kabcdefghij2"
    assert connector.fetch(missing).visibility is Visibility.NOT_FOUND


def test_fetch_sees_past_a_block_through_the_public_view(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root = h.own_post("Open thread")
    reply = h.reply(root, "Something unkind")
    h.wait_indexed()
    item = by_id(connector.poll_replies([root], None).items, reply)

    connector.hide(item)
    connector.block(item.author)

    fetched = eventually(
        lambda: (f := connector.fetch(reply)).visibility is Visibility.HIDDEN and f
    )
    assert fetched.item is not None and fetched.item.text == "Something unkind"


# ---------------------------------------------------------------- other actions


def test_block_and_mute_are_idempotent(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    parent = h.parents[1]
    author = Author(id=parent.did, handle=parent.handle)

    connector.block(author)
    viewer = eventually(lambda: (v := connector._viewer(author)).get("blocking") and v)
    connector.block(author)
    blocks = h.school.client.com.atproto.repo.list_records(
        models.ComAtprotoRepoListRecords.Params(
            repo=h.school.did, collection="app.bsky.graph.block"
        )
    ).records
    assert [b.value.subject for b in blocks] == [parent.did]
    assert viewer["blocking"] == blocks[0].uri

    connector.mute(author)
    connector.mute(author)
    assert connector._viewer(author)["muted"] is True

    nobody = Author(id="did:plc:aaaaaaaaaaaaaaaaaaaaaaaa", handle="nobody.test")
    with pytest.raises(Gone):
        connector.block(nobody)
    with pytest.raises(Gone):
        connector.mute(nobody)


def test_report_lands_in_ozone(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root = h.own_post("School trip photos")
    reply = h.reply(root, "You are all useless")
    h.wait_indexed()
    item = by_id(connector.poll_replies([root], None).items, reply)

    report_id = connector.report(item, reason="abusive: insults staff")

    assert report_id and report_id.isdigit()
    events = eventually(lambda: h.reports(reply), what="the report in Ozone")
    assert events[0]["event"]["comment"] == "abusive: insults staff"
    assert events[0]["event"]["reportType"] == "com.atproto.moderation.defs#reasonRude"
    assert events[0]["createdBy"] == h.school.did
    assert events[0]["subject"]["uri"] == reply


def test_reply_and_delete_own(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    root = h.own_post("Any questions about the trip?")
    question = h.reply(root, "What time is pick-up?")
    h.wait_indexed()
    item = by_id(connector.poll_replies([root], None).items, question)

    answer = connector.reply(item, "Pick-up is at 3:15pm, see https://example.org/trip")

    assert answer.is_own and answer.kind is ItemKind.REPLY
    assert answer.parent_id == question and answer.root_id == root
    assert answer.author.id == h.school.did
    view = eventually(lambda: h.view(answer.platform_id), what="the school's reply")
    assert view.record.text.startswith("Pick-up is at 3:15pm")
    assert view.record.facets  # the link is a real link
    assert view.record.reply.root.uri == root

    with pytest.raises(NotSupported):
        connector.delete_own(item)  # not the school's post
    connector.delete_own(answer)
    eventually(lambda: connector.fetch(answer.platform_id).visibility is Visibility.DELETED)
    with pytest.raises(Gone):
        connector.delete_own(answer)
    h.delete(question)
    with pytest.raises(Gone):
        connector.reply(item, "Too late")


# ---------------------------------------------------------------- sessions and errors


def test_session_is_reused_and_refreshed_not_logged_in_again(
    bluesky_harness: BlueskyHarness,
) -> None:
    h = bluesky_harness
    logins = h.calls("com.atproto.server.createSession")
    connector = h.connector()
    assert h.calls("com.atproto.server.createSession") == logins + 1
    assert h.store.writes == 1
    connector.poll_posts(None)

    # another connector (the next poll, say) with the stored session: no login
    again = h.connector()
    again.poll_posts(None)
    saved = MemorySessionStore(h.store.get())  # as if persisted and read back
    h.connector(session_store=saved).poll_notifications(None)
    assert h.calls("com.atproto.server.createSession") == logins + 1

    # an expired access token is refreshed once and the call retried
    refreshes = h.calls("com.atproto.server.refreshSession")
    h.fail_next("expired_token")
    before = h.request_count()
    page = again.poll_posts(None)
    assert page.requests == 3 == h.request_count() - before  # refused, refresh, retried
    assert h.calls("com.atproto.server.refreshSession") == refreshes + 1
    assert h.store.writes == 2
    assert h.calls("com.atproto.server.createSession") == logins + 1
    assert "app_password" not in repr(h.account()) and h.app_password not in repr(h.account())


def test_revoked_app_password_is_an_auth_error(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    h.school.client.com.atproto.server.revoke_app_password(
        models.ComAtprotoServerRevokeAppPassword.Data(name="monitor")
    )
    h.fail_next("expired_token")  # the access token runs out: refresh and login both fail
    with pytest.raises(AuthError):
        connector.poll_posts(None)
    fresh = MemorySessionStore()
    with pytest.raises(AuthError):
        h.connector(session_store=fresh)
    assert fresh.get() is None


def test_wrong_password_and_refused_auth(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    with pytest.raises(AuthError, match="Invalid identifier or password"):
        h.connector(app_password="not-the-password", session_store=MemorySessionStore())
    connector = h.connector()
    h.fail_next("auth")
    with pytest.raises(AuthError):
        connector.poll_notifications(None)
    assert connector.poll_notifications(None).items == ()  # the next call is fine again


def test_rate_limit_is_reported_with_its_reset(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector()
    h.fail_next("ratelimit")
    with pytest.raises(RateLimited) as caught:
        connector.poll_posts(None)  # not retried: the caller waits
    assert 38 <= caught.value.retry_after <= 43  # from ratelimit-reset (now + 42 s)

    h.peer.pds_proxy.retry_after = "7"
    try:
        h.fail_next("ratelimit")
        with pytest.raises(RateLimited) as caught:
            connector.poll_notifications(None)
        assert caught.value.retry_after == 7
    finally:
        h.peer.pds_proxy.retry_after = None


@pytest.mark.parametrize("kind", ["server_error", "bad_gateway", "disconnect"])
def test_server_faults_are_retried_then_transient(
    bluesky_harness: BlueskyHarness, kind: str
) -> None:
    h = bluesky_harness
    connector = h.connector(retries=2)
    h.own_post("hello")
    h.wait_indexed()

    h.fail_next(kind)
    page = connector.poll_posts(None)  # an idempotent read: retried
    assert len(page.items) == 1 and page.requests == 2

    h.fail_next(kind, count=3)
    with pytest.raises(TransientError):
        connector.poll_posts(None)
    assert h.peer.pds_proxy.pending_faults == 0


def test_timeout_is_transient(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    connector = h.connector(retries=0)
    h.fail_next("timeout")
    with pytest.raises(TransientError, match="Timeout"):
        connector.poll_notifications(None)
    assert connector.poll_notifications(None).items == ()


# ---------------------------------------------------------------- public mode


def test_public_mode_reads_without_credentials(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    name = f"Elmfield{uuid.uuid4().hex[:6]}"
    root = h.own_post(f"{name} open day on Saturday")
    reply = h.reply(root, "See you there")
    mention = h.mention(f"Going to the {name} open day")
    h.wait_indexed()
    pds_before = h.peer.pds_proxy.count

    connector = h.public_connector()

    assert connector.granted == {Capability.OWN_POSTS, Capability.REPLIES, Capability.MENTIONS}
    assert connector.streams() == (Stream.POSTS, Stream.REPLIES, Stream.MENTIONS)
    assert ids(connector.poll_posts(None).items) == {root}
    replies = connector.poll_replies([root], None)
    assert ids(replies.items) == {reply}
    assert ids(connector.poll_mentions([name], None).items) == {mention}
    assert connector.fetch(reply).visibility is Visibility.VISIBLE
    with pytest.raises(NotSupported):
        connector.poll_notifications(None)
    with pytest.raises(NotSupported):
        connector.hide(by_id(replies.items, reply))
    assert h.peer.pds_proxy.count == pds_before  # only the public AppView was asked
