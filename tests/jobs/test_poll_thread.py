"""Reading one just-published thread (the scheduler's reply watch) on a Bluesky account, without
a peer: the thread's replies are asked for from its start and stored once, the account's reply
cursor and its health are the usual poll's, and a rate limit pauses every poll of the account."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Capability, Page, RateLimited
from monitor.config import load_config
from monitor.constants import PollErrorKind
from monitor.jobs.poll import ConnectorPool, poll_account, poll_thread
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries import accounts as account_queries
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.jobs.fake_platform import FakeConnector, FakePlatform

ACCOUNT = "oakfield-bluesky"
ROOT = "at://did:plc:oakfield/app.bsky.feed.post/3lxyzroot"


class ThreadConnector(FakeConnector):
    """Replies under ROOT; records how it was asked."""

    CAPABILITIES = frozenset({Capability.NOTIFICATIONS, Capability.REPLIES})
    asked: list[tuple[tuple[str, ...], str | None]]

    def poll_replies(self, post_ids: Sequence[str], cursor: str | None) -> Page:
        self.asked.append((tuple(post_ids), cursor))
        pending = self.platform.failures.get("thread")
        if pending:
            raise pending.pop(0)
        items = tuple(
            replace(item, root_id=ROOT, parent_id=ROOT)
            for item in self.platform.items.get("thread", [])
        )
        return Page(items=items, cursor="cursor-of-a-thread-read", more=False, requests=1)


def test_a_thread_is_read_from_its_start_and_stored_once(
    sessions: sessionmaker[Session], now: datetime
) -> None:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
    platform = FakePlatform()
    asked: list[tuple[tuple[str, ...], str | None]] = []
    bound = type("Bound", (ThreadConnector,), {"platform": platform, "asked": asked})
    pool = ConnectorPool(environ={}, classes=lambda _p: bound)
    platform.add("thread", "Is the car park open?", now)

    first = poll_thread(sessions, ACCOUNT, ROOT, pool, now)
    assert first.error is None and len(first.new_item_ids) == 1
    assert asked == [((ROOT,), None)]  # this thread alone, from its start
    again = poll_thread(sessions, ACCOUNT, ROOT, pool, now + timedelta(minutes=1))
    assert again.new_item_ids == ()  # stored once per platform id
    with sessions() as session:
        account = session.scalars(select(t.Account).where(t.Account.key == ACCOUNT)).one()
        replies = session.scalars(select(t.Item).where(t.Item.root_id == ROOT)).all()
        assert [r.text for r in replies] == ["Is the car park open?"]
        # the account's reply cursor and health belong to its usual poll
        assert account_queries.load_cursor(session, account.id, "replies") is None
        health = session.get(t.AccountHealth, account.id)
        assert health is None or health.last_success_at is None

    # a rate limit met while reading the thread pauses the whole account
    platform.fail("thread", RateLimited(120))
    limited = poll_thread(sessions, ACCOUNT, ROOT, pool, now + timedelta(minutes=2))
    assert limited.error_kind is PollErrorKind.RATE_LIMITED
    later = poll_account(sessions, ACCOUNT, pool, now + timedelta(minutes=3))
    assert later.skipped is not None and "rate" in later.skipped
