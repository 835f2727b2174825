"""The Reddit peer harness: our own reddit.com stand-in (tests/servers/reddit_server.py).

Import the fixture into a test module with
``from tests.connectors.harness_reddit import reddit_harness_fixture  # noqa: F401``
(the fixture's name is ``reddit_harness``; importing ``reddit_harness`` works too).

Every test gets a fresh server (start-up takes milliseconds). The school's account and
the members of the public each act through real ``praw`` clients with their own OAuth
client ids, so faults and request counts concern the connector's client id only.

What to know when writing contract tests against it:
- praw (prawcore) itself retries a 5xx or a timeout twice, after 0-2 s and 2-4 s, so
  ``fail_next("server_error")`` needs ``count=3`` to reach the connector as
  TransientError; a smaller count is absorbed (and shows up in ``request_count``).
- ``fail_next("auth")`` revokes the connector's tokens and refuses its next ``count``
  password grants (a changed password): the next call gets 401, praw asks for a new
  token, gets ``invalid_grant``, and the connector raises AuthError.
- ``fail_next("ratelimit")`` answers 429 with ``Retry-After: 7``.
- ``mention(text)`` is a public self post in r/ukschools (found by search); username
  mentions (``u/<school>``) inside comments reach the inbox (poll_notifications).
- Reads see writes at once: ``wait_indexed`` only confirms it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import praw
import pytest

from connectors.base import AccountRef
from connectors.reddit import RedditConnector
from monitor.constants import Platform
from tests.connectors.harness import FaultKind
from tests.servers.reddit_server import RedditServer

SCHOOL = "OakwoodAcademy"
SCHOOL_PASSWORD = "correct horse battery staple"
SCHOOL_CLIENT = "oakwood-script-app"
SCHOOL_SECRET = "oakwood-secret"
PUBLIC_CLIENT = "public-app"
PUBLIC_SECRET = "public-secret"
PUBLIC = ("parent_one", "pupil_two", "local_reporter")
HOME = "OakwoodAcademy"  # the school's own subreddit, which it moderates
ELSEWHERE = "ukschools"  # a subreddit the school watches but does not moderate
CONNECTOR_TIMEOUT = 1.0  # seconds the connector waits for an answer
USER_AGENT = "school-social-monitor tests"


class RedditHarness:
    """Drives the local reddit as the school and as members of the public."""

    platform = Platform.REDDIT

    def __init__(self, server: RedditServer) -> None:
        self.server = server
        state = server.state
        state.add_app(SCHOOL_CLIENT, SCHOOL_SECRET)
        state.add_app(PUBLIC_CLIENT, PUBLIC_SECRET)
        state.add_user(SCHOOL, SCHOOL_PASSWORD)
        for name in PUBLIC:
            state.add_user(name, f"{name}-password")
        state.add_subreddit(HOME, moderators=[SCHOOL])
        state.add_subreddit(ELSEWHERE, moderators=["local_reporter"])
        # A timeout fault must outlast the connector's patience.
        server.timeout_delay = CONNECTOR_TIMEOUT + 0.5
        self._clients: dict[str, Any] = {}
        self._last: str | None = None
        self._connectors: list[RedditConnector] = []

    # --- accounts ----------------------------------------------------------------
    def account(self, **options: Any) -> AccountRef:
        """The school's account as configured for the bot (options override)."""
        merged: dict[str, Any] = {
            "subreddits": [HOME, ELSEWHERE],
            "user_agent": USER_AGENT,
            "oauth_url": self.server.url,
            "reddit_url": self.server.url,
            "short_url": self.server.url,
            "timeout": CONNECTOR_TIMEOUT,
        }
        merged.update(options)
        credentials = {
            "client_id": SCHOOL_CLIENT,
            "client_secret": SCHOOL_SECRET,
            "password": SCHOOL_PASSWORD,
        }
        credentials.update(merged.pop("credentials", {}))
        return AccountRef(
            key="reddit-oakwood",
            platform=Platform.REDDIT,
            handle=merged.pop("handle", SCHOOL),
            options=merged,
            credentials=credentials,
        )

    def connector(self, **options: Any) -> RedditConnector:
        """A fresh, connected connector for the school's account."""
        connector = RedditConnector(self.account(**options))
        connector.connect()
        self._connectors.append(connector)
        return connector

    def paged_connector(self, size: int) -> RedditConnector:
        """A connector reading ``size`` items per request, one page per poll."""
        return self.connector(page_limit=size, max_pages=1)

    def client(self, name: str) -> Any:
        """A praw client acting as ``name`` (the school uses its own app id elsewhere)."""
        if name not in self._clients:
            user = self.server.state.user(name)
            assert user is not None, name
            app = (SCHOOL_CLIENT + "-web", SCHOOL_SECRET) if name == SCHOOL else None
            client_id, secret = app or (PUBLIC_CLIENT, PUBLIC_SECRET)
            self.server.state.add_app(client_id, secret)
            self._clients[name] = praw.Reddit(
                client_id=client_id,
                client_secret=secret,
                username=user.name,
                password=user.password,
                user_agent=f"{USER_AGENT} as {name}",
                oauth_url=self.server.url,
                reddit_url=self.server.url,
                short_url=self.server.url,
                check_for_updates=False,
                check_for_async=False,
            )
        return self._clients[name]

    # --- the PeerHarness protocol ------------------------------------------------
    def own_post(self, text: str) -> str:
        """The school posts ``text`` in its own subreddit; returns the t3 fullname."""
        return self.post(SCHOOL, text, subreddit=HOME)

    def post(self, author: str, text: str, *, subreddit: str = HOME, title: str = "") -> str:
        """``author`` submits a self post; returns the t3 fullname."""
        made = (
            self.client(author)
            .subreddit(subreddit)
            .submit(title=(title or text)[:300], selftext=text)
        )
        self._last = f"t3_{made.id}"
        return self._last

    def reply(self, parent_id: str, text: str, *, author: str = PUBLIC[0]) -> str:
        """A member of the public replies to ``parent_id``; returns the t1 fullname."""
        client = self.client(author)
        kind, id36 = parent_id.split("_", 1)
        parent = client.comment(id36) if kind == "t1" else client.submission(id36)
        made = parent.reply(body=text)
        self._last = f"t1_{made.id}"
        return self._last

    def mention(self, text: str) -> str:
        """A member of the public posts ``text`` publicly (not a reply); returns the t3."""
        return self.post(PUBLIC[1], text, subreddit=ELSEWHERE)

    def delete(self, platform_id: str) -> None:
        """The author deletes the item."""
        found = self.server.state.thing(platform_id)
        assert found is not None, platform_id
        client = self.client(found.author)
        kind, id36 = platform_id.split("_", 1)
        target = client.comment(id36) if kind == "t1" else client.submission(id36)
        target.delete()

    def fail_next(self, kind: FaultKind, *, count: int = 1) -> None:
        """The next ``count`` responses to the connector's OAuth client fail like ``kind``."""
        self.server.fail_next(kind, count=count, client_id=SCHOOL_CLIENT)

    def wait_indexed(self, timeout: float = 5.0) -> None:
        """Block until the last write is readable (at once on this server)."""
        deadline = time.monotonic() + timeout
        while self._last is not None and self.server.state.thing(self._last) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._last} never became readable")
            time.sleep(0.01)

    def request_count(self) -> int:
        """HTTP requests the connector's OAuth client has made so far."""
        return self.server.request_count(SCHOOL_CLIENT)

    def close(self) -> None:
        """Drop clients and connectors."""
        for connector in self._connectors:
            connector.close()
        self._clients.clear()


# the marks the contract suite gives this platform's tests
MARKS = (pytest.mark.peer,)


@pytest.fixture(name="reddit_harness")
def reddit_harness_fixture() -> Iterator[RedditHarness]:
    """A harness on a fresh local reddit, torn down after the test."""
    # A budget no test reaches: prawcore paces itself from x-ratelimit-* and would sleep.
    server = RedditServer(ratelimit_limit=1_000_000).start()
    harness = RedditHarness(server)
    try:
        yield harness
    finally:
        harness.close()
        server.stop()


#: the same fixture under its own name, for modules that import it by that name
reddit_harness = reddit_harness_fixture
