"""One bad item never blocks an account: cleaned at the edge, else stored alone, else quarantined.

Runs on SQLite and, with DATABASE_URL, on PostgreSQL (which also refuses NUL).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from connectors.base import Author, Item
from monitor import cases
from monitor.cli import app
from monitor.config_models import Config, Retention
from monitor.constants import CaseState, Category
from monitor.retention import purge
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries import accounts as account_queries
from monitor.storage.queries import items as item_queries
from monitor.worker import Worker
from tests.jobs.test_escalation_flow import KeywordAssessor  # HELPME: safeguarding

HANDLE = "oakfieldprimary.bsky.social"
ACCOUNT = "oakfield-bluesky"
DISCLOSURE = "HELPME my stepdad hurts me and I am scared to go home"


def unstorable(item: Item, text: str) -> Item:
    """``item`` with ``text`` put back raw, past the edge's cleaning (as a buggy connector might)."""
    object.__setattr__(item, "text", text)
    return item


def stored_texts(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(t.Item.text).order_by(t.Item.id)))


def cases_of(sessions: sessionmaker[Session], category: Category) -> list[t.Case]:
    with sessions() as session:
        return list(session.scalars(select(t.Case).where(t.Case.category == category.value)))


def alert_count(sessions: sessionmaker[Session], case_id: int) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(t.Alert).where(t.Alert.case_id == case_id)
        return session.scalar(query) or 0


def test_nul_and_lone_surrogates_ahead_of_a_disclosure_do_not_block_it(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world  # (sessionmaker, FakePlatform, ConnectorPool)
    platform.add(HANDLE, "a NUL \x00 in the middle", now)
    platform.add(HANDLE, "a lone surrogate \ud800 from a broken client", now)
    named = platform.add(HANDLE, "an ordinary comment", now)
    stream = platform.items[HANDLE]
    stream[-1] = replace(named, author=Author(id="did:x", handle="x.test", display_name="\udc00x"))
    platform.add(HANDLE, DISCLOSURE, now)
    worker = Worker(sessions, config, KeywordAssessor(), pool=pool)

    outcome = worker.poll(ACCOUNT, now)

    assert outcome.ok, outcome.error
    assert outcome.quarantined == 0  # cleaned at the edge, so nothing was refused
    texts = stored_texts(sessions)
    assert DISCLOSURE in texts and len(texts) == 4
    assert "a NUL \ufffd in the middle" in texts
    assert "a lone surrogate \ufffd from a broken client" in texts
    with sessions() as session:
        names = set(session.scalars(select(t.Item.author_name)))
        assert "\ufffdx" in names
    report = worker.assess(now + timedelta(seconds=30))
    assert len(report.cases_opened) == 1
    [case] = cases_of(sessions, Category.SAFEGUARDING)
    assert alert_count(sessions, case.id) > 0  # the disclosure is alerted


def test_an_item_still_refused_is_quarantined_with_one_it_case_and_the_cursor_moves_on(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world  # (sessionmaker, FakePlatform, ConnectorPool)
    bad = unstorable(platform.add(HANDLE, "placeholder", now), "broken \ud800 text")
    platform.add(HANDLE, "a polite question", now)
    platform.add(HANDLE, DISCLOSURE, now)
    worker = Worker(sessions, config, KeywordAssessor(), pool=pool)

    first = worker.poll(ACCOUNT, now)

    assert first.ok, first.error
    assert first.quarantined == 1 and len(first.new_item_ids) == 2
    assert DISCLOSURE in stored_texts(sessions)
    with sessions() as session:
        [row] = session.scalars(select(t.QuarantinedItem)).all()
        assert row.platform_id == bad.platform_id and row.stream == "notifications"
        assert "UnicodeEncodeError" in row.error or "surrogate" in row.error.lower()
        payload = json.loads(row.payload)
        assert payload["text"] == "broken \ud800 text"  # kept exactly, escaped
        cursor = session.scalars(select(t.Cursor.value)).one()
        assert cursor == "3"  # past the refused item
    [it_case] = cases_of(sessions, Category.ITEM_QUARANTINED)
    alerts = alert_count(sessions, it_case.id)
    assert alerts > 0 and it_case.details["quarantined_ids"] == [row.id]

    # a second refused item, later: the same case, no new alert; the disclosure after it lands
    unstorable(platform.add(HANDLE, "placeholder", now), "also \udfff broken")
    later = f"{DISCLOSURE} again"
    platform.add(HANDLE, later, now)
    second = worker.poll(ACCOUNT, now + timedelta(minutes=5))
    assert second.ok and second.quarantined == 1 and later in stored_texts(sessions)
    [same] = cases_of(sessions, Category.ITEM_QUARANTINED)
    assert same.id == it_case.id and len(same.details["quarantined_ids"]) == 2
    assert same.details["quarantined"] == 2
    assert alert_count(sessions, it_case.id) == alerts
    assert worker.poll(ACCOUNT, now + timedelta(minutes=10)).quarantined == 0  # not again
    with sessions() as session:
        assert item_queries.quarantined_count(session) == 2


def test_a_refused_item_does_not_stop_the_others_in_its_page(world: Any, now: datetime) -> None:
    sessions, platform, _pool = world  # (sessionmaker, FakePlatform, ConnectorPool)
    items = [platform.add(HANDLE, f"comment {n}", now) for n in range(4)]
    unstorable(items[1], "bad \ud800")
    with transaction(sessions) as session:
        account = session.scalars(select(t.Account).where(t.Account.key == ACCOUNT)).one()
        stored = item_queries.store_page(session, account, "replies", items, now)
        account_queries.save_cursor(session, account.id, "replies", "4", now)
    assert len(stored.new_ids) == 3 and len(stored.quarantined_ids) == 1
    assert stored_texts(sessions) == ["comment 0", "comment 2", "comment 3"]
    with transaction(sessions) as session:  # again: nothing new, nothing quarantined twice
        again = item_queries.store_page(session, account, "replies", items, now)
    assert again.new_ids == [] and again.quarantined_ids == []


def test_a_lost_connection_is_raised_not_quarantined(
    world: Any, now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessions, platform, _pool = world
    items = [platform.add(HANDLE, "comment", now)]

    def gone(*_args: Any, **_kwargs: Any) -> Any:
        raise OperationalError("INSERT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(item_queries, "_insert", gone)
    with pytest.raises(OperationalError), transaction(sessions) as session:
        account = session.scalars(select(t.Account).where(t.Account.key == ACCOUNT)).one()
        item_queries.store_page(session, account, "replies", items, now)
    with sessions() as session:
        assert item_queries.quarantined_count(session) == 0


def test_status_shows_the_quarantined_count(
    world: Any, config: Config, now: datetime, cli_env: Path
) -> None:
    sessions, platform, pool = world
    unstorable(platform.add(HANDLE, "placeholder", now), "broken \ud800 text")
    Worker(sessions, config, KeywordAssessor(), pool=pool).poll(ACCOUNT, now)
    shown = CliRunner().invoke(app, ["status"], env={"COLUMNS": "300"})
    assert shown.exit_code == 0, shown.output
    assert "1 item(s) quarantined" in shown.output


def test_quarantined_items_go_under_the_retention_policy_once_their_case_is_settled(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    unstorable(platform.add(HANDLE, "placeholder", now), "broken \ud800 text")
    worker = Worker(sessions, config, KeywordAssessor(), pool=pool)
    assert worker.poll(ACCOUNT, now).quarantined == 1
    policy = Retention(unflagged_items_days=90)
    later = now + timedelta(days=91)
    with transaction(sessions) as session:  # the IT case is still open: kept
        assert purge(session, policy, now=later).quarantined_items == 0
    with transaction(sessions) as session:
        [case] = session.scalars(
            select(t.Case).where(t.Case.category == Category.ITEM_QUARANTINED.value)
        ).all()
        cases.change_state(session, case, CaseState.CLOSED, actor="it", now=now, reason="seen")
    with transaction(sessions) as session:  # settled, but not yet 90 days old: kept
        assert purge(session, policy, now=now + timedelta(days=89)).quarantined_items == 0
    with transaction(sessions) as session:
        assert purge(session, policy, now=later).quarantined_items == 1
    with sessions() as session:
        assert item_queries.quarantined_count(session) == 0


def test_a_quarantined_item_left_without_a_case_by_a_crash_is_reported_by_the_next_process(
    world: Any, config: Config, now: datetime
) -> None:
    sessions, platform, pool = world
    bad = unstorable(platform.add(HANDLE, "placeholder", now), "broken \ud800 text")
    with transaction(sessions) as session:  # stored by a poll that crashed before the case
        account = session.scalars(select(t.Account).where(t.Account.key == ACCOUNT)).one()
        assert (
            item_queries.quarantine(session, account, "replies", bad, "refused", now=now)
            is not None
        )
    platform.items[HANDLE].clear()
    outcome = Worker(sessions, config, KeywordAssessor(), pool=pool).poll(ACCOUNT, now)
    assert outcome.ok and outcome.quarantined == 0
    [case] = cases_of(sessions, Category.ITEM_QUARANTINED)
    assert case.details["quarantined"] == 1 and alert_count(sessions, case.id) > 0
