"""Reddit failures become the connector's own errors: 429, 503, timeouts, bad credentials."""

from __future__ import annotations

import time

import pytest

from connectors.base import AuthError, Author, RateLimited, TransientError
from connectors.reddit import RedditConnector
from tests.connectors.harness_reddit import (  # noqa: F401 - fixture
    PUBLIC,
    SCHOOL_CLIENT,
    RedditHarness,
    reddit_harness_fixture,
)
from tests.servers.reddit_server import RedditServer

pytestmark = pytest.mark.peer


def test_429_is_rate_limited_with_retry_after(reddit_harness: RedditHarness) -> None:
    """A 429 is not retried by praw; its Retry-After reaches the scheduler."""
    h = reddit_harness
    connector = h.connector()
    cursor = connector.poll_posts(None).cursor
    h.fail_next("ratelimit")
    before = h.request_count()
    with pytest.raises(RateLimited) as caught:
        connector.poll_posts(cursor)
    assert caught.value.retry_after == 7.0
    assert h.request_count() - before == 1
    assert connector.poll_posts(cursor).items == ()  # and then it works again


def test_one_503_is_absorbed_by_praw(reddit_harness: RedditHarness) -> None:
    """prawcore retries a 503 itself; the poll succeeds after one extra request."""
    h = reddit_harness
    connector = h.connector()
    cursor = connector.poll_posts(None).cursor
    post = h.own_post("After the blip")
    h.fail_next("server_error")
    before = h.request_count()
    page = connector.poll_posts(cursor)
    assert [i.platform_id for i in page.items] == [post]
    assert h.request_count() - before == 2


@pytest.mark.slow
def test_persistent_503_is_transient(reddit_harness: RedditHarness) -> None:
    """Three 503s in a row (praw's two retries used up) raise TransientError."""
    h = reddit_harness
    connector = h.connector()
    h.fail_next("server_error", count=3)
    with pytest.raises(TransientError):
        connector.poll_notifications(None)
    assert connector.poll_notifications(None).requests == 1


@pytest.mark.slow
def test_timeouts_are_transient(reddit_harness: RedditHarness) -> None:
    """A peer that never answers in time is a TransientError, not a hang."""
    h = reddit_harness
    connector = h.connector()
    h.fail_next("timeout", count=3)
    with pytest.raises(TransientError):
        connector.fetch("t3_1kz0000")


def test_revoked_credentials_are_auth_error(reddit_harness: RedditHarness) -> None:
    """Tokens revoked and the password changed: 401, a refused grant, then AuthError."""
    h = reddit_harness
    connector = h.connector()
    cursor = connector.poll_posts(None).cursor
    h.fail_next("auth")
    before = h.request_count()
    with pytest.raises(AuthError):
        connector.poll_posts(cursor)
    paths = [r.path for r in h.server.requests if r.client_id == SCHOOL_CLIENT][before:]
    assert paths == ["/user/OakwoodAcademy/submitted", "/api/v1/access_token"]
    assert connector.poll_posts(cursor).items == ()  # the grant works again afterwards


def test_bad_password_is_auth_error(reddit_harness: RedditHarness) -> None:
    """reddit answers a wrong password with HTTP 200 invalid_grant: AuthError at connect."""
    h = reddit_harness
    connector = RedditConnector(h.account(credentials={"password": "wrong"}))
    with pytest.raises(AuthError):
        connector.connect()
    assert h.request_count() == 1


def test_bad_client_secret_is_auth_error(reddit_harness: RedditHarness) -> None:
    """A wrong app secret is a 401 from the token endpoint: AuthError."""
    connector = RedditConnector(reddit_harness.account(credentials={"client_secret": "nope"}))
    with pytest.raises(AuthError):
        connector.connect()


def test_missing_credentials_fail_before_any_request(reddit_harness: RedditHarness) -> None:
    """No password configured: AuthError without a request."""
    connector = RedditConnector(reddit_harness.account(credentials={"password": ""}))
    with pytest.raises(AuthError, match="password"):
        connector.connect()
    assert reddit_harness.request_count() == 0


def test_secrets_stay_out_of_repr(reddit_harness: RedditHarness) -> None:
    """Neither the account nor the connector prints the password or secret."""
    h = reddit_harness
    connector = h.connector()
    for text in (repr(h.account()), repr(connector), str(vars(connector))):
        assert "correct horse" not in text and "oakwood-secret" not in text


def test_rate_limit_while_logging_in_is_rate_limited(reddit_harness: RedditHarness) -> None:
    """A 429 on the token request (prawcore's ResponseException) is RateLimited too."""
    reddit_harness.fail_next("ratelimit", count=1)
    with pytest.raises(RateLimited) as caught:
        reddit_harness.connector()
    assert caught.value.retry_after == 7


def test_a_spent_budget_pauses_instead_of_sleeping() -> None:
    """x-ratelimit-remaining 0: RateLimited until x-ratelimit-reset, no request, no sleep."""
    # prawcore would sleep the worker thread until the reset; a 30 s window keeps a
    # regression from hanging the run (it would sleep, then get a real 429).
    server = RedditServer(ratelimit_limit=4, ratelimit_window=30).start()
    harness = RedditHarness(server)
    try:
        connector = harness.connector()  # /api/v1/me and the moderator list: 2 of 4
        cursor = connector.poll_posts(None).cursor  # 3 of 4
        connector.poll_posts(cursor)  # 4 of 4: x-ratelimit-remaining: 0
        before = harness.request_count()
        started = time.monotonic()
        with pytest.raises(RateLimited, match="budget") as caught:
            connector.poll_posts(cursor)
        assert time.monotonic() - started < 1.0
        assert 20 <= caught.value.retry_after <= 30  # from x-ratelimit-reset
        assert harness.request_count() == before  # nothing sent into a certain 429
        with pytest.raises(RateLimited):  # actions wait for the reset too
            connector.block(Author(id="t2_1", handle=PUBLIC[1]))
        assert harness.request_count() == before
    finally:
        harness.close()
        server.stop()
