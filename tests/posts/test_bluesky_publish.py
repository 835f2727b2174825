"""Publishing on the Bluesky reference network (real atproto client): a two-post thread with two
images and alt text; the records, their record keys and the blobs checked on the PDS and the
AppView; a retry after a lost outcome adopts the records instead of making more."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from atproto import models

from connectors.bluesky_publish import POST, BlueskyPublisher, record_key, tid
from connectors.publishing import OutgoingImage, OutgoingPost
from tests.connectors.harness_bluesky import BlueskyHarness, bluesky_harness, eventually
from tests.posts.posts_support import png

__all__ = ["bluesky_harness"]  # the fixture, imported for pytest


def test_record_keys_are_tids_fixed_by_the_publication() -> None:
    stamp = datetime(2026, 12, 4, 23, 50, 1, 999_999, tzinfo=UTC)
    post = OutgoingPost("k", 42, ("a", "b"), created_at=stamp)
    keys = [record_key(post, 0), record_key(post, 1)]
    assert keys == [record_key(post, 0), record_key(post, 1)]  # stable across attempts
    assert len(set(keys)) == 2 and all(len(k) == 13 for k in keys)
    assert record_key(OutgoingPost("k2", 43, ("a",), created_at=stamp), 0) not in keys
    assert tid(0, 0) == "2222222222222"
    assert keys[0] < keys[1]  # sortable: the thread's order


def records(h: BlueskyHarness) -> list[object]:
    listed = h.school.client.com.atproto.repo.list_records(
        models.ComAtprotoRepoListRecords.Params(repo=h.school.did, collection=POST, limit=100)
    )
    return list(listed.records)


@pytest.mark.bluesky
@pytest.mark.peer
def test_a_thread_with_two_images_on_the_appview(bluesky_harness: BlueskyHarness) -> None:
    h = bluesky_harness
    publisher = BlueskyPublisher.for_account(h.account())
    post = OutgoingPost(
        key="post-3-5-abc",
        serial=3,
        parts=("Sports day: what a day!", "Thank you to every parent who came."),
        images=(
            OutgoingImage(png(3, 2), "image/png", "The relay team crossing the line"),
            OutgoingImage(png(2, 3), "image/png", "The trophy on the table"),
        ),
        created_at=datetime.now(UTC),
    )
    progress: list[list[str]] = []
    published = publisher.publish(post, [], lambda ids: progress.append(list(ids)))
    first, second = published.ids
    assert progress == [[first], [first, second]]
    assert first.endswith("/" + record_key(post, 0)) and second.endswith("/" + record_key(post, 1))
    view = eventually(lambda: h.view(first), what="the first post on the AppView")
    assert view.record.text == "Sports day: what a day!"
    assert [i.alt for i in view.embed.images] == [
        "The relay team crossing the line",
        "The trophy on the table",
    ]
    assert all(i.fullsize and i.thumb for i in view.embed.images)
    reply = eventually(lambda: h.view(second), what="the reply on the AppView")
    assert reply.record.reply.root.uri == first and reply.record.reply.parent.uri == first
    # the blobs are in the school's repository
    blobs = h.school.client.com.atproto.sync.list_blobs(
        models.ComAtprotoSyncListBlobs.Params(did=h.school.did)
    ).cids
    stored = {str(i.image.ref.link) for i in view.record.embed.images}
    assert stored <= set(blobs) and len(stored) == 2
    # the outcome was lost: a retry with the same publication adopts both records
    again = publisher.publish(
        OutgoingPost(
            post.key, post.serial, post.parts, post.images, created_at=post.created_at, retry=True
        ),
        [],
        lambda _ids: None,
    )
    assert again.ids == published.ids
    assert len(records(h)) == 2
    publisher.withdraw(published.ids)
    assert records(h) == []
