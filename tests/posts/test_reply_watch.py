"""A published post is an own item at once and its thread alone is read every minute for the
reply-watch window, then left to the usual poll: against mastodon-mock (Mastodon.py) and the
local Reddit server (praw), through the worker's ``watch-replies`` job."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor import posts
from monitor.config import load_config
from monitor.config_models import Config
from monitor.jobs.poll import ConnectorPool
from monitor.publishers import PublisherCache
from monitor.rules.posting import DraftContent
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.worker import Worker
from tests.connectors.harness_mastodon import (  # noqa: F401 - fixture
    SCHOOL,
    TOKENS,
    MastodonHarness,
    mastodon_harness_fixture,
)
from tests.connectors.harness_reddit import (  # noqa: F401 - fixture
    HOME,
    SCHOOL_CLIENT,
    SCHOOL_PASSWORD,
    SCHOOL_SECRET,
    RedditHarness,
    reddit_harness_fixture,
)
from tests.connectors.harness_reddit import SCHOOL as REDDIT_SCHOOL
from tests.posts.posts_support import synced

pytestmark = pytest.mark.peer
ENV = {
    "MASTO_TOKEN": TOKENS[SCHOOL],
    "REDDIT_ID": SCHOOL_CLIENT,
    "REDDIT_SECRET": SCHOOL_SECRET,
    "REDDIT_PASSWORD": SCHOOL_PASSWORD,
}


class RulesOnly:
    """The worker's assessor is not what this test is about: no comment is scored."""

    def assess(self, texts: Any, *, school_key: str | None = None) -> list[Any]:
        return []


def write_config(tmp: Path, account: dict[str, Any]) -> Config:
    config = {
        "organisation": {"name": "Watch Trust"},
        "schools": [{"key": "oakwood", "name": "Oakwood Academy"}],
        "staff": [
            {"id": "comms", "name": "Cat Comms", "roles": ["comms"], "schools": ["oakwood"]},
            {"id": "head", "name": "Amy Head", "roles": ["principal"], "schools": ["oakwood"]},
        ],
        "accounts": [
            {"school": "oakwood", "admins": ["comms", "head"], "approved_by": "head", **account}
        ],
        "posting": {"reply_watch": "2h", "reply_poll_interval": "1m"},
    }
    path = tmp / "monitor.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return load_config(path, environ=ENV).config


def publish(
    sessions: sessionmaker[Session], cfg: Config, worker: Worker, key: str, now: datetime
) -> t.Publication:
    checker = synced(sessions, cfg, now)
    with transaction(sessions) as session:
        draft = posts.create_draft(
            session,
            checker,
            school="oakwood",
            staff_id="comms",
            content=DraftContent(
                ("Open evening is tonight.",), title="Open evening", targets=(key,)
            ),
            now=now,
        )
        posts.approve(session, checker, draft.id, staff_id="head", now=now)
    outcomes = posts.publish_due(sessions, checker, PublisherCache(worker.pool.account_ref), now)
    assert [o.state for o in outcomes] == [posts.DONE], outcomes
    with sessions() as session:
        publication = session.scalars(select(t.Publication)).one()
        session.expunge(publication)
    return publication


def own_and_replies(sessions: sessionmaker[Session], root: str) -> tuple[list[str], list[str]]:
    with sessions() as session:
        items = session.scalars(select(t.Item).where(t.Item.root_id == root)).all()
        return (
            [i.platform_id for i in items if i.is_own],
            sorted(i.text for i in items if not i.is_own),
        )


def watch(
    sessions: sessionmaker[Session], cfg: Config, now: datetime, wait: Any, root: str
) -> None:
    """The published post's thread is read on its own from the first minute, for the window."""
    worker = Worker(sessions, cfg, RulesOnly(), pool=ConnectorPool(environ=ENV))
    minute = timedelta(minutes=1)
    with sessions() as session:
        assert posts.watched_threads(session, now + minute) == [(cfg.accounts[0].key, root)]
    wait("Is the car park open?")
    outcomes = worker.watch_replies(now + minute)
    assert [o.error for o in outcomes] == [None] and len(outcomes[0].new_item_ids) == 1
    assert own_and_replies(sessions, root)[1][-1].endswith("Is the car park open?")
    # seen once: the next minute stores nothing new
    assert worker.watch_replies(now + 2 * minute)[0].new_item_ids == ()
    # the account's usual health is the usual poll's: a thread read does not count as one
    with sessions() as session:
        health = session.scalars(select(t.AccountHealth)).first()
        assert health is None or health.last_success_at is None
    # after the window the thread is left to the usual poll
    wait("Thank you!")
    assert worker.watch_replies(now + timedelta(hours=2, minutes=1)) == []
    assert not own_and_replies(sessions, root)[1][-1].endswith("Thank you!")
    worker.close()


def test_mastodon_thread_is_watched_from_the_first_minute(
    sessions: sessionmaker[Session],
    now: datetime,
    tmp_path: Path,
    mastodon_harness: MastodonHarness,
) -> None:
    h = mastodon_harness
    account = {
        "key": "oakwood-mastodon",
        "platform": "mastodon",
        "handle": SCHOOL,
        "options": {"api_base_url": h.server.base_url, "request_timeout": 5},
        "credentials": {"access_token": {"env": "MASTO_TOKEN"}},
    }
    cfg = write_config(tmp_path, account)
    worker = Worker(sessions, cfg, RulesOnly(), pool=ConnectorPool(environ=ENV))
    publication = publish(sessions, cfg, worker, "oakwood-mastodon", now)
    root = str(publication.platform_ids[0])
    # the post is an own item at once, under the id the reader gives it
    assert own_and_replies(sessions, root) == ([root], [])

    def reply(text: str) -> None:
        h.reply(root, text)
        h.wait_indexed()

    watch(sessions, cfg, now, reply, root)


def test_reddit_thread_is_watched_under_the_fullname_the_reader_uses(
    sessions: sessionmaker[Session],
    now: datetime,
    tmp_path: Path,
    reddit_harness: RedditHarness,
) -> None:
    h = reddit_harness
    ref = h.account(subreddits=[HOME])
    account = {
        "key": "oakwood-reddit",
        "platform": "reddit",
        "handle": REDDIT_SCHOOL,
        "options": dict(ref.options),
        "credentials": {
            "client_id": {"env": "REDDIT_ID"},
            "client_secret": {"env": "REDDIT_SECRET"},
            "password": {"env": "REDDIT_PASSWORD"},
        },
    }
    cfg = write_config(tmp_path, account)
    worker = Worker(sessions, cfg, RulesOnly(), pool=ConnectorPool(environ=ENV))
    publication = publish(sessions, cfg, worker, "oakwood-reddit", now)
    submission = str(publication.platform_ids[0])
    root = f"t3_{submission}"
    # stored as the reader names it, so the usual poll does not store the post a second time
    assert own_and_replies(sessions, root) == ([root], [])
    with sessions() as session:
        assert session.scalars(select(t.Item.platform_id)).all() == [root]

    def reply(text: str) -> None:
        h.reply(root, text)
        h.wait_indexed()

    watch(sessions, cfg, now, reply, root)
    # the usual poll of the whole account finds the same post: still one own item
    outcome = worker.poll("oakwood-reddit", now + timedelta(hours=3))
    assert outcome.error is None, outcome
    with sessions() as session:
        own = session.scalars(select(t.Item.platform_id).where(t.Item.is_own.is_(True))).all()
    assert own == [root]
