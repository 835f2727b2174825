"""Login sessions persist, encrypted, across processes: a cron ``poll --once`` does not log in.

The connector here is a small stand-in that logs in (counted) unless its store has a
session; the real Bluesky connector against the real PDS is in test_bluesky_sessions.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from connectors.base import AccountRef, Capability, SessionStore
from monitor.jobs.poll import ConnectorPool, poll_account
from monitor.session_store import DatabaseSessionStore, seal, session_key, unseal
from monitor.storage import tables as t
from monitor.storage.db import transaction
from tests.jobs.fake_platform import FakeConnector, FakePlatform

ACCOUNT = "oakfield-bluesky"
PASSWORD = "app-pass-1234"


def test_seal_and_unseal() -> None:
    key = session_key({"app_password": PASSWORD}, ACCOUNT)
    sealed = seal("handle:::did:::access:::refresh", key, ACCOUNT)
    assert "access" not in sealed and sealed.startswith("v1:")
    assert unseal(sealed, key, ACCOUNT) == "handle:::did:::access:::refresh"
    assert seal("x", key, ACCOUNT) != seal("x", key, ACCOUNT)  # a fresh nonce each time
    other = session_key({"app_password": "rotated"}, ACCOUNT)
    assert unseal(sealed, other, ACCOUNT) is None  # new credentials: log in again
    assert unseal(sealed, key, "riverside-bluesky") is None  # bound to its account
    assert unseal("plain text", key, ACCOUNT) is None
    assert unseal("v1:!!!", key, ACCOUNT) is None


class LoginCounting(FakeConnector):
    """Logs in (counted on the platform) unless the store already holds a session."""

    store: SessionStore | None = None

    def use_session_store(self, store: SessionStore) -> None:
        self.store = store

    def connect(self) -> frozenset[Capability]:
        if self.store is None or self.store.get() is None:
            self.platform.calls.append(("createSession", self.account.handle))
            if self.store is not None:
                self.store.set(f"session-for-{self.account.handle}")
        return super().connect()


def with_password(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        session.execute(
            update(t.Account)
            .where(t.Account.key == ACCOUNT)
            .values(credential_refs={"app_password": {"env": "OAK_APP_PASSWORD"}})
        )


def test_a_new_process_reuses_the_stored_session_instead_of_logging_in(
    world: tuple[sessionmaker[Session], FakePlatform, ConnectorPool], now: datetime
) -> None:
    sessions, platform, _pool = world
    with_password(sessions)
    bound = LoginCounting.bind(platform)

    def process() -> ConnectorPool:  # what each `poll --once` from cron builds
        return ConnectorPool(
            environ={"OAK_APP_PASSWORD": PASSWORD}, classes=lambda _p: bound, sessions=sessions
        )

    for _ in range(40):  # more runs than Bluesky's 30 logins per 5 minutes allow
        pool = process()
        assert poll_account(sessions, ACCOUNT, pool, now).ok
        pool.close()
    logins = [call for call in platform.calls if call[0] == "createSession"]
    assert len(logins) == 1

    with sessions() as session:
        account = session.query(t.Account).filter_by(key=ACCOUNT).one()
        health = session.get(t.AccountHealth, account.id)
        assert health is not None and health.session_state
        assert "session-for" not in health.session_state  # encrypted at rest
    store = DatabaseSessionStore(sessions, account.id, ACCOUNT, {"app_password": PASSWORD})
    assert store.get() == f"session-for-{account.handle}"
    assert "session-for" not in repr(store)
    rotated = DatabaseSessionStore(sessions, account.id, ACCOUNT, {"app_password": "new"})
    assert rotated.get() is None


def test_accounts_without_credentials_get_no_store(
    world: tuple[sessionmaker[Session], FakePlatform, ConnectorPool], now: datetime
) -> None:
    sessions, platform, _pool = world
    seen: list[LoginCounting] = []

    class Recording(LoginCounting.bind(platform)):  # type: ignore[misc]
        def __init__(self, account: AccountRef) -> None:
            super().__init__(account)
            seen.append(self)

    pool = ConnectorPool(environ={}, classes=lambda _p: Recording, sessions=sessions)
    assert poll_account(sessions, ACCOUNT, pool, now).ok
    assert seen and seen[0].store is None
