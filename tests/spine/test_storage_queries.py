"""The shared queries of ``monitor.storage.queries``: an account by key, a case's school."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session, sessionmaker

from monitor import cases
from monitor.config import load_config
from monitor.constants import Category, Severity
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries.accounts import account_by_key
from monitor.storage.queries.cases import school_key_of, school_of
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG


@pytest.fixture
def synced(sessions: sessionmaker[Session], now: datetime) -> sessionmaker[Session]:
    with transaction(sessions) as session:
        apply_config(session, load_config(EXAMPLE_CONFIG, environ={}).config, now=now)
    return sessions


def test_an_account_by_its_key(synced: sessionmaker[Session]) -> None:
    with synced() as session:
        account = account_by_key(session, "oakfield-bluesky")
        assert account.key == "oakfield-bluesky" and account.school.key == "oakfield"
        with pytest.raises(NoResultFound):
            account_by_key(session, "nowhere")


def test_a_cases_school_and_its_key(synced: sessionmaker[Session], now: datetime) -> None:
    with transaction(synced) as session:
        oakfield = session.scalars(select(t.School).where(t.School.key == "oakfield")).one()
        opened = {}
        for name, school_id in (("school", oakfield.id), ("trust", None)):
            case, _ = cases.open_case(
                session,
                dedupe_key=f"test:{name}",
                category=Category.TWO_ADMINS,
                severity=Severity.LOW,
                title=name,
                now=now,
                school_id=school_id,
            )
            opened[name] = case
        assert school_of(session, opened["school"]) is oakfield
        assert school_key_of(session, opened["school"]) == "oakfield"
        for nothing in (opened["trust"], None):  # trust-wide, or no case at all
            assert school_of(session, nothing) is None
            assert school_key_of(session, nothing) is None
