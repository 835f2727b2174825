"""Mastodon connector actions against the mock server: report, block, mute, reply, delete, admin."""

from __future__ import annotations

import pytest

from connectors.base import Capability, Gone, Item, NotSupported, Visibility
from connectors.mastodon import MastodonConnector
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


def reply_item(h: MastodonHarness, conn: MastodonConnector, *, author: str = TROLL) -> Item:
    """A public reply under a new school post, as the connector reads it."""
    post = h.own_post("Harvest festival on Friday")
    reply_id = h.post_as(author, "you lot are useless", in_reply_to=post)
    page = conn.poll_replies([post], None)
    [item] = [i for i in page.items if i.platform_id == reply_id]
    return item


def test_hide_is_not_supported(mastodon_harness: MastodonHarness) -> None:
    """Mastodon has no reply hiding: NotSupported, and the account is not granted HIDE."""
    conn = mastodon_harness.connector(admin=True)
    item = reply_item(mastodon_harness, conn)
    assert Capability.HIDE not in conn.granted
    before = mastodon_harness.request_count()
    with pytest.raises(NotSupported):
        conn.hide(item)
    with pytest.raises(NotSupported):
        conn.unhide(item)
    assert mastodon_harness.request_count() == before


def test_report_is_forwarded_with_the_status(mastodon_harness: MastodonHarness) -> None:
    """The report names the status and the reason, and is forwarded to the remote server."""
    h = mastodon_harness
    conn = h.connector()
    item = reply_item(h, conn)
    report_id = conn.report(item, reason="Abusive reply to the school account")
    assert report_id
    reports = h.client(SCHOOL).admin_reports()
    [report] = [r for r in reports if str(r["id"]) == report_id]
    assert [str(s["id"]) for s in report["statuses"]] == [item.platform_id]
    assert report["comment"] == "Abusive reply to the school account"
    assert report["forwarded"] is True
    assert report["target_account"]["account"]["acct"] == TROLL_ACCT


def test_report_forwarding_can_be_switched_off(mastodon_harness: MastodonHarness) -> None:
    """report_forward: false keeps the report on the school's instance."""
    h = mastodon_harness
    conn = h.connector(report_forward=False)
    report_id = conn.report(reply_item(h, conn), reason="x" * 1500)
    [report] = [r for r in h.client(SCHOOL).admin_reports() if str(r["id"]) == report_id]
    assert not report["forwarded"]
    assert len(report["comment"]) == 1000  # Mastodon's limit


def test_block_and_mute(mastodon_harness: MastodonHarness) -> None:
    """Block and mute land as relationships of the school's account."""
    h = mastodon_harness
    conn = h.connector()
    troll = reply_item(h, conn).author
    parent = reply_item(h, conn, author=PARENT).author
    conn.block(troll)
    conn.mute(parent)
    relationships = {
        str(r["id"]): r for r in h.client(SCHOOL).account_relationships([troll.id, parent.id])
    }
    assert relationships[troll.id]["blocking"] is True
    assert relationships[parent.id]["muting"] is True
    # Their notifications still reach the monitor.
    assert relationships[parent.id]["muting_notifications"] is False
    assert relationships[parent.id]["blocking"] is False


def test_acting_against_itself_is_refused(mastodon_harness: MastodonHarness) -> None:
    """The school's account never blocks, mutes or reports itself."""
    h = mastodon_harness
    conn = h.connector()
    h.own_post("hi")
    [own] = conn.poll_posts(None).items
    with pytest.raises(NotSupported):
        conn.block(own.author)
    with pytest.raises(NotSupported):
        conn.report(own, reason="x")


def test_reply_mentions_the_author_and_keeps_visibility(mastodon_harness: MastodonHarness) -> None:
    """A public reply addresses the author; a reply to a private post stays private."""
    h = mastodon_harness
    conn = h.connector()
    item = reply_item(h, conn, author=PARENT)
    answer = conn.reply(item, "Thank you, we have passed this on.")
    assert answer.kind is ItemKind.POST and answer.is_own
    assert answer.parent_id == item.platform_id
    assert answer.text == "@parent Thank you, we have passed this on."
    status = h.client(PARENT).status(answer.platform_id)
    assert str(status["in_reply_to_id"]) == item.platform_id
    assert status["visibility"] == "public"
    assert [m["acct"] for m in status["mentions"]] == [PARENT]
    private = h.post_as(PARENT, "@school private question", visibility="private")
    [note] = [i for i in conn.poll_notifications(None).items if i.platform_id == private]
    answer2 = conn.reply(note, "@parent We'll email you.")
    assert answer2.text == "@parent We'll email you."  # not mentioned twice
    assert h.client(SCHOOL).status(answer2.platform_id)["visibility"] == "private"


def test_delete_own(mastodon_harness: MastodonHarness) -> None:
    """The school deletes its own post; someone else's is refused; a second delete is Gone."""
    h = mastodon_harness
    conn = h.connector()
    h.own_post("typo in this post")
    [own] = conn.poll_posts(None).items
    conn.delete_own(own)
    h.wait_indexed()
    assert conn.fetch(own.platform_id).visibility is Visibility.NOT_FOUND
    with pytest.raises(Gone):
        conn.delete_own(own)
    with pytest.raises(NotSupported):
        conn.delete_own(reply_item(h, conn))


def test_remove_needs_admin(mastodon_harness: MastodonHarness) -> None:
    """Without the admin capability, remove is NotSupported and sends nothing."""
    h = mastodon_harness
    conn = h.connector(username=STAFF, admin=True)
    post = h.post_as(STAFF, "staff post")
    reply_id = h.post_as(TROLL, "abuse", in_reply_to=post)
    [item] = conn.poll_replies([post], None).items
    assert item.platform_id == reply_id
    before = h.request_count()
    with pytest.raises(NotSupported):
        conn.remove(item)
    assert h.request_count() == before


def test_admin_remove_suspends_and_approve_reverses(mastodon_harness: MastodonHarness) -> None:
    """On the school's instance: report + suspend closes the report; fetch says REMOVED."""
    h = mastodon_harness
    conn = h.connector(admin=True)
    item = reply_item(h, conn)
    conn.remove(item, spam=True)
    admin = h.client(SCHOOL)
    account = admin.admin_account(item.author.id)
    assert account["suspended"] is True
    [report] = [
        r for r in admin.admin_reports(resolved=True) if r["target_account"]["id"] == item.author.id
    ]
    assert report["action_taken"] is True and report["category"] == "spam"
    assert conn.fetch(item.platform_id).visibility is Visibility.REMOVED
    # The reply has gone from the thread too.
    post = item.parent_id
    assert post is not None
    assert conn.poll_replies([post], None).items == ()
    conn.approve(item)
    assert not admin.admin_account(item.author.id)["suspended"]
    assert conn.fetch(item.platform_id).visibility is Visibility.VISIBLE


def test_admin_remove_by_limiting(mastodon_harness: MastodonHarness) -> None:
    """admin_remove_action: silence limits the author; fetch says HIDDEN."""
    h = mastodon_harness
    conn = h.connector(admin=True, admin_remove_action="silence")
    item = reply_item(h, conn)
    conn.remove(item)
    assert h.client(SCHOOL).admin_account(item.author.id)["silenced"] is True
    assert conn.fetch(item.platform_id).visibility is Visibility.HIDDEN
    conn.approve(item)
    assert conn.fetch(item.platform_id).visibility is Visibility.VISIBLE


def test_item_kinds_from_fetch(mastodon_harness: MastodonHarness) -> None:
    """fetch labels the school's posts, replies to it and other mentions."""
    h = mastodon_harness
    conn = h.connector()
    post = h.own_post("post")
    reply = h.reply(post, "reply")
    other = h.post_as(TROLL, "@school hello")
    kinds = {}
    for status_id in (post, reply, other):
        fetched = conn.fetch(status_id)
        assert fetched.item is not None
        kinds[status_id] = fetched.item.kind
    assert kinds == {post: ItemKind.POST, reply: ItemKind.REPLY, other: ItemKind.MENTION}
