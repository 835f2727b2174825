"""Mastodon connector under the mock's injected faults: 429, 500, timeouts, malformed JSON, 401."""

from __future__ import annotations

import time

import pytest

from connectors.base import AuthError, ConnectorError, RateLimited, TransientError
from tests.connectors.harness_mastodon import (  # noqa: F401 - fixture
    PARENT,
    SCHOOL,
    TROLL,
    MastodonHarness,
    mastodon_harness_fixture,
)

pytestmark = pytest.mark.peer


def test_rate_limit_raises_with_retry_after_and_is_not_retried(
    mastodon_harness: MastodonHarness,
) -> None:
    """A 429 becomes RateLimited(retry_after from X-RateLimit-Reset) after one request."""
    h = mastodon_harness
    conn = h.connector()
    h.fail_next("ratelimit")
    before = h.request_count()
    with pytest.raises(RateLimited) as raised:
        conn.poll_posts(None)
    assert h.request_count() - before == 1
    # The mock resets its window 300 s from now.
    assert 240 <= raised.value.retry_after <= 301
    assert h.sleeps == []  # the connector never waits on a rate limit itself
    assert conn.poll_posts(None).cursor is None  # and works again afterwards


def test_rate_limit_reset_header_is_honoured(mastodon_harness: MastodonHarness) -> None:
    """retry_after follows the server's X-RateLimit-Reset, corrected by its Date header."""
    h = mastodon_harness
    conn = h.connector()
    with (
        h.server.fault(
            type="ratelimit",
            count=1,
            headers={"X-RateLimit-Reset": str(int(time.time()) + 42)},
        ),
        pytest.raises(RateLimited) as raised,
    ):
        conn.poll_notifications(None)
    assert 35 <= raised.value.retry_after <= 43


def test_server_errors_are_retried_with_jitter(mastodon_harness: MastodonHarness) -> None:
    """Two 500s then success: the read succeeds after two injected (not slept) backoffs."""
    h = mastodon_harness
    post = h.own_post("hello")
    conn = h.connector()
    h.fail_next("server_error", count=2)
    before = h.request_count()
    page = conn.poll_posts(None)
    assert [i.platform_id for i in page.items] == [post]
    assert h.request_count() - before == 3 == page.requests
    assert len(h.sleeps) == 2
    assert 0 <= h.sleeps[0] <= 0.5 and 0 <= h.sleeps[1] <= 1.0  # full jitter, doubling cap


def test_persistent_server_error_becomes_transient(mastodon_harness: MastodonHarness) -> None:
    """Past the retry budget the poll fails with TransientError and the cursor is untouched."""
    h = mastodon_harness
    h.own_post("hello")
    conn = h.connector(retry_attempts=2)
    h.fail_next("server_error", count=3)
    with pytest.raises(TransientError):
        conn.poll_posts(None)
    assert h.pending_faults() == 0
    assert len(conn.poll_posts(None).items) == 1


def test_timeout_is_retried(mastodon_harness: MastodonHarness) -> None:
    """A request that outlives the client's timeout is retried and the poll succeeds."""
    h = mastodon_harness
    post = h.own_post("hello")
    reply = h.reply(post, "hi")
    conn = h.connector()
    h.fail_next("timeout")
    page = conn.poll_replies([post], None)
    assert [i.platform_id for i in page.items] == [reply]
    assert page.requests == 2 and len(h.sleeps) == 1


def test_timeout_without_retries_is_transient(mastodon_harness: MastodonHarness) -> None:
    """With retries off, a timeout surfaces as TransientError."""
    h = mastodon_harness
    conn = h.connector(retry_attempts=0)
    h.fail_next("timeout")
    with pytest.raises(TransientError):
        conn.fetch(h.own_post("x"))


def test_malformed_json_is_transient(mastodon_harness: MastodonHarness) -> None:
    """A truncated JSON body is a transient fault, retried like any other."""
    h = mastodon_harness
    h.own_post("hello")
    conn = h.connector(retry_attempts=0)
    with h.server.fault(type="malformed", count=1), pytest.raises(TransientError):
        conn.poll_posts(None)
    conn_retrying = h.connector()
    with h.server.fault(type="malformed", count=1):
        assert len(conn_retrying.poll_posts(None).items) == 1


def test_wrong_token_fails_connect_with_auth_error(mastodon_harness: MastodonHarness) -> None:
    """A revoked or wrong token is AuthError at connect, and is not retried."""
    h = mastodon_harness
    conn = h.unconnected(token="not-a-real-token")
    before = h.request_count()
    with pytest.raises(AuthError) as raised:
        conn.connect()
    assert h.request_count() - before == 1
    assert "not-a-real-token" not in str(raised.value)
    assert "not-a-real-token" not in repr(conn)


def test_missing_token_is_auth_error_without_a_request(mastodon_harness: MastodonHarness) -> None:
    """No token configured: AuthError before any request."""
    h = mastodon_harness
    conn = h.unconnected(token="")
    before = h.request_count()
    with pytest.raises(AuthError):
        conn.connect()
    assert h.request_count() == before


def test_token_revoked_mid_run_is_auth_error(mastodon_harness: MastodonHarness) -> None:
    """A 401 during a poll stops it with AuthError."""
    h = mastodon_harness
    conn = h.connector()
    h.fail_next("auth")
    with pytest.raises(AuthError):
        conn.poll_mentions(["greenfield"], None)


def test_forbidden_is_auth_error(mastodon_harness: MastodonHarness) -> None:
    """A 403 (scope or disabled login) is AuthError, not a silent skip."""
    h = mastodon_harness
    conn = h.connector()
    with h.server.fault(type="status", status=403, count=1), pytest.raises(AuthError):
        conn.poll_notifications(None)


def test_report_is_not_retried(mastodon_harness: MastodonHarness) -> None:
    """A report is not idempotent: one 500 fails it after exactly one request."""
    h = mastodon_harness
    conn = h.connector()
    post = h.own_post("p")
    h.post_as(TROLL, "abuse", in_reply_to=post)
    [item] = conn.poll_replies([post], None).items
    h.fail_next("server_error")
    before = h.request_count()
    with pytest.raises(TransientError):
        conn.report(item, reason="abuse")
    assert h.request_count() - before == 1
    assert h.client(SCHOOL).admin_reports() == []


def test_retried_reply_reuses_its_idempotency_key(mastodon_harness: MastodonHarness) -> None:
    """A reply is retried with the same Idempotency-Key, so a lost response cannot post twice."""
    h = mastodon_harness
    conn = h.connector()
    post = h.own_post("p")
    h.reply(post, "question")
    [item] = conn.poll_replies([post], None).items
    h.fail_next("server_error")
    first = len(h.session.sent)
    answer = conn.reply(item, "answer")
    posts = [
        key
        for (method, url, _), key in zip(
            h.session.sent[first:], h.session.idempotency_keys[first:], strict=True
        )
        if method == "POST" and url.endswith("/api/v1/statuses")
    ]
    assert len(posts) == 2 and posts[0] is not None and posts[0] == posts[1]
    replies = [
        s
        for s in h.client(SCHOOL).status_context(item.platform_id)["descendants"]
        if s["account"]["username"] == SCHOOL
    ]
    assert [str(s["id"]) for s in replies] == [answer.platform_id]
    # A second, separate reply gets a key of its own.
    conn.reply(item, "and another")
    assert h.session.idempotency_keys[-1] not in (None, posts[0])


def test_unknown_client_error_is_a_connector_error(mastodon_harness: MastodonHarness) -> None:
    """A 422 is neither transient nor auth: a plain ConnectorError naming the status."""
    h = mastodon_harness
    conn = h.connector()
    post = h.own_post("p")
    h.post_as(PARENT, "x", in_reply_to=post)
    [item] = conn.poll_replies([post], None).items
    unprocessable = h.server.fault(
        type="status", status=422, count=1, body={"error": "Validation failed"}
    )
    with unprocessable, pytest.raises(ConnectorError, match="422") as raised:
        conn.block(item.author)
    assert type(raised.value) is ConnectorError
