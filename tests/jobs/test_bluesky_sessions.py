"""Bluesky sessions persist across processes (the real connector, the real PDS, the poll job).

Each ``process()`` below is what one ``monitor poll --once`` from cron builds: a new
connector pool and an empty in-process session cache. Bluesky allows 30 createSession
calls per 5 minutes per account, so a login per process would lock a school out.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

import connectors.bluesky.session as bluesky_session
from connectors.registry import connector_class
from monitor.clock import utcnow
from monitor.config import load_config
from monitor.config_models import Account, SecretRef
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.storage import tables as t
from monitor.storage.db import transaction
from monitor.sync import apply_config
from tests.conftest import EXAMPLE_CONFIG
from tests.connectors.harness_bluesky import BlueskyHarness, bluesky_harness

pytestmark = [pytest.mark.bluesky, pytest.mark.peer]
__all__ = ["bluesky_harness"]  # the fixture, imported for pytest

CREATE = "com.atproto.server.createSession"
REFRESH = "com.atproto.server.refreshSession"


def test_cron_polls_reuse_one_stored_session_and_refreshes_are_stored(
    sessions: sessionmaker[Session],
    bluesky_harness: BlueskyHarness,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    h = bluesky_harness
    ref = h.account()
    account = Account(
        key="oak",
        platform=ref.platform,
        handle=ref.handle,
        school="oakfield",
        admins=["cjones", "dmurphy"],
        options=dict(ref.options),
        credentials={"app_password": SecretRef(env="OAK_APP_PASSWORD")},
    )
    config = load_config(EXAMPLE_CONFIG, environ={}).config.model_copy(
        update={"accounts": [account]}
    )
    with transaction(sessions) as session:
        apply_config(session, config, now=utcnow())
    environ = {"OAK_APP_PASSWORD": h.app_password}
    pools: list[ConnectorPool] = []

    def process() -> ConnectorPool:
        monkeypatch.setattr(bluesky_session, "_PROCESS_STORES", {})  # nothing survives a process
        pool = ConnectorPool(environ=environ, classes=connector_class, sessions=sessions)
        pools.append(pool)
        return pool

    logins = h.calls(CREATE)
    start = utcnow()
    try:
        for n in range(31):  # one more than Bluesky's createSession limit per 5 minutes
            pool = process()
            outcome = poll_account(sessions, "oak", pool, start + timedelta(minutes=n))
            assert outcome.ok, outcome.error
            pool.close()
        assert h.calls(CREATE) == logins + 1

        with sessions() as session:
            state = session.scalars(select(t.AccountHealth.session_state)).one()
        assert state and state.startswith("v1:") and h.school.did not in state  # encrypted

        # an expired access token: refreshed once, the refreshed session stored for others
        first, second = process(), process()
        poll_account(sessions, "oak", first, start + timedelta(hours=1))
        poll_account(sessions, "oak", second, start + timedelta(hours=1, minutes=1))
        refreshes = h.calls(REFRESH)
        h.fail_next("expired_token")
        assert poll_account(sessions, "oak", first, start + timedelta(hours=2)).ok
        assert h.calls(REFRESH) == refreshes + 1
        with sessions() as session:
            refreshed = session.scalars(select(t.AccountHealth.session_state)).one()
        assert refreshed != state
        # the other live process's token runs out too, and its refresh is refused (the
        # first process already used that refresh token): it takes the stored session
        h.fail_next("expired_token", count=2)  # the call, then its refreshSession
        assert poll_account(sessions, "oak", second, start + timedelta(hours=2, minutes=1)).ok
        assert h.calls(REFRESH) == refreshes + 2
        # and a new process starts from the refreshed session
        assert poll_account(sessions, "oak", process(), start + timedelta(hours=3)).ok
        assert h.calls(CREATE) == logins + 1
    finally:
        for pool in pools:
            pool.close()
