"""A failed insert never writes the comments' texts into the log or ``last_error``.

SQLAlchemy puts every bound parameter into its error message unless the engine hides them,
and PostgreSQL adds the refused row ("Failing row contains ..."); both are kept out.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from datetime import datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Author
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.storage.queries import items as item_queries
from tests.jobs.fake_platform import FakePlatform

HANDLE = "oakfieldprimary.bsky.social"
DISCLOSURE = "my stepdad hits me and I am scared to go home"
OTHER = "lovely sports day photos, well done everyone"


def add_batch_with_a_refused_item(platform: FakePlatform, now: datetime) -> None:
    """Two ordinary comments and one the database refuses (no author handle: NOT NULL)."""
    platform.add(HANDLE, OTHER, now)
    platform.add(HANDLE, DISCLOSURE, now)
    refused = platform.add(HANDLE, "third comment " + DISCLOSURE, now)
    nameless = Author(id="did:example:x", handle="x")
    object.__setattr__(nameless, "handle", None)  # past the edge's cleaning, as a bug would
    platform.items[HANDLE][-1] = dataclasses.replace(refused, author=nameless)


def logged_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info and record.exc_info[1] is not None:
            parts.append("".join(traceback.format_exception(record.exc_info[1])))
    return "\n".join(parts)


def test_a_failed_insert_keeps_comment_texts_out_of_log_and_last_error(
    world: tuple[sessionmaker[Session], FakePlatform, ConnectorPool],
    now: datetime,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sessions, platform, pool = world
    add_batch_with_a_refused_item(platform, now)
    with caplog.at_level(logging.DEBUG):
        outcome = poll_account(sessions, "oakfield-bluesky", pool, now)
    # the refused item is quarantined and the rest stored; the error is kept with it
    assert outcome.ok and outcome.quarantined == 1
    with sessions() as session:
        [quarantined] = session.scalars(select(t.QuarantinedItem)).all()
        last_error = quarantined.error
    assert "IntegrityError" in last_error or "NotNullViolation" in last_error  # still named
    logged = logged_text(caplog)
    assert "IntegrityError" in logged or "NotNullViolation" in logged
    for text in (DISCLOSURE, OTHER, "stepdad"):
        assert text not in last_error
        assert text not in logged
        assert text not in (outcome.error or "")


def test_the_error_of_a_refused_batch_names_no_parameter(
    world: tuple[sessionmaker[Session], FakePlatform, ConnectorPool], now: datetime
) -> None:
    sessions, platform, _pool = world
    add_batch_with_a_refused_item(platform, now)
    with (
        pytest.raises(IntegrityError) as caught,
        transaction(sessions) as session,
    ):
        account = session.scalars(
            select(t.Account).where(t.Account.key == "oakfield-bluesky")
        ).one()
        item_queries.store_items(session, account, "notifications", platform.items[HANDLE], now)
    shown = "".join(traceback.format_exception(caught.value)) + repr(caught.value)
    assert "hidden due to hide_parameters" in shown
    assert "stepdad" not in shown and "sports day" not in shown
