"""Poison comments on a real peer (the local reddit, through praw) never hide a disclosure.

The peer sends NUL and lone surrogates as JSON escapes, as a platform may; the real
connector and the poll job must store every comment and the disclosure behind them,
and the disclosure must be alerted. Runs on SQLite and, with DATABASE_URL, PostgreSQL.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import RAW_ORIGINAL_KEY
from connectors.registry import connector_class
from monitor.clock import utcnow
from monitor.config import load_config
from monitor.config_models import Account, Config, SecretRef
from monitor.constants import Category
from monitor.jobs.poll import ConnectorPool
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from monitor.worker import Worker
from tests.conftest import EXAMPLE_CONFIG
from tests.connectors.harness_reddit import PUBLIC, RedditHarness, reddit_harness_fixture
from tests.jobs.test_escalation_flow import KeywordAssessor  # HELPME: safeguarding

pytestmark = pytest.mark.peer
__all__ = ["reddit_harness_fixture"]  # the fixture, imported for pytest

DISCLOSURE = "HELPME my stepdad hurts me and I am scared to go home"


def configure(sessions: sessionmaker[Session], h: RedditHarness) -> tuple[Config, ConnectorPool]:
    """The example trust with one account: the school on the local reddit."""
    ref = h.account()
    environ = {f"OAK_{name}".upper(): value for name, value in ref.credentials.items()}
    account = Account(
        key="oak",
        platform=ref.platform,
        handle=ref.handle,
        school="oakfield",
        admins=["cjones", "dmurphy"],
        options=dict(ref.options),
        credentials={name: SecretRef(env=f"OAK_{name}".upper()) for name in ref.credentials},
    )
    config = load_config(EXAMPLE_CONFIG, environ={}).config.model_copy(
        update={"accounts": [account]}
    )
    with transaction(sessions) as session:
        apply_config(session, config, now=utcnow())
    return config, ConnectorPool(environ=environ, classes=connector_class)


def test_poison_comments_ahead_of_a_disclosure_do_not_block_it(
    sessions: sessionmaker[Session], reddit_harness: RedditHarness
) -> None:
    h = reddit_harness
    config, pool = configure(sessions, h)
    post = h.own_post("Parents evening is on Thursday")
    start = utcnow()
    worker = Worker(sessions, config, KeywordAssessor(), pool=pool)
    try:
        assert worker.poll("oak", start).ok  # the cursors start here
        state = h.server.state
        poison = [
            state.comment(PUBLIC[0], post, "a NUL \x00 from a broken client").fullname,
            state.comment(PUBLIC[1], post, "a lone surrogate \ud800 in the text").fullname,
            state.comment("tr\udc00ll", post, "an author name with a lone surrogate").fullname,
        ]
        disclosure = h.reply(post, DISCLOSURE)  # through praw, after the poison
        h.wait_indexed()

        outcome = worker.poll("oak", start + timedelta(minutes=1))

        assert outcome.ok, outcome.error
        assert outcome.quarantined == 0
        with sessions() as session:
            rows = {
                row.platform_id: row
                for row in session.scalars(select(t.Item).where(t.Item.platform_id != post))
            }
        assert set(rows) == {*poison, disclosure}
        assert rows[poison[0]].text == "a NUL \ufffd from a broken client"
        assert rows[poison[1]].text == "a lone surrogate \ufffd in the text"
        assert rows[poison[2]].author_handle == "tr\ufffdll"
        original = json.loads(rows[poison[0]].raw[RAW_ORIGINAL_KEY])  # the payload as sent
        assert original["data"]["body"] == "a NUL \x00 from a broken client"
        assert rows[disclosure].text == DISCLOSURE

        report = worker.assess(start + timedelta(minutes=2))
        assert report.cases_opened
        with sessions() as session:
            case = session.scalars(
                select(t.Case).where(t.Case.category == Category.SAFEGUARDING.value)
            ).one()
            assert case.item_id is not None
            item = session.get(t.Item, case.item_id)
            assert item is not None and item.platform_id == disclosure
            alerts = session.scalar(
                select(func.count()).select_from(t.Alert).where(t.Alert.case_id == case.id)
            )
            assert alerts  # the DSL is told

        again = worker.poll("oak", start + timedelta(minutes=3))  # nothing stuck, nothing repeated
        assert again.ok and again.new_item_ids == ()
    finally:
        pool.close()
