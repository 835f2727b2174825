"""The Mastodon peer harness: ``mastodon-mock`` (a stateful Mastodon server) on loopback.

Import the fixture into a test module with
``from tests.connectors.harness_mastodon import mastodon_harness_fixture  # noqa: F401``
(the fixture's name is ``mastodon_harness``; importing ``mastodon_harness`` works too).

One mock server (in-memory SQLite, seeded with the accounts below) serves the
whole session and is reset to its seed before each test. The connector gets a
counting ``requests.Session`` so ``request_count`` is measured on the wire,
independently of the connector's own bookkeeping. Faults are the mock's own
fault injection; while the harness itself acts (as the school or the public)
pending faults are set aside, so they hit only the connector.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from mastodon_mock.config import SeedAccount, SeedConfig, SeedFollow
from mastodon_mock.testing.server import MockServer

from connectors.base import AccountRef
from connectors.mastodon import MastodonConnector
from monitor.constants import Platform
from tests.connectors.harness import FaultKind

SCHOOL = "school"
STAFF = "staff"  # a second school account whose role is not allowed to moderate
PARENT = "parent"  # a member of the public on the same instance
TROLL = "troll"  # a member of the public on a remote instance
TROLL_ACCT = "troll@remote.example"
TOKENS = {name: f"{name}-token" for name in (SCHOOL, STAFF, PARENT, TROLL)}

HARNESS_SEED = SeedConfig(
    accounts=[
        SeedAccount(
            username=SCHOOL,
            display_name="Greenfield Primary",
            access_token=TOKENS[SCHOOL],
            role="admin",  # the school runs this instance
        ),
        SeedAccount(username=STAFF, display_name="Staff", access_token=TOKENS[STAFF]),
        SeedAccount(username=PARENT, display_name="A Parent", access_token=TOKENS[PARENT]),
        SeedAccount(
            username=TROLL,
            domain="remote.example",
            display_name="Troll",
            access_token=TOKENS[TROLL],
        ),
    ],
    follows=[SeedFollow(follower=PARENT, following=SCHOOL)],
)

#: the connector's request timeout in the harness; a "timeout" fault delays longer.
REQUEST_TIMEOUT = 1.0
TIMEOUT_FAULT_DELAY_MS = int((REQUEST_TIMEOUT + 0.5) * 1000)
WAIT_TIMEOUT = 5.0

_FAULT_EFFECTS: dict[str, dict[str, Any]] = {
    "ratelimit": {"type": "ratelimit"},
    "server_error": {"type": "status", "status": 500},
    # The mock's own "timeout" effect holds for 30 s at least; a latency longer than
    # the client's timeout is the same failure for the client and keeps tests fast.
    "timeout": {"type": "latency", "delay_ms": TIMEOUT_FAULT_DELAY_MS},
    "auth": {
        "type": "status",
        "status": 401,
        "body": {"error": "The access token is invalid"},
    },
}


class CountingSession(requests.Session):
    """A requests session that counts every request it sends (timeouts included)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0
        self.sent: list[tuple[str, str, dict[str, Any]]] = []  # method, url, query params
        self.idempotency_keys: list[str | None] = []  # per request, None when absent

    def request(self, method: str, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        """Count and record, then send."""
        self.count += 1
        self.sent.append((method, str(url), dict(kwargs.get("params") or {})))
        headers = kwargs.get("headers") or {}
        self.idempotency_keys.append(headers.get("Idempotency-Key"))
        return super().request(method, url, *args, **kwargs)


class MastodonHarness:
    """Drives the mock as the school's account and as members of the public."""

    platform = Platform.MASTODON

    def __init__(self, server: MockServer) -> None:
        self.server = server
        self.session = CountingSession()
        self.sleeps: list[float] = []  # backoff delays the connectors asked for
        self._clients: dict[str, Any] = {}
        self._authors: dict[str, str] = {}  # status id -> username that wrote it
        self._pending_faults: list[str] = []
        self._last_write: tuple[str, bool] | None = None  # (status id, should exist)
        self._connectors: list[MastodonConnector] = []

    # ------------------------------------------------------------ accounts

    def client(self, username: str) -> Any:
        """A Mastodon.py client logged in as a seeded account (not counted)."""
        if username not in self._clients:
            self._clients[username] = self.server.client(token=TOKENS[username])
        return self._clients[username]

    def account_id(self, username: str) -> str:
        """The mock's id for a seeded account."""
        with self._quiet():
            return str(self.client(username).account_verify_credentials()["id"])

    def account_ref(self, *, username: str = SCHOOL, **options: Any) -> AccountRef:
        """The AccountRef the monitor would build for a school account on this peer."""
        merged: dict[str, Any] = {
            "api_base_url": self.server.base_url,
            "request_timeout": REQUEST_TIMEOUT,
        }
        merged.update(options)
        return AccountRef(
            key=f"mastodon-{username}",
            platform=Platform.MASTODON,
            handle=username,
            options=merged,
            credentials={"access_token": TOKENS[username]},
        )

    def connector(self, *, username: str = SCHOOL, **options: Any) -> MastodonConnector:
        """A fresh, connected connector for the school's account (connect counts as requests)."""
        conn = self.unconnected(username=username, **options)
        conn.connect()
        return conn

    def paged_connector(self, size: int) -> MastodonConnector:
        """A connector reading ``size`` items per request, one page per poll."""
        return self.connector(page_size=size, max_pages=1)

    def unconnected(
        self, *, username: str = SCHOOL, token: str | None = None, **options: Any
    ) -> MastodonConnector:
        """A connector not yet connected, optionally with a different token."""
        ref = self.account_ref(username=username, **options)
        if token is not None:
            ref = AccountRef(
                key=ref.key,
                platform=ref.platform,
                handle=ref.handle,
                options=ref.options,
                credentials={"access_token": token},
            )
        conn = MastodonConnector(
            ref, session=self.session, sleep=self.sleeps.append, rng=random.Random(7)
        )
        self._connectors.append(conn)
        return conn

    # ------------------------------------------------------------ acting as people

    def post_as(
        self, username: str, text: str, *, in_reply_to: str | None = None, **kw: Any
    ) -> str:
        """``username`` posts ``text`` (optionally as a reply); returns the status id."""
        with self._quiet():
            status = self.client(username).status_post(text, in_reply_to_id=in_reply_to, **kw)
        status_id = str(status["id"])
        self._authors[status_id] = username
        self._last_write = (status_id, True)
        return status_id

    def own_post(self, text: str) -> str:
        """The school's account posts ``text`` publicly; returns the status id."""
        return self.post_as(SCHOOL, text, visibility="public")

    def reply(self, parent_id: str, text: str, *, mention_author: bool = True) -> str:
        """A member of the public replies to ``parent_id``; returns the status id."""
        # Like Mastodon's own apps, the reply starts with @author of the parent unless
        # the text already names them: on Mastodon only a mention notifies, so a reply
        # without one reaches the replies stream but not notifications.
        body = text
        if mention_author:
            with self._quiet():
                acct = str(self.client(SCHOOL).status(parent_id)["account"]["acct"])
            if acct != PARENT and f"@{acct}".casefold() not in text.casefold():
                body = f"@{acct} {text}"
        return self.post_as(PARENT, body, in_reply_to=parent_id)

    def mention(self, text: str) -> str:
        """A member of the public posts ``text`` publicly (no reply); returns the status id."""
        return self.post_as(PARENT, text, visibility="public")

    def delete(self, platform_id: str) -> None:
        """The author deletes the status."""
        author = self._authors.get(platform_id, PARENT)
        with self._quiet():
            self.client(author).status_delete(platform_id)
        self._last_write = (platform_id, False)

    # ------------------------------------------------------------ the peer itself

    def fail_next(self, kind: FaultKind, *, count: int = 1) -> None:
        """Make the peer's next ``count`` responses to the connector fail like ``kind``."""
        effect = _FAULT_EFFECTS[kind]
        rule = {"match": {}, "effect": effect, "count": count}
        self._pending_faults.append(self._add_rule(rule))

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        requests.delete(f"{self.server.base_url}/api/v1/_mock/faults", timeout=WAIT_TIMEOUT)
        self._pending_faults.clear()

    def pending_faults(self) -> int:
        """How many injected failures have not fired yet."""
        rules = self._rules()
        return sum(int(r["remaining"] or 0) for r in rules if r["id"] in self._pending_faults)

    def wait_indexed(self) -> None:
        """Block until the last write is visible to reads (the mock is synchronous; checked anyway)."""
        if self._last_write is None:
            return
        status_id, should_exist = self._last_write
        deadline = time.monotonic() + WAIT_TIMEOUT
        with self._quiet():
            while True:
                response = requests.get(
                    f"{self.server.base_url}/api/v1/statuses/{status_id}",
                    headers={"Authorization": f"Bearer {TOKENS[SCHOOL]}"},
                    timeout=WAIT_TIMEOUT,
                )
                if (response.status_code == 200) == should_exist:
                    return
                if response.status_code == 404 and self._connector_deleted(status_id):
                    return  # written, then deleted by a connector: settled
                if time.monotonic() > deadline:
                    raise TimeoutError(f"status {status_id} not settled within {WAIT_TIMEOUT}s")
                time.sleep(0.05)

    def _connector_deleted(self, status_id: str) -> bool:
        return any(
            method == "DELETE" and url.endswith(f"/api/v1/statuses/{status_id}")
            for method, url, _ in self.session.sent
        )

    def request_count(self) -> int:
        """HTTP requests the harness's connectors have sent to the peer so far."""
        return self.session.count

    def close(self) -> None:
        """Close connectors and clients."""
        for conn in self._connectors:
            conn.close()
        for client in self._clients.values():
            client.session.close()
        self.session.close()

    # ------------------------------------------------------------ fault plumbing

    def _add_rule(self, rule: dict[str, Any]) -> str:
        response = requests.post(
            f"{self.server.base_url}/api/v1/_mock/faults", json=rule, timeout=WAIT_TIMEOUT
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def _rules(self) -> list[dict[str, Any]]:
        response = requests.get(f"{self.server.base_url}/api/v1/_mock/faults", timeout=WAIT_TIMEOUT)
        response.raise_for_status()
        rules: list[dict[str, Any]] = response.json()
        return rules

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Set pending faults aside while the harness acts, then restore what is left of them."""
        if not self._pending_faults:
            yield
            return
        held = [r for r in self._rules() if r["id"] in self._pending_faults]
        for rule in held:
            requests.delete(
                f"{self.server.base_url}/api/v1/_mock/faults/{rule['id']}", timeout=WAIT_TIMEOUT
            )
        self._pending_faults = []
        try:
            yield
        finally:
            for rule in held:
                restored = {
                    "match": rule["match"],
                    "effect": rule["effect"],
                    "count": rule["remaining"],
                }
                self._pending_faults.append(self._add_rule(restored))


_PEER: dict[str, MockServer] = {}


def _peer(config: pytest.Config) -> MockServer:
    """The session's mock server, started on first use and stopped at the end of the run."""
    server = _PEER.get("server")
    if server is None:
        server = MockServer(seed=HARNESS_SEED).start()
        _PEER["server"] = server

        def stop() -> None:
            _PEER.pop("server", None)
            server.stop()

        config.add_cleanup(stop)
    return server


# the marks the contract suite gives this platform's tests
MARKS = (pytest.mark.peer,)


@pytest.fixture(name="mastodon_harness")
def mastodon_harness_fixture(request: pytest.FixtureRequest) -> Iterator[MastodonHarness]:
    """A harness on the mock Mastodon peer, reset to its seed (faults cleared) for this test."""
    server = _peer(request.config)
    server.reset()
    harness = MastodonHarness(server)
    try:
        yield harness
    finally:
        harness.close()


#: the same fixture under its own name, for modules that import it by that name
mastodon_harness = mastodon_harness_fixture
